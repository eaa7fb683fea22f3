"""Batch scoring of a whole lead base: chunked, with reasons, written atomically (CLI, demo, Spark, databases)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from features.build import build_features
from features.snapshots import open_leads
from features.timing import utc_now
from models.history import with_previous
from models.reasons import reason_columns

REASON_COLUMNS = tuple(f"{side}_reason_{k}" for side in ("positive", "negative") for k in (1, 2, 3))
SCORE_COLUMNS = ("lead_id", "probability", "score", "tier", "fit_score", "engagement_score", *REASON_COLUMNS,
                 "model_version", "as_of", "scored_at")


def score_lead_base(bundle, leads: pd.DataFrame, events, *, as_of, out, deals: pd.DataFrame | None = None,
                    model_version: str = "", thresholds=None, chunk_size: int = 200_000,
                    explain: bool = True, progress=None, monitor=None, history=None,
                    model_name: str = "") -> pd.Series:
    """Score every lead open at ``as_of`` into ``out``; return the tier counts.

    ``out`` is a .parquet or .csv path, or a sink: a context manager with ``write(frame)`` that
    makes the output appear on a clean exit only (``crm.database.Database.write_table``).

    Beside probability, score and tier each row carries the fit and engagement sub-scores and up
    to three positive and three negative reasons as text ("requested a demo 3 days ago (+1.20)");
    ``explain=False`` leaves those out, for speed (LightGBM's exact contributions cost about ten
    times its prediction). ``monitor``, a :class:`models.monitoring.DriftMonitor`, counts each
    chunk's features, probabilities and tiers for the drift report. ``history``, a
    :class:`models.history.ScoreHistory`, adds each lead's previous score and trend to the output
    and gets this run's rows (with ``model_name``) once the output is written.
    Leads are processed in chunks so memory stays bounded by ``chunk_size``. The output is
    written to a temporary file beside ``out`` and renamed at the end: a failed run leaves the
    previous file untouched and no partial one.
    """
    if chunk_size <= 0:
        raise ValueError(f"The 'chunk_size' parameter of score_lead_base must be positive. Got {chunk_size!r}.")
    sink = out if hasattr(out, "write") else _AtomicWriter(Path(out))
    snapshots = open_leads(leads, deals, as_of)
    scored_at = utc_now().floor("s")
    started = time.perf_counter()
    counts = pd.Series(0, index=["SQL", "MQL", "nurture"], dtype=np.int64)
    latest = history.latest() if history is not None else None
    # The history's run is entered first so it is left last: committed only once the output is in place.
    with _history_run(history, scored_at) as history_writer, sink as writer:
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
            if monitor is not None:
                monitor.add(features, frame["probability"], frame["tier"])
            if latest is not None:
                frame = with_previous(frame, latest)
            writer.write(frame)
            if history_writer is not None:
                history_writer.write(frame.assign(model_name=model_name))
            counts = counts.add(frame["tier"].value_counts(), fill_value=0).astype(np.int64)
            if progress:
                done = start + len(chunk)
                elapsed = time.perf_counter() - started
                progress(f"scored {done:,}/{len(snapshots):,} open leads "
                         f"({done / max(len(snapshots), 1):.0%}, {done / max(elapsed, 1e-9):,.0f} leads/s)")
    return counts


@contextlib.contextmanager
def _history_run(history, scored_at):
    """This run's history writer (None without a history): committed on a clean exit, else discarded."""
    if history is None:
        yield None
        return
    writer = history.writer(scored_at)
    try:
        yield writer
        writer.commit()
    finally:
        writer.discard()


class _AtomicWriter:
    """Chunked Parquet or CSV written to a temp file in the target folder, renamed on success."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        suffix = self.path.suffix.lower()
        if suffix not in (".parquet", ".csv"):
            raise ValueError(f"Output {self.path}: expected a .parquet or .csv file name. Got {suffix!r}.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(handle)
        self.temporary = Path(name)
        self.parquet = None
        self.rows = 0
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if self.path.suffix.lower() == ".csv":
            frame.to_csv(self.temporary, mode="a", header=self.rows == 0, index=False)
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
        return False
