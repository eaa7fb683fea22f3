"""Batch scoring of a whole lead base: chunked, with reasons, written atomically (CLI, demo, Spark, databases)."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from features.build import build_features
from features.snapshots import open_leads
from features.timing import utc_now
from models.reasons import reason_columns

REASON_COLUMNS = tuple(f"{side}_reason_{k}" for side in ("positive", "negative") for k in (1, 2, 3))
SCORE_COLUMNS = ("lead_id", "probability", "score", "tier", "fit_score", "engagement_score", *REASON_COLUMNS,
                 "model_version", "as_of", "scored_at")


def score_lead_base(bundle, leads: pd.DataFrame, events, *, as_of, out, deals: pd.DataFrame | None = None,
                    model_version: str = "", thresholds=None, chunk_size: int = 200_000,
                    explain: bool = True, progress=None) -> pd.Series:
    """Score every lead open at ``as_of`` into ``out`` (.parquet or .csv); return the tier counts.

    Beside probability, score and tier each row carries the fit and engagement sub-scores and up
    to three positive and three negative reasons as text ("requested a demo 3 days ago (+1.20)");
    ``explain=False`` leaves those out, for speed (LightGBM's exact contributions cost about ten
    times its prediction).
    Leads are processed in chunks so memory stays bounded by ``chunk_size``. The output is
    written to a temporary file beside ``out`` and renamed at the end: a failed run leaves the
    previous file untouched and no partial one.
    """
    if chunk_size <= 0:
        raise ValueError(f"The 'chunk_size' parameter of score_lead_base must be positive. Got {chunk_size!r}.")
    out = check_output(out)
    snapshots = open_leads(leads, deals, as_of)
    scored_at = utc_now().floor("s")
    started = time.perf_counter()
    counts = pd.Series(0, index=["SQL", "MQL", "nurture"], dtype=np.int64)
    with _AtomicWriter(out) as writer:
        for start in range(0, max(len(snapshots), 1), chunk_size):
            chunk = snapshots.iloc[start:start + chunk_size]
            features = build_features(chunk, leads, events, bundle.spec)
            if explain:
                scores, reasons = bundle.score_with_reasons(features, thresholds=thresholds)
                columns = reason_columns(reasons)
            else:
                scores, columns = bundle.score(features, thresholds=thresholds), {}
            frame = pd.DataFrame({
                "lead_id": chunk["lead_id"].to_numpy(),
                **{column: scores[column].to_numpy() for column in scores.columns},
                **columns,
                "model_version": model_version,
                "as_of": chunk["as_of"].to_numpy(),
                "scored_at": scored_at,
            })
            writer.write(frame)
            counts = counts.add(frame["tier"].value_counts(), fill_value=0).astype(np.int64)
            if progress:
                done = start + len(chunk)
                elapsed = time.perf_counter() - started
                progress(f"scored {done:,}/{len(snapshots):,} open leads "
                         f"({done / max(len(snapshots), 1):.0%}, {done / max(elapsed, 1e-9):,.0f} leads/s)")
    return counts


def check_output(out) -> Path:
    """Refuse an output path that cannot be written, before any work: wrong suffix, a folder, under a file.

    The folder is created when missing (as the writer would); a folder that exists is tried with a
    real temporary file, since permissions alone do not tell (a read-only mount, root).
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if out.is_dir():
        raise ValueError(f"Output {out}: is a folder; give a file name such as {out / 'scores.parquet'}.")
    if suffix not in (".parquet", ".csv"):
        raise ValueError(f"Output {out}: expected a .parquet or .csv file name. Got {suffix!r}.")
    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"Output {out}: {ancestor} is a file, so nothing can be written under it.")
    if ancestor == out.parent:
        try:
            handle, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp")
        except OSError as error:
            raise ValueError(f"Output {out}: cannot write in {out.parent} ({error.strerror}).") from None
        os.close(handle)
        os.unlink(name)
    elif not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"Output {out}: cannot create folders in {ancestor} (not writable).")
    return out


#: Characters that make a spreadsheet read a cell as a formula (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells a spreadsheet would execute (``=HYPERLINK(...)``) prefixed with ``'``; numbers untouched."""
    changed = {}
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            text = values.astype("string")
            risky = text.str.startswith(FORMULA_STARTS).fillna(False).astype(bool)
            if risky.any():
                changed[column] = values.mask(risky.to_numpy(), "'" + values.astype(str))
    return frame.assign(**changed) if changed else frame


class _AtomicWriter:
    """Chunked Parquet or CSV written to a temp file in the target folder, renamed on success.

    The temp file carries the writer's process id: a later run at the same path removes those of
    processes that no longer exist. SIGTERM during the write unwinds like Ctrl-C, so the temp file
    of a stopped run is removed too.
    """

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        suffix = self.path.suffix.lower()
        if suffix not in (".parquet", ".csv"):
            raise ValueError(f"Output {self.path}: expected a .parquet or .csv file name. Got {suffix!r}.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.path)
        handle, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.{os.getpid()}.",
                                        suffix=".tmp")
        os.close(handle)
        self.temporary = Path(name)
        self.parquet = None
        self.rows = 0
        self._previous_sigterm = _unwind_on_sigterm()
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if self.path.suffix.lower() == ".csv":
            neutralise_formulas(frame).to_csv(self.temporary, mode="a", header=self.rows == 0, index=False)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.temporary, table.schema)
            self.parquet.write_table(table)
        self.rows += len(frame)

    def __exit__(self, kind, error, traceback):
        try:
            if self.parquet is not None:
                self.parquet.close()
            if kind is None:
                # mkstemp makes the file private (0600); the output gets the usual umask instead.
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self.temporary, 0o666 & ~umask)
                os.replace(self.temporary, self.path)
        finally:
            self.temporary.unlink(missing_ok=True)  # gone already after a successful rename
            if self._previous_sigterm is not None:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
        return False


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove temp files of earlier writes to ``path`` whose process is gone (killed runs); returns them."""
    removed = []
    for candidate in path.parent.glob(f".{path.name}.*.tmp"):
        pid = candidate.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unwind_on_sigterm():
    """Turn SIGTERM into SystemExit while writing (main thread, default handler only); returns the old handler."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, stop)
