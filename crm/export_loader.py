"""Loading a CRM export (CSV or Parquet) into a database table, so a nightly run can read it with ``--db``.

The table appears whole or not at all (the database's atomic table writer: staging table, then
swapped in). A CSV is read whole so each column's type is one decision over all its values
(:func:`crm.readers.read_table`); a Parquet file keeps its own types and is streamed by record
batch, so memory is bounded by ``chunk_rows``. Id columns are stored as text, as every scoring
route writes ``lead_id``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crm.readers import read_table

#: Columns stored as text whatever the file holds: an id is a label, not a number.
ID_COLUMNS = ("lead_id",)


def load_export(path, database, table: str, *, chunk_rows: int = 100_000, progress=None) -> int:
    """Write the export at ``path`` into ``table`` of ``database`` (a :class:`crm.database.Database`); its rows.

    ``progress``, when given, is called with the rows written so far after each chunk.
    """
    path = Path(path)
    if chunk_rows <= 0:
        raise ValueError(f"The 'chunk_rows' parameter of load_export must be positive. Got {chunk_rows!r}.")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ValueError(f"{path}: expected a .csv or .parquet export. Got {suffix or 'no suffix'!r}.")
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    rows = 0
    with database.write_table(table) as writer:
        for chunk in _chunks(path, chunk_rows):
            writer.write(_ids_as_text(chunk))
            rows += len(chunk)
            if progress is not None:
                progress(rows)
    return rows


def _chunks(path: Path, chunk_rows: int):
    if path.suffix.lower() == ".csv":
        frame = read_table(path, text_columns=ID_COLUMNS, table=path.stem)
        for start in range(0, len(frame), chunk_rows):
            yield frame.iloc[start:start + chunk_rows]
        return
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
        yield batch.to_pandas()


def _ids_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    ids = {column: frame[column].astype("string") for column in ID_COLUMNS if column in frame.columns}
    return frame.assign(**ids) if ids else frame
