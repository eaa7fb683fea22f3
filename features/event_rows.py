"""The events of given leads as three flat arrays (lead position, microseconds, type id), in any order.

``build_engagement_features`` needs nothing else from an event log. Three readers give the same
rows: pyarrow straight from a Parquet file with typed timestamps (its type column read as the
file's dictionary, its lead ids looked up in a table rather than joined), DuckDB for every other
file or a large frame (CSV, text timestamps: the contract's parsing), numpy for a few leads' frame.
Every reader keeps only the events of the given leads with a known time before ``last_as_of_us``.
"""

from __future__ import annotations

import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.fresh_memory import empty_array
from features.contract import EVENT_COLUMNS, event_relation, require_event_columns
from features.spec import event_key
from features.timing import naive_utc

# Rows per Parquet batch: large enough that the per-batch Python work vanishes, small enough that
# only the kept rows, not the file, are ever held.
_PARQUET_BATCH_ROWS = 1 << 20


class EventRows(NamedTuple):
    """Events as flat arrays: ``lead`` (position among the given lead ids), ``ts`` (microseconds since
    the epoch, naive UTC), ``norm`` (an id of the normalised type) and ``code_of_norm`` (each id's
    column block: its spec type, or ``other`` last)."""

    lead: np.ndarray
    ts: np.ndarray
    norm: np.ndarray
    code_of_norm: np.ndarray


