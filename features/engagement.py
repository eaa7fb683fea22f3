"""Engagement features: a lead's event history as of each snapshot's ``as_of``, one row per snapshot."""

from __future__ import annotations

import warnings

import duckdb
import numpy as np
import pandas as pd

from features.fresh_memory import empty_array
from features.lead_events import LeadEvents
from features.event_rows import is_typed_parquet, no_events, read_events_duckdb, read_events_frame, read_events_parquet
from features.spec import FeatureSpec, count_feature, event_key
from features.timing import naive_utc

# DuckDB holds scan buffers and the hash table of the snapshots' lead ids; above this it spills to
# a private temp directory.
_DUCKDB_MEMORY_LIMIT = "2GB"
#: A DuckDB memory limit for a chunk of batch scoring (one snapshot per lead, at most a chunk of
#: them). DuckDB holds scan buffers up to its limit, more the longer the event file: with 2GB the
#: join of 20,000 leads took 0.16 GB more over a 21.8M-event file than over a 2.2M-event one.
SCORING_MEMORY_LIMIT = "128MB"
#: Event frames up to this many rows skip DuckDB: its fixed cost, not the rows, dominates there.
IN_MEMORY_MAX_EVENTS = 20_000


def build_engagement_features(snapshots: pd.DataFrame, events, spec: FeatureSpec, *,
                              memory_limit: str | None = None) -> pd.DataFrame:
    """Count, recency, decayed-intensity and activity features of each (lead_id, as_of) snapshot.

    Only events with ``occurred_at < as_of`` are seen. Exact duplicate events count once; an
    event's type matches a spec type when their keys (:func:`features.spec.event_key`: lower case,
    runs of other characters -> ``_``) are equal; types outside ``spec.event_types`` count as ``other``.

    Parameters
    ----------
    snapshots : frame with ``lead_id`` and ``as_of`` (naive UTC); any index, which the result keeps.
    events : frame, or path to a Parquet/CSV file, with ``lead_id``, ``occurred_at``, ``event_type``;
        or :class:`features.lead_events.LeadEvents`, a lead base's events read once for many calls.
    spec : the feature specification; the result has exactly ``spec.engagement_feature_names``.
    memory_limit : DuckDB's memory limit for reading the events (default 2GB); beyond it DuckDB
        spills to a private temp directory, so a small one bounds memory at some cost in time
        (``SCORING_MEMORY_LIMIT`` for batch scoring's chunks).

    How: the events are read once (:mod:`features.event_rows`: pyarrow for a Parquet file with typed
    times, DuckDB for other files and large frames, numpy for a frame of at most
    ``IN_MEMORY_MAX_EVENTS`` rows), keeping each row of the snapshots' leads as (lead position,
    time, type id) in file order; the compiled pass of :mod:`features.event_pass` then groups them
    by lead (a counting sort), orders each lead's few events and fills every column of each
    snapshot in one walk. No sort of all events and no join to every snapshot: a lead with several
    snapshots keeps its events once.
    """
    from features.event_pass import fill_engagement  # numba: imported when first needed

    for column in ("lead_id", "as_of"):
        if column not in snapshots.columns:
            raise ValueError(f"build_engagement_features needs snapshot columns ['lead_id', 'as_of']; "
                             f"column {column!r} is missing. Got {list(snapshots.columns)} instead.")
    names = spec.engagement_feature_names
    n = len(snapshots)
    layout = _Layout(spec, n)
    # F-ordered so each feature column is contiguous: pandas takes it as one block without a copy.
    out = empty_array((n, len(names)), np.float64, order="F")
    as_of_us = _as_of_microseconds(snapshots["as_of"]) if n else np.empty(0, dtype=np.int64)
    ordered = isinstance(events, LeadEvents)
    if ordered:  # read once for a whole lead base (batch scoring): look up this call's leads
        if events.types != tuple(layout.types):
            raise ValueError(f"These events were grouped for event types {list(events.types)}; the spec has "
                             f"{list(layout.types)}.")
        snapshot_lead, grouped = events.positions(snapshots["lead_id"]), events.grouped
        if (snapshot_lead < 0).any():  # an id they were not read for: refused, never given no events
            other = snapshots["lead_id"][snapshot_lead < 0].head(5).tolist()
            raise ValueError(f"These events were read for another set of leads; snapshots of leads {other} "
                             "are not among them.")
    else:
        snapshot_lead, grouped = _read_grouped(events, snapshots["lead_id"], as_of_us, layout.types, memory_limit)
    fill_engagement(out, grouped, snapshot_lead=snapshot_lead, as_of_us=as_of_us, windows=layout.windows,
                    half_lives=layout.half_lives, n_types=len(layout.types), click_columns=layout.click_columns,
                    ordered=ordered)
    return pd.DataFrame(out, index=snapshots.index, columns=names, copy=False)


