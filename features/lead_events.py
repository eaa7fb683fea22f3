"""The events of a whole lead base read once, grouped by lead, for batch scoring's chunks.

Each chunk of batch scoring used to read the whole event file for its own leads: 1M leads scored
100,000 open leads at a time read a 21.8M-event file five times. ``LeadEvents`` reads it once for
every lead of the base (:func:`features.event_rows.read_events_parquet`: a counting sort by lead,
no join) and orders each lead's events by (time, type) once; each chunk then only looks up its
leads' positions and runs the compiled pass (``build_engagement_features`` takes a ``LeadEvents``
where it takes a path). Same events, same order, same pass: the same features to the last bit.

Held: 10 bytes per event (time and type id) and 8 per lead, against the file's lead column
(4 bytes per event) that each chunk's read held while it ran.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from features.event_rows import _LeadLookup, read_events_parquet


class LeadEvents:
    """Events of the leads ``lead_ids`` from a typed Parquet file, grouped and time-ordered per lead.

    Build with :meth:`read` from a file ``features.event_rows.is_typed_parquet`` accepts (other
    sources keep DuckDB's per-call read and its parsing). ``types`` are the spec's event keys the
    type ids were mapped to (``other`` last).
    """

    def __init__(self, grouped, lookup: _LeadLookup, types: tuple):
        self.grouped, self.lookup, self.types = grouped, lookup, tuple(types)

    @classmethod
    def read(cls, path, lead_ids, types, *, keep=None, check=None) -> LeadEvents:
        """Read ``path`` once for ``lead_ids`` (any order; the ids of a lead table) and order each lead's events.

        ``keep`` (a mask over ``lead_ids``) holds only those leads' events (the open ones); the
        others still count as known leads for ``check`` (``features.event_log_check``), which
        counts the contract's refusals during this same read.
        """
        from features.event_pass import sort_each_lead

        lead_ids = pd.Index(pd.Series(lead_ids).to_numpy())
        types = tuple(types)
        grouped = read_events_parquet(path, lead_ids, np.iinfo(np.int64).max, types, keep=keep, check=check)
        sort_each_lead(grouped)
        return cls(grouped, _LeadLookup(lead_ids if keep is None else lead_ids[np.asarray(keep, dtype=bool)]), types)

    def positions(self, lead_ids: pd.Series) -> np.ndarray:
        """Each id's position in the grouped events, -1 for an id of another lead base."""
        values = pd.Series(lead_ids).to_numpy()
        return self.lookup.positions(pa.array(values if values.dtype.kind in "iuf" else values.astype(object)))

