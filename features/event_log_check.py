"""The event log's contract check counted during batch scoring's one read of it, not in a scan of its own.

``validate_events`` scans an event log with DuckDB; batch scoring then reads the same Parquet file
again (``features.lead_events``): 2.0 s of CPU for 21.8M events went to that second scan. For a
typed Parquet log ``crm.sources.stream_crm`` hands on an :class:`EventLogToCheck` instead of
checking it: the read counts what the contract refuses (no rows, a missing time, a time after
``now``, an id of no lead in the table) with :class:`EventLogCounts`, and only when a count is not
zero does ``validate_events`` run, to raise its own message with its example rows. Same refusals,
same words; a log the counts cannot decide exactly as DuckDB would (ids of different kinds, zoned
nanosecond times, a ``now`` with nanoseconds) is checked by ``validate_events`` as before.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa

from features.contract import validate_events
from features.timing import naive_utc, utc_now


class EventLogToCheck(os.PathLike):
    """A typed Parquet event log whose contract check (``validate_events``) is still to be done.

    A path wherever a path is taken; whoever reads it first checks it: batch scoring's one read
    counts (:meth:`counts`), every other reader calls :meth:`validate` first. ``leads`` is the
    lead source whose ids the events must belong to (``lead_ids()``, read again only if needed).
    """

    def __init__(self, path, *, leads, now=None, source=None):
        self.path, self.leads = Path(path), leads
        self.now = naive_utc(now) if now is not None else utc_now()
        self.source = source or str(self.path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"EventLogToCheck({str(self.path)!r})"

    def counts(self) -> EventLogCounts:
        """Counters for one read of this log (``features.lead_events.LeadEvents.read(check=...)``)."""
        return EventLogCounts(self.now)

    def validate(self, lead_ids=None) -> None:
        """``validate_events`` on this log (raises its ``DataContractError``); ``lead_ids`` default to the source's."""
        ids = self.leads.lead_ids() if lead_ids is None else lead_ids
        validate_events(self.path, lead_ids=ids, source=self.source, now=self.now)

    def check_read(self, counts: EventLogCounts, lead_ids) -> None:
        """After a counted read: nothing when the log passed, else ``validate_events`` says what is wrong."""
        if not counts.passed():
            self.validate(lead_ids)


class EventLogCounts:
    """What ``validate_events`` refuses, counted batch by batch by the threads of one read.

    ``start`` is told the file's rows and types first; ``add_ids`` gets each batch's lead
    positions (-1: an id of no lead), ``add_times`` its times. ``passed()`` is True only when the
    counts decide the log is clean exactly as ``validate_events`` would.
    """

    def __init__(self, now):
        self.now = now
        # validate_events compares with TIMESTAMP '<now>', microseconds: a finer now is its to judge.
        self.decidable = now.nanosecond == 0
        self.now_us = int(now.value // 1_000)
        self.rows = self.refused = 0
        self._lock = threading.Lock()

    def start(self, rows: int, schema: pa.Schema, known_ids: pa.DataType) -> None:
        self.rows = rows
        occurred, ids = schema.field("occurred_at").type, schema.field("lead_id").type
        # DuckDB reads zoned nanoseconds as microseconds its own way; the read rounds as its cast does.
        if occurred.tz is not None and occurred.unit == "ns":
            self.decidable = False
        # DuckDB compares ids as stored when both are integers or both text, else as text ("7" is not 7.0).
        same_kind = ((pa.types.is_integer(ids) and pa.types.is_integer(known_ids))
                     or (_is_text(ids) and _is_text(known_ids)))
        if not same_kind:
            self.decidable = False

    def add_ids(self, positions: np.ndarray) -> None:
        unknown = int(np.count_nonzero(positions < 0))
        if unknown:
            with self._lock:
                self.refused += unknown

    def add_times(self, *, missing: int, future: int) -> None:
        """A batch's missing times and times after ``now_us`` (as DuckDB's naive-UTC TIMESTAMP holds them)."""
        refused = missing + future
        if refused:
            with self._lock:
                self.refused += refused

    def passed(self) -> bool:
        return self.decidable and self.rows > 0 and self.refused == 0


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)
