"""Lead tables read a chunk at a time, so batch scoring's memory is bounded by the chunk, not the lead base.

A lead source is anything with ``source`` (a name for messages), ``lead_ids()`` (every id, read
cheaply: one column) and ``chunks(rows)`` (raw lead rows, at most ``rows`` at a time, in table
order). Parquet files stream by record batch, CSV files by pandas' chunked reader, a frame by
slices; a database cursor plugs in the same way (see ``FrameLeads`` for the smallest example).
``StreamedLeads`` wraps a source with the contract's checks: ids unique and present across the
whole table (from the id pass), every chunk validated as ``validate_leads`` validates a table.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from crm.readers import CSV_SUFFIXES, _plain_numbers, contract_numbers, detect_delimiter, read_contract_numbers
from features.column_types import decide_decimal
from features.contract import DataContractError, contract_message, validate_deals, validate_events, validate_leads
from features.event_log_check import EventLogToCheck
from features.event_rows import is_typed_parquet

#: Lead rows per chunk: scoring 100,000 leads then peaks where scoring a million does.
DEFAULT_CHUNK_ROWS = 100_000
_READ_BUFFER = 1 << 20


class ParquetLeads:
    """A Parquet lead table, read one record batch of at most ``rows`` rows at a time."""

    def __init__(self, path):
        self.path = Path(path)
        self.source = str(self.path)

    def lead_ids(self) -> pd.Series:
        import pyarrow.parquet as pq

        names = pq.read_schema(self.path).names
        if "lead_id" not in names:
            raise DataContractError(f"{self.source}: missing column(s) ['lead_id']; expected ['lead_id', "
                                    f"'created_at']. Columns found: {names}.")
        return pq.read_table(self.path, columns=["lead_id"]).column("lead_id").to_pandas()

    def chunks(self, rows: int) -> Iterator[pd.DataFrame]:
        import pyarrow.parquet as pq

        # Pages through a 1 MiB buffer, not each row group's column chunks read whole first: a
        # million leads in one row group (33 MB on disk) cost about 25 MB more that way.
        with pq.ParquetFile(self.path, pre_buffer=False, buffer_size=_READ_BUFFER) as file:
            for batch in file.iter_batches(batch_size=rows):
                yield batch.to_pandas()


class CsvLeads:
    """A CSV lead table, read ``rows`` lines at a time with the delimiter detected once.

    Each chunk gets the readers' clean-up (trailing empty column dropped, numbers with thousands
    separators made numeric); a column whose values are numbers in one chunk and text in another
    ends up numeric only where it is: the model's numeric columns are parsed again when features
    are built, so scores do not depend on where the chunks fall.
    """

    def __init__(self, path, *, encoding="utf-8-sig", decimal="."):
        self.path, self.encoding, self.decimal = Path(path), encoding, decimal
        self.source = str(self.path)

    def lead_ids(self) -> pd.Series:
        try:
            return self._read(usecols=["lead_id"])["lead_id"]
        except DataContractError as error:
            if "lead_id" in str(error) and "Usecols" in str(error):
                raise DataContractError(f"{self.source}: missing column(s) ['lead_id']; expected ['lead_id', "
                                        "'created_at'].") from None
            raise

    def chunks(self, rows: int) -> Iterator[pd.DataFrame]:
        yield from self._read(chunksize=rows)

    def _read(self, **options):
        with open(self.path, encoding=self.encoding, newline="") as handle:
            delimiter = detect_delimiter(handle.read(1 << 16))
        try:
            read = pd.read_csv(self.path, sep=delimiter, encoding=self.encoding, decimal=self.decimal,
                               low_memory=False, **options)
        except (pd.errors.ParserError, ValueError) as error:
            raise DataContractError(f"{self.path}: could not read it as CSV with delimiter {delimiter!r}: "
                                    f"{error}") from None
        if "chunksize" not in options:
            return read
        return (self._clean(chunk) for chunk in read)

    def _clean(self, frame: pd.DataFrame) -> pd.DataFrame:
        trailing = [column for column in frame.columns
                    if str(column).startswith("Unnamed: ") and frame[column].isna().all()]
        frame = frame.drop(columns=trailing)
        for column in frame.columns:
            if pd.api.types.is_object_dtype(frame[column]) or pd.api.types.is_string_dtype(frame[column]):
                text = frame[column].astype("string").str.strip()
                numbers = pd.to_numeric(_plain_numbers(text, self.decimal), errors="coerce")
                if text.notna().any() and numbers[text.notna()].notna().all():
                    frame[column] = numbers.astype(float)
        return frame


class FrameLeads:
    """A lead table already in memory, sliced into chunks (tests, notebooks, a caller's own reader)."""

    def __init__(self, frame: pd.DataFrame, *, source="leads"):
        self.frame, self.source = frame, source

    def lead_ids(self) -> pd.Series:
        return self.frame["lead_id"]

    def chunks(self, rows: int) -> Iterator[pd.DataFrame]:
        for start in range(0, len(self.frame), rows):
            yield self.frame.iloc[start:start + rows]


def lead_source(leads):
    """The lead source for a path (.parquet or .csv), a frame, or a source already."""
    if isinstance(leads, pd.DataFrame):
        return FrameLeads(leads)
    if hasattr(leads, "chunks") and hasattr(leads, "lead_ids"):
        return leads
    path = Path(leads)
    if not path.exists():
        raise DataContractError(f"{path}: no such file.")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return ParquetLeads(path)
    if suffix in CSV_SUFFIXES:
        return CsvLeads(path)
    raise DataContractError(f"{path}: expected a .csv or .parquet file, got {suffix!r}.")


class StreamedLeads:
    """A lead source checked as a whole (ids) and chunk by chunk (every other rule of the contract).

    Iterating gives validated lead chunks of at most ``chunk_rows`` rows, ``created_at`` parsed.
    ``lead_ids`` holds every id for the checks against deals and events (``stream_crm`` lets go
    of it once they are done); ``len()`` is the number of leads.
    """

    def __init__(self, source, *, now=None, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        if chunk_rows <= 0:
            raise ValueError(f"The 'chunk_rows' parameter of StreamedLeads must be positive. Got {chunk_rows!r}.")
        self.source, self.now, self.chunk_rows = lead_source(source), now, chunk_rows
        ids = self.source.lead_ids()
        name = self.source.source
        if ids.isna().any():
            raise DataContractError(contract_message(name, "lead_id", "an id on every lead",
                                                     f"{int(ids.isna().sum())} missing",
                                                     ids[ids.isna()].to_frame("lead_id")))
        duplicated = ids.duplicated(keep=False)
        if duplicated.any():
            raise DataContractError(contract_message(name, "lead_id", "unique values",
                                                     f"{ids[duplicated].nunique()} duplicated ids",
                                                     ids[duplicated].to_frame("lead_id")))
        self.lead_ids = ids.reset_index(drop=True)
        self.rows = len(ids)
        self.decimal = _decimal_mark(self.source)  # one decision for the whole table, not one per chunk

    def __len__(self) -> int:
        return self.rows

    def __iter__(self) -> Iterator[pd.DataFrame]:
        name = self.source.source
        for chunk in self.source.chunks(self.chunk_rows):
            yield read_contract_numbers(validate_leads(chunk.reset_index(drop=True), source=name, now=self.now),
                                        source=name, decimal=self.decimal)


def _decimal_mark(source) -> str | None:
    """The decimal mark of a lead source's number columns: a CSV's own; for Parquet, decided from its text number
    columns read whole (one column each, as the ids are), None (decide per chunk) for other sources."""
    if isinstance(source, CsvLeads):
        return source.decimal
    if not isinstance(source, ParquetLeads):
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(source.path)
    texts = [column for column in contract_numbers()[0] if column in schema.names
             and (pa.types.is_string(schema.field(column).type) or pa.types.is_large_string(schema.field(column).type))]
    if not texts:
        return "."
    table = pq.read_table(source.path, columns=texts)
    return decide_decimal([table.column(column).to_pandas().astype("string").str.strip() for column in texts],
                          source=source.source)


def stream_crm(leads, events=None, deals=None, *, now=None, chunk_rows: int = DEFAULT_CHUNK_ROWS):
    """``load_crm`` for scoring: ``(leads, events, deals)`` with the leads streamed as ``StreamedLeads``.

    Deals are read and checked whole. A Parquet deals table is then kept as ``StreamedDeals``, read
    again for each lead chunk's leads, so nothing of it is held per lead; another table is kept only
    as each lead's first closing (all scoring needs: which leads were closed before ``as_of``). The
    event log stays a path, checked by DuckDB against the lead ids; a typed Parquet log comes back as
    ``features.event_log_check.EventLogToCheck``, checked during scoring's one read of it instead
    (same refusals, same messages). The lead table is read once for its ids here and once, chunk by
    chunk, while scoring.
    """
    from crm.readers import read_table

    streamed = StreamedLeads(leads, now=now, chunk_rows=chunk_rows)
    checked = None
    if deals is not None:
        parquet = Path(deals).suffix.lower() in (".parquet", ".pq") and Path(deals).exists()
        parts = _deal_batches(deals, chunk_rows) if parquet else [read_table(deals)]
        checked = _checked_first_closings(parts, streamed.lead_ids, source=str(deals), now=now)
        if parquet:
            checked = StreamedDeals(deals, now=now, latest=checked["closed_at"].max() if len(checked) else None,
                                    batch_rows=chunk_rows)
    if events is not None and is_typed_parquet(events):
        # Checked during scoring's one read of the file, not by a scan of its own (features.event_log_check).
        events = EventLogToCheck(events, leads=streamed.source, now=now)
    elif events is not None:
        validate_events(events, lead_ids=streamed.lead_ids, source=str(events), now=now)
    streamed.lead_ids = None  # checked: scoring needs no table-wide list (8 MB per million leads)
    return streamed, events, checked


class StreamedDeals:
    """A checked Parquet deals table, read again for each lead chunk: memory bounded by the chunk.

    Kept for the whole base, each lead's first closing is 16 bytes per closed lead (9 MB per
    million leads), the one part of batch scoring that still grew with the lead base. Here each
    chunk's first closings are read from the file when asked: DuckDB joins the chunk's ids to the
    deals (one pass over the deals table per chunk, small beside the events join). ``latest`` is
    the newest first closing, for the staleness check.
    """

    def __init__(self, path, *, now=None, latest=None, batch_rows: int = DEFAULT_CHUNK_ROWS):
        self.path, self.now, self.latest, self.batch_rows = Path(path), now, latest, batch_rows

    def first_closings(self, lead_ids: pd.Series) -> pd.DataFrame:
        """``lead_id`` and ``closed_at`` of the first closing of each of these leads that has one.

        The closings ``stream_crm`` checked for the whole table, cut to ``lead_ids``; ids match as
        ``validate_deals`` matches them (as text when the two tables type them differently).
        """
        import duckdb
        import pyarrow as pa
        import pyarrow.parquet as pq

        lead_ids = pd.Series(lead_ids).reset_index(drop=True)
        schema = pq.read_schema(self.path)
        closed_at = schema.field("closed_at").type
        # DuckDB reads zoned times as microseconds: a zoned nanosecond column takes the checked route.
        if pa.types.is_timestamp(closed_at) and (closed_at.tz is None or closed_at.unit != "ns"):
            first = "min(closed_at)" if closed_at.tz is None else "min(CAST(closed_at AS TIMESTAMP))"
            with duckdb.connect() as con:
                con.execute("SET TimeZone = 'UTC'")  # zoned closings become naive UTC, as the checks make them
                con.execute("SET threads = 1")  # one pass over a small table: a second thread only adds buffers
                deals = con.read_parquet(str(self.path))
                con.register("chunk_ids", pd.DataFrame({"lead_id": lead_ids.to_numpy()}))
                if str(deals.select("lead_id").types[0]) == str(con.sql("SELECT lead_id FROM chunk_ids").types[0]):
                    firsts = deals.filter("lead_id IN (SELECT lead_id FROM chunk_ids)").aggregate(
                        f"lead_id, {first} AS closed_at", "lead_id").df()
                    return firsts.astype({"lead_id": lead_ids.dtype, "closed_at": "datetime64[ns]"})
        return self._first_closings_checked(lead_ids)

    def _first_closings_checked(self, lead_ids: pd.Series) -> pd.DataFrame:
        """The general route (ids typed differently, closings stored as text): every batch matched and checked."""
        from features.column_types import same_id_type

        mine = (part[same_id_type(part["lead_id"], lead_ids).isin(lead_ids).to_numpy()].reset_index(drop=True)
                for part in _deal_batches(self.path, self.batch_rows))
        parts = [part for part in mine if len(part)]
        if not parts:
            return pd.DataFrame({"lead_id": lead_ids.iloc[:0], "closed_at": pd.Series([], dtype="datetime64[ns]")})
        return _checked_first_closings(parts, lead_ids, source=str(self.path), now=self.now)[["lead_id", "closed_at"]]


def _checked_first_closings(parts, lead_ids, *, source: str, now=None) -> pd.DataFrame:
    """``lead_id``, ``closed_at``, ``outcome`` of each lead's first closing over deal batches, each checked.

    Each batch is checked and cut to its leads' first closings; the first closings of those are
    the table's (a stable sort: ties keep the file's order), so only they are ever kept.
    """
    from features.snapshots import first_closing

    firsts = [first_closing(validate_deals(part, lead_ids=lead_ids, source=source, now=now))
              .astype({"outcome": "category"}).reset_index() for part in parts]
    if not firsts:  # a Parquet table without rows has no batches: refused as an empty table is
        validate_deals(pd.DataFrame(columns=["lead_id", "closed_at", "outcome"]), lead_ids=lead_ids, source=source)
    return first_closing(pd.concat(firsts, ignore_index=True).astype({"outcome": "category"})).reset_index()


def _deal_batches(path, rows: int) -> Iterator[pd.DataFrame]:
    """A Parquet deals table, a record batch of at most ``rows`` rows at a time."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path, pre_buffer=False, buffer_size=_READ_BUFFER) as file:
        for batch in file.iter_batches(batch_size=rows):
            yield batch.to_pandas()
