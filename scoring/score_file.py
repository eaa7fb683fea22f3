"""A score file: checked before any work, written chunk by chunk to a temp file and renamed, spreadsheet-safe.

A killed run leaves no half-written output: its temp file carries its process id, and the next
run at the same path removes those of processes that are gone.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path

import pandas as pd

from crm.spooled_writer import ParquetChunks
from crm.temporaries import remove_stale_temporaries, temporary_for

__all__ = ["FORMULA_STARTS", "AtomicScoreFile", "check_output", "neutralise_formulas", "remove_stale_temporaries"]


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
class AtomicScoreFile:
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
        self.temporary = temporary_for(self.path)
        self.parquet = ParquetChunks(self.temporary) if suffix == ".parquet" else None
        self.rows = 0
        self._previous_sigterm = _unwind_on_sigterm()
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if self.parquet is None:
            neutralise_formulas(frame).to_csv(self.temporary, mode="a", header=self.rows == 0, index=False)
        else:
            self.parquet.write(frame)
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


def _unwind_on_sigterm():
    """Turn SIGTERM into SystemExit while writing (main thread, default handler only); returns the old handler."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, stop)
