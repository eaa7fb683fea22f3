"""A batch run's output table, written so that a dropped connection costs a retry, not the run.

The run's chunks go to a local Parquet file as they are scored (memory stays bounded by the chunk);
on a clean exit the file is written into the table in one transaction (staging table, then
swapped in: :class:`crm.table_writer.TableWriter`). When the server drops the connection in the
middle, that transaction is gone whole, nothing half-written is left, and the write starts again
from the file on fresh connections (``Database.retried``: 1 s, 2 s, 4 s), without scoring again.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pandas as pd

from crm.export_loader import load_export
from crm.temporaries import temporary_for


class SpooledTableWrite:
    """``write(frame)`` spools chunks; leaving the block without an error writes them into ``table``, retried."""

    def __init__(self, database, table: str, *, chunk_rows: int = 100_000, progress=None):
        self.database, self.table, self.chunk_rows, self.progress = database, table, chunk_rows, progress

    def __enter__(self):
        # Named with this process's id, so the next write of the table removes the spool of a killed run.
        name = re.sub(r"[^\w.-]", "_", self.table)
        self.spool = temporary_for(Path(tempfile.gettempdir()) / f"lead-scoring-{name}", suffix=".tmp.parquet")
        self.parquet = ParquetChunks(self.spool)
        self.rows = 0
        return self

    def write(self, frame: pd.DataFrame) -> None:
        self.parquet.write(frame)
        self.rows += len(frame)

    def __exit__(self, kind, error, traceback):
        try:
            self.parquet.close()
            if kind is None:
                if not self.parquet.opened:
                    raise ValueError(f"Nothing was written for table {self.table!r}: no columns to create it with.")
                self.database.retried(lambda: load_export(self.spool, self.database, self.table,
                                                          chunk_rows=self.chunk_rows, progress=self.progress),
                                      doing=f"writing table {self.table!r}")
        finally:
            self.spool.unlink(missing_ok=True)
        return False


class ParquetChunks:
    """Frames appended to one Parquet file as they come; the file's schema is the first frame's."""

    def __init__(self, path: Path):
        self.path, self.writer = path, None

    @property
    def opened(self) -> bool:
        return self.writer is not None

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
