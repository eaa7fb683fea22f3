"""The event vocabulary as data: which of an event log's own types get columns of their own."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from features.contract import event_relation
from features.spec import RESERVED_EVENT_KEYS, event_key


@dataclass(frozen=True)
class EventVocabulary:
    """Limits for learning event types from the data: the frequent types get columns, the rest is ``other``.

    Parameters
    ----------
    max_types : at most this many types get columns of their own (the most frequent).
    min_count : a type needs at least this many events to get columns.
    min_share : and at least this share of all events (0.01 is 1 %).
    words : ``(type, words)`` pairs for reasons (see ``FeatureSpec.event_words``); the learned
        spec keeps those of the types that get columns.
    """

    max_types: int = 30
    min_count: int = 20
    min_share: float = 0.0
    words: tuple = ()

    def __post_init__(self):
        if not isinstance(self.max_types, int) or isinstance(self.max_types, bool) or self.max_types < 1:
            raise ValueError(f"The 'max_types' parameter of EventVocabulary must be a positive integer. "
                             f"Got {self.max_types!r} instead.")
        if not isinstance(self.min_count, int) or isinstance(self.min_count, bool) or self.min_count < 1:
            raise ValueError(f"The 'min_count' parameter of EventVocabulary must be a positive integer. "
                             f"Got {self.min_count!r} instead.")
        if not 0 <= float(self.min_share) < 1:
            raise ValueError(f"The 'min_share' parameter of EventVocabulary must be in [0, 1). "
                             f"Got {self.min_share!r} instead.")

    def learn(self, events, *, before=None) -> tuple[tuple[str, ...], pd.DataFrame]:
        """The types that get columns, most frequent first, and the count of every type.

        ``events`` is a frame or a CSV/Parquet path with the contract's columns; with ``before``
        only events strictly before it are counted (the training run passes the opening of its test
        window, so the test period does not choose the columns). Spellings with the same key
        (``"Send Fine"``, ``"send fine"``) are one type, named by the most frequent spelling.
        The table has ``event_type``, ``key``, ``events``, ``share`` and ``column`` (True when the
        type got columns).
        """
        counts = type_counts(events, before=before)
        total = int(counts["events"].sum())
        counts["share"] = counts["events"] / total if total else 0.0
        eligible = (counts["events"] >= self.min_count) & (counts["share"] >= self.min_share) & (
            ~counts["key"].isin(("", *RESERVED_EVENT_KEYS)))
        chosen = counts.index[eligible][:self.max_types]
        counts["column"] = counts.index.isin(chosen)
        return tuple(counts.loc[chosen, "event_type"]), counts.reset_index(drop=True)

    def learned_spec(self, spec, events, *, before=None):
        """``spec`` with the learned event types and the words of those types; also the counts table."""
        from dataclasses import replace

        types, counts = self.learn(events, before=before)
        keys = {event_key(kind) for kind in types}
        words = tuple((kind, text) for kind, text in self.words if event_key(kind) in keys)
        return replace(spec, event_types=types, event_words=words), counts


def type_counts(events, *, before=None) -> pd.DataFrame:
    """Events per type key (``event_type`` is the key's most frequent spelling), most frequent first."""
    where = ""
    if before is not None:
        where = f"WHERE CAST(occurred_at AS TIMESTAMP) < TIMESTAMP '{pd.Timestamp(before)}'"
    with duckdb.connect() as con:
        con.register("vocabulary_events", event_relation(con, events))
        raw = con.sql(f"SELECT CAST(event_type AS VARCHAR) AS event_type, count(*) AS events "
                      f"FROM vocabulary_events {where} GROUP BY 1").df()
    raw["key"] = raw["event_type"].map(event_key)
    raw = raw.sort_values(["events", "event_type"], ascending=[False, True], kind="stable")
    grouped = raw.groupby("key", sort=False).agg(event_type=("event_type", "first"), events=("events", "sum"))
    grouped = grouped.reset_index().sort_values(["events", "key"], ascending=[False, True], kind="stable")
    return grouped[["event_type", "key", "events"]].reset_index(drop=True)
