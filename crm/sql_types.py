"""pandas columns into SQL tables: the SQLAlchemy type of a column, and a frame as CSV for PostgreSQL's COPY."""

from __future__ import annotations

import pandas as pd


def sql_type(values: pd.Series):
    """The SQLAlchemy column type a pandas column is stored as."""
    import sqlalchemy

    if pd.api.types.is_bool_dtype(values):
        return sqlalchemy.Boolean()
    if pd.api.types.is_integer_dtype(values):
        return sqlalchemy.BigInteger()
    if pd.api.types.is_float_dtype(values):
        return sqlalchemy.Double()
    if isinstance(values.dtype, pd.DatetimeTZDtype):  # an instant (a score's as_of): timestamptz in PostgreSQL
        return sqlalchemy.DateTime(timezone=True)
    if pd.api.types.is_datetime64_any_dtype(values):
        return sqlalchemy.DateTime(timezone=False)
    return sqlalchemy.Text()


def arrow_csv(frame: pd.DataFrame) -> bytes:
    """The frame as CSV for PostgreSQL's COPY: no header, present values quoted, missing ones empty.

    Zoned times are written with their zone (``...Z``), so a ``timestamptz`` column stores the same
    instant whatever the session's time zone; naive ones as they are.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    # PostgreSQL keeps microseconds and would round the nanoseconds Arrow writes; truncate instead, so a
    # stored time is never later than the real one (an event never moves past an as_of).
    stamps = [column for column in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[column])]
    if stamps:
        frame = frame.assign(**{column: frame[column].dt.floor("us") for column in stamps})
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, quoting_style="all_valid"))
    return sink.getvalue().to_pybytes()


def naive_timestamps(frame: pd.DataFrame) -> pd.DataFrame:
    zoned = [column for column in frame.columns if isinstance(frame[column].dtype, pd.DatetimeTZDtype)]
    if not zoned:
        return frame
    return frame.assign(**{column: frame[column].dt.tz_convert("UTC").dt.tz_localize(None) for column in zoned})