def read_events_parquet(path: Path, lead_ids, last_as_of_us: int, types, *, keep=None, check=None):
    """The events of ``lead_ids`` grouped by lead (``features.event_pass.GroupedEvents``), read by pyarrow.

    For a Parquet file with typed times. Two passes over the file: the first reads only the lead
    ids, keeps each row's lead position and counts each lead's events; the second reads times and
    types and puts every event straight into its lead's block (no sort, no join). Each pass runs
    on a few threads, each over its own run of row groups, with its own count per lead: a lead's
    block holds the first thread's events, then the next's, so the file order within a lead stays.
    The type column is read as the file's own dictionary, so a few distinct strings are normalised
    and each row is a small integer; lead ids are looked up in a table. An event without a time
    gets ``NO_TIME`` (never before an ``as_of``); ``last_as_of_us`` is not needed to filter: the
    pass stops at each snapshot's ``as_of``.

    ``keep`` (a mask over ``lead_ids``) keeps only those leads' events, grouped in the order of
    ``lead_ids[keep]``: the others' are matched (not another base's) and left out. ``check``
    (:class:`features.event_log_check.EventLogCounts`) counts what the contract refuses on the way.
    """
    import pyarrow.parquet as pq

    from features.event_pass import NO_TIME, GroupedEvents, count_per_lead, scatter_arrow_batch, worker_threads

    metadata = pq.ParquetFile(path).metadata
    sizes = [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
    parts = _runs_of_row_groups(sizes, worker_threads(metadata.num_rows, rows_per_thread=_PARQUET_BATCH_ROWS))
    lookup = _LeadLookup(lead_ids)
    kept = None
    if keep is not None:  # position among all ids -> position among the kept ones (-1: not kept, and for -1)
        keep = np.asarray(keep, dtype=bool)
        kept = np.append(np.where(keep, np.cumsum(keep) - 1, -1), -1).astype(np.int32)
    if check is not None:
        check.start(metadata.num_rows, pq.read_schema(path), lookup.known.type)
    lead = empty_array(metadata.num_rows, np.int32)  # each row's lead position, kept for the second pass
    counts = np.zeros((len(parts), (len(lookup.ids) if keep is None else int(keep.sum())) + 1), dtype=np.int64)

    def batches(part, columns):
        groups, first_row = part
        if not groups:
            return
        done = first_row
        for batch in pq.ParquetFile(path, read_dictionary=["event_type"]).iter_batches(
                batch_size=_PARQUET_BATCH_ROWS, row_groups=groups, columns=columns, use_threads=False):
            yield done, batch
            done += batch.num_rows

    def count(t):
        for done, batch in batches(parts[t], ["lead_id"]):
            positions = lead[done:done + batch.num_rows]
            found = lookup.positions(batch.column(0))
            if check is not None:
                check.add_ids(found)
            positions[:] = found if kept is None else kept[found]
            count_per_lead(positions, counts[t])

    norm_ids: dict[str, int] = {}
    naming = threading.Lock()

    def scatter(t):
        for done, batch in batches(parts[t], ["occurred_at", "event_type"]):
            occurred, kinds = batch.column(0), batch.column(1)
            if not pa.types.is_dictionary(kinds.type):
                kinds = kinds.dictionary_encode()
            # The batch's few distinct raw types, each given the id of its normalised key.
            raw = kinds.dictionary.to_pylist()
            with naming:
                norm_of_index = np.array([norm_ids.setdefault(event_key(r), len(norm_ids)) for r in raw]
                                         + [norm_ids.setdefault("", len(norm_ids))], dtype=np.int16)
            # Times and type indices go to the kernel as the batch's own buffers: it converts and scatters,
            # and counts the times after the check's now over every row (of any lead, as the check counts).
            indices = kinds.indices
            future = scatter_arrow_batch(lead[done:done + batch.num_rows], _values(occurred, np.int64),
                                         _SCALE_TO_MICROSECONDS[occurred.type.unit], _null_flags(occurred),
                                         _values(indices, indices.type.to_pandas_dtype()), norm_of_index,
                                         _null_flags(indices), fills[t], grouped.ts, grouped.norm,
                                         NO_TIME if check is None else check.now_us)
            if check is not None:
                check.add_times(missing=occurred.null_count, future=future)

    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        list(pool.map(count, range(len(parts))))
        start = np.cumsum(counts.sum(axis=0))
        # Thread t writes lead k's events after those of threads before it.
        fills = start[:-1] + np.cumsum(counts, axis=0)[:, 1:] - counts[:, 1:]
        grouped = GroupedEvents(empty_array(start[-1], np.int64), empty_array(start[-1], np.int16), start, None)
        list(pool.map(scatter, range(len(parts))))
    code = {name: i for i, name in enumerate(types)}
    code_of_norm = np.array([code.get(name, len(types) - 1) for name in norm_ids] or [len(types) - 1], dtype=np.int64)
    return grouped._replace(code_of_norm=code_of_norm)


def _runs_of_row_groups(sizes: list[int], parts: int) -> list[tuple[list[int], int]]:
    """Up to ``parts`` runs of consecutive row groups with about equal rows: ``(groups, first row)`` each."""
    total, runs, current, first, done = sum(sizes), [], [], 0, 0
    for group, size in enumerate(sizes):
        current.append(group)
        done += size
        if done >= total * (len(runs) + 1) / parts and len(runs) < parts - 1:
            runs.append((current, first))
            current, first = [], done
    if current or not runs:
        runs.append((current, first))
    return runs


def read_events_duckdb(events, lead_ids, last_as_of_us, types, memory_limit: str) -> EventRows:
    """(lead position, microseconds, type id) of every timed event of the given leads, by DuckDB."""
    with tempfile.TemporaryDirectory(prefix="engagement-spill-") as spill, duckdb.connect() as con:
        con.execute(f"SET memory_limit = '{_sql_string(memory_limit)}'")
        con.execute(f"SET temp_directory = '{_sql_string(spill)}'")
        con.execute("SET TimeZone = 'UTC'")  # zoned timestamps in a file become naive UTC
        source = _event_source(con, events)
        con.register("eng_leads", pd.DataFrame({"lead": np.arange(len(lead_ids), dtype=np.int32),
                                                "lead_id": lead_ids}))
        event_id_type = con.sql(f"SELECT lead_id FROM {source}").types[0]
        lead_id_type = con.sql("SELECT lead_id FROM eng_leads").types[0]
        join = "e.lead_id = l.lead_id"
        if str(event_id_type) != str(lead_id_type):  # ids match as text: "007" is not 7
            join = "CAST(e.lead_id AS VARCHAR) = CAST(l.lead_id AS VARCHAR)"
        # Normalise the few distinct raw types in Python; the join below maps each row to an id of
        # its normalised type, so duplicates are found on small integers rather than strings.
        raw_types = [row[0] for row in con.sql(
            f"SELECT DISTINCT CAST(event_type AS VARCHAR) FROM {source}").fetchall()]
        norm_of_raw, code_of_norm, missing_type = type_ids(raw_types, types)
        con.register("eng_types", pd.DataFrame({
            "raw": pd.Series([r for r in raw_types if r is not None], dtype=object),
            "norm": np.array([norm_of_raw[r] for r in raw_types if r is not None], dtype=np.int16),
        }))
        # No event at or after the latest as_of is ever seen: leave those in the file.
        last = np.int64(last_as_of_us).astype("datetime64[us]")
        table = con.sql(f"""
            SELECT l.lead, epoch_us(CAST(e.occurred_at AS TIMESTAMP)) AS ts,
                   coalesce(t.norm, {missing_type}::SMALLINT) AS norm
            FROM {source} AS e
            JOIN eng_leads AS l ON {join}
            LEFT JOIN eng_types AS t ON CAST(e.event_type AS VARCHAR) = t.raw
            WHERE CAST(e.occurred_at AS TIMESTAMP) < TIMESTAMP '{last}'
        """).to_arrow_table()
    return EventRows(table.column(0).to_numpy(), table.column(1).to_numpy(), table.column(2).to_numpy(),
                     code_of_norm)


def read_events_frame(events: pd.DataFrame, lead_ids, types) -> EventRows:
    """The rows ``read_events_duckdb`` gives, from a small frame with numpy."""
    require_event_columns(events.columns, "events")
    known_ids = np.asarray(lead_ids)
    event_ids = events["lead_id"].to_numpy()
    numeric = {known_ids.dtype.kind, event_ids.dtype.kind} <= set("iuf")  # compared as numbers already
    if not numeric and known_ids.dtype.kind != event_ids.dtype.kind:  # as text, like the DuckDB join
        known_ids, event_ids = known_ids.astype(str), event_ids.astype(str)
    lead = pd.Index(known_ids).get_indexer(event_ids)

    occurred = events["occurred_at"]
    if not pd.api.types.is_datetime64_any_dtype(occurred):
        occurred = pd.to_datetime(occurred, errors="coerce", utc=True, format="mixed")
    occurred_us = naive_utc(occurred).to_numpy().astype("datetime64[us]")
    keep = (lead >= 0) & ~np.isnat(occurred_us)

    codes, uniques = pd.factorize(events["event_type"].to_numpy(dtype=object), use_na_sentinel=True)
    norm_of_raw, code_of_norm, missing_type = type_ids([str(u) for u in uniques], types)
    norm_of_code = np.array([norm_of_raw[str(u)] for u in uniques] + [missing_type], dtype=np.int64)
    norm = norm_of_code[codes]  # code -1 (missing type) picks the trailing id
    return EventRows(lead[keep], occurred_us.view(np.int64)[keep], norm[keep], code_of_norm)


def no_events(types) -> EventRows:
    """No rows at all (no snapshots to read events for)."""
    empty = np.empty(0, dtype=np.int64)
    return EventRows(empty, empty, empty, type_ids([], types)[1])


def type_ids(raw_types, types):
    """Ids of the normalised types (sorted, "" included), the layout code of each, and the id of "".

    ``types`` are the spec's event keys, ``other`` last. Returns ``(norm id per raw type,
    code_of_norm, id of the missing type)``.
    """
    normalised = {raw: event_key(raw) for raw in raw_types}
    distinct = sorted(set(normalised.values()) | {""})
    norm_id = {name: i for i, name in enumerate(distinct)}
    code = {name: i for i, name in enumerate(types)}
    code_of_norm = np.array([code.get(name, len(types) - 1) for name in distinct], dtype=np.int64)
    return {raw: norm_id[value] for raw, value in normalised.items()}, code_of_norm, norm_id[""]


def _event_source(con, events) -> str:
    """A DuckDB view over the events, checked for the three contract columns."""
    event_relation(con, events).create_view("eng_events")
    return "eng_events"


def _sql_string(text: str) -> str:
    return text.replace("'", "''")


class _LeadLookup:
    """Each event's lead position among ``lead_ids`` (-1 for another lead), as the DuckDB join matches them.

    Integer ids in a compact range index a table directly (one compiled gather per batch, no
    hashing); other ids go through Arrow's hash lookup. Ids of different kinds match as text
    ("007" is not 7).
    """

    def __init__(self, lead_ids):
        self.ids = pd.Index(lead_ids)
        self.table = None
        values = self.ids.to_numpy()
        self.known = pa.array(values if values.dtype.kind in "iuf" else values.astype(object))
        if values.dtype.kind in "iu" and len(values):
            low, high = int(values.min()), int(values.max())
            if high - low < 4 * len(values) + 1_000_000:
                self.low = low
                self.table = np.full(high - low + 1, -1, dtype=np.int32)
                self.table[values - low] = np.arange(len(values), dtype=np.int32)

    def positions(self, ids: pa.Array) -> np.ndarray:
        if self.table is not None and pa.types.is_integer(ids.type):
            from features.event_pass import look_up_positions

            if ids.null_count:
                ids = ids.fill_null(self.low - 1)
            return look_up_positions(_values(ids, ids.type.to_pandas_dtype()).astype(np.int64, copy=False),
                                     self.low, self.table)
        known = self.known
        if _id_kind(known.type) != _id_kind(ids.type):
            known, ids = known.cast(pa.string()), ids.cast(pa.string())
        return pc.index_in(ids, value_set=known).fill_null(-1).to_numpy().astype(np.int32)


def _id_kind(kind: pa.DataType) -> str:
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return "number"
    return "text" if pa.types.is_string(kind) or pa.types.is_large_string(kind) else str(kind)


def is_typed_parquet(events) -> bool:
    """A Parquet file pyarrow reads as the contract says: timestamps typed, types as text, ids as numbers or text."""
    if not isinstance(events, (str, os.PathLike)):
        return False
    path = Path(events)
    if path.suffix.lower() not in (".parquet", ".pq") or not path.is_file():
        return False
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError):
        return False  # DuckDB's reader says what is wrong with the file
    if any(name not in schema.names for name in EVENT_COLUMNS):
        return False
    kind = schema.field("event_type").type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return (pa.types.is_timestamp(schema.field("occurred_at").type)
            and (pa.types.is_string(kind) or pa.types.is_large_string(kind))
            and _id_kind(schema.field("lead_id").type) in ("number", "text"))


#: ``scatter_arrow_batch``'s factor from an Arrow time unit to microseconds (0: nanoseconds, rounded).
_SCALE_TO_MICROSECONDS = {"ns": 0, "us": 1, "ms": 1_000, "s": 1_000_000}


def _values(array: pa.Array, dtype) -> np.ndarray:
    """A fixed-width Arrow array's values buffer as numpy, without a copy; values under a null are undefined."""
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=array.offset + len(array))[array.offset:]


def _null_flags(array: pa.Array) -> np.ndarray:
    """One flag per row, True where null; empty when the array has no nulls (nothing to look up)."""
    if not array.null_count:
        return np.empty(0, dtype=np.bool_)
    return array.is_null().to_numpy(zero_copy_only=False)