def _read_grouped(events, snapshot_ids: pd.Series, as_of_us: np.ndarray, types, memory_limit):
    """``(each snapshot's lead position, GroupedEvents of those leads)`` from a frame or a file."""
    from features.event_pass import group_events

    # Each snapshot's lead as a position among the distinct leads (-1 for a missing id).
    snapshot_lead, lead_ids = pd.factorize(snapshot_ids, use_na_sentinel=True)
    if not len(snapshot_ids):
        grouped = group_events(*no_events(types), 0)
    elif isinstance(events, pd.DataFrame) and len(events) <= IN_MEMORY_MAX_EVENTS:
        # A few leads' events: DuckDB's connection, temp directory and thread would cost ~30 ms;
        # the same rows come from numpy in well under one.
        grouped = group_events(*read_events_frame(events, lead_ids, types), len(lead_ids))
    elif is_typed_parquet(events):
        grouped = read_events_parquet(events, lead_ids, as_of_us.max(), types)
    else:
        limit = memory_limit or _DUCKDB_MEMORY_LIMIT
        try:
            rows = read_events_duckdb(events, lead_ids, as_of_us.max(), types, limit)
        except duckdb.OutOfMemoryException:
            if limit == _DUCKDB_MEMORY_LIMIT:
                raise
            # Not every DuckDB operator spills: a chunk too heavy for a small limit is redone
            # with the default one rather than failing a long batch run.
            warnings.warn(f"The event join needed more than DuckDB's {limit} memory limit; it was "
                          f"redone with {_DUCKDB_MEMORY_LIMIT}. Smaller chunks keep memory lower.",
                          ResourceWarning, stacklevel=2)
            rows = read_events_duckdb(events, lead_ids, as_of_us.max(), types, _DUCKDB_MEMORY_LIMIT)
        grouped = group_events(*rows, len(lead_ids))
    return snapshot_lead, grouped


def reference_aggregation_sql(events_source: str, snapshots_table: str) -> str:
    """The plain one-GROUP-BY DuckDB query that ``make bench`` times beside the builder.

    Same work a straightforward SQL version does for the per-(snapshot, type) aggregates: the same
    join on ``lead_id``, the same ``occurred_at < as_of`` filter, and per (lead, as_of, event_type)
    the counts over 7/30/90 days and in total, the minimum age and the 7- and 30-day half-life
    decayed sums (the default spec). It does not deduplicate, normalise types, count active days or
    pivot to one row per snapshot: the builder does all of that on top, inside its time budget.
    Materialise it (``con.sql(q).to_arrow_table()``) when timing.

    ``events_source`` is any table expression, e.g. ``"read_parquet('events.parquet')"``;
    ``snapshots_table`` has columns ``lead_id`` and ``as_of``.
    """
    return f"""
        SELECT lead_id, as_of, event_type,
               count(*) FILTER (WHERE age <= 7) AS events_7d,
               count(*) FILTER (WHERE age <= 30) AS events_30d,
               count(*) FILTER (WHERE age <= 90) AS events_90d,
               count(*) AS events_total,
               min(age) AS days_since,
               sum(pow(0.5, age / 7)) AS decayed_hl7d,
               sum(pow(0.5, age / 30)) AS decayed_hl30d
        FROM (
            SELECT s.lead_id, s.as_of, e.event_type,
                   (epoch_us(s.as_of) - epoch_us(e.occurred_at)) / 86400e6 AS age
            FROM {events_source} AS e
            JOIN {snapshots_table} AS s ON e.lead_id = s.lead_id
            WHERE e.occurred_at < s.as_of
        )
        GROUP BY lead_id, as_of, event_type
    """


def normalise_event_type(value) -> str:
    """' Email-Open ' -> 'email_open'; a missing type becomes '' (the type's key, see ``event_key``)."""
    return event_key(value)


class _Layout:
    """Where each feature lives in the output matrix.

    Per type the columns are [counts per window, total, days_since, decayed per half-life], so
    the cell (snapshot s, type code k, feature f) sits at flat offset ``(k * per_type + f) * n + s``
    of the F-ordered matrix: one index array per batch addresses every per-type feature.
    """

    def __init__(self, spec: FeatureSpec, n: int):
        self.spec, self.n = spec, n
        self.types = spec.event_keys_with_other
        self.windows = tuple(float(w) for w in spec.windows_days)
        self.half_lives = tuple(float(h) for h in spec.half_lives_days)
        self.per_type = len(self.windows) + 2 + len(self.half_lives)
        self.total = len(self.windows)
        self.days_since = self.total + 1
        self.decayed = self.days_since + 1
        names = spec.engagement_feature_names
        self.column = {name: i for i, name in enumerate(names)}
        self.any_start = len(self.types) * self.per_type
        # (clicks total, opens total) columns for the click rate, or None when the spec has none.
        self.click_columns = ((self.column["events_email_click_total"], self.column["events_email_open_total"])
                              if spec.has_email_click_rate else None)
        # The scatter arithmetic relies on this order; fail loudly if the spec's naming moves.
        days_since_names = [f"days_since_{t}" for t in self.types]
        if [names[k * self.per_type + self.days_since] for k in range(len(self.types))] != days_since_names:
            raise RuntimeError("FeatureSpec.engagement_feature_names no longer lists per-type columns as "
                               "[windows, total, days_since, decayed]; update features/engagement.py.")


def _as_of_microseconds(as_of: pd.Series) -> np.ndarray:
    if not pd.api.types.is_datetime64_any_dtype(as_of):
        raise TypeError(f"The 'as_of' column of build_engagement_features must be datetime64. "
                        f"Got {as_of.dtype} instead.")
    as_of = naive_utc(as_of)
    if as_of.isna().any():
        raise ValueError(f"The 'as_of' column of build_engagement_features must have no missing "
                         f"values. Got {int(as_of.isna().sum())} missing instead.")
    return as_of.to_numpy().astype("datetime64[us]").view(np.int64)
