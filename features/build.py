"""build_features: the one entry point that turns raw tables into feature rows of (lead, as_of) snapshots."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from features.engagement import build_engagement_features
from features.fit import build_fit_features
from features.spec import FeatureSpec

DAY = pd.Timedelta(days=1)
# Below this many snapshots the two blocks are built one after the other: a thread costs more than it saves.
_OVERLAP_MIN_ROWS = 20_000


def build_features(snapshots: pd.DataFrame, leads: pd.DataFrame, events, spec: FeatureSpec, *,
                   memory_limit: str | None = None) -> pd.DataFrame:
    """Features of each snapshot, on the snapshots' index, in ``spec.feature_names`` order.

    ``snapshots`` has ``lead_id`` and ``as_of``; ``leads`` is the validated lead table; ``events``
    is a frame or a CSV/Parquet path (only events strictly before each ``as_of`` are used), or None
    when the spec has no event log; a spec without lead age needs no ``created_at``.
    ``memory_limit`` is DuckDB's for the event join (see ``build_engagement_features``).
    """
    positions = pd.Index(leads["lead_id"]).get_indexer(snapshots["lead_id"])
    if (positions < 0).any():
        unknown = snapshots.loc[positions < 0, "lead_id"].head(5).tolist()
        raise ValueError(f"Snapshots refer to leads missing from the leads table, e.g. {unknown}.")
    if spec.event_log and events is None:
        raise ValueError("The model's feature spec uses an event log, but no events were given.")
    if not spec.event_log or len(snapshots) < _OVERLAP_MIN_ROWS:
        engagement = build_engagement_features(snapshots, events, spec, memory_limit=memory_limit) \
            if spec.event_log else None
        return _assemble(snapshots, leads, positions, spec, engagement)
    # The engagement block reads files and runs compiled loops without the GIL: build it in a thread
    # while this one builds the fit block, so a million leads' two halves overlap on two cores.
    with ThreadPoolExecutor(max_workers=1) as pool:
        engagement = pool.submit(build_engagement_features, snapshots, events, spec, memory_limit=memory_limit)
        try:
            return _assemble(snapshots, leads, positions, spec, engagement)
        finally:
            if not engagement.done():
                engagement.cancel()


def _assemble(snapshots, leads, positions, spec, engagement) -> pd.DataFrame:
    """The fit block, lead age and the engagement block (a frame, a future of one, or None) side by side."""
    # Fit features once per distinct lead, not once per snapshot or once per lead in the base.
    if len(positions) == len(leads) and (positions == np.arange(len(leads))).all():
        fit = build_fit_features(leads, spec)  # each lead once, in order (scoring a base): no sort, no copy
    else:
        distinct, inverse = np.unique(positions, return_inverse=True)
        every_lead_once = len(distinct) == len(leads)
        fit = build_fit_features(leads if every_lead_once else leads.iloc[distinct], spec)
        if len(distinct) < len(positions) or not np.array_equal(distinct, positions):
            fit = fit.iloc[inverse]
    parts = [fit.set_axis(snapshots.index)]
    if spec.lead_age:
        created_at = leads["created_at"].to_numpy()[positions]
        lead_age = (snapshots["as_of"].to_numpy() - created_at) / np.timedelta64(1, "D")
        parts.append(pd.DataFrame({"lead_age_days": lead_age.astype(float)}, index=snapshots.index))
    if engagement is not None:
        parts.append(engagement if isinstance(engagement, pd.DataFrame) else engagement.result())
    features = pd.concat(parts, axis=1)
    # The blocks are built in spec order; select (a copy) only if a builder ever disagrees.
    return features if list(features.columns) == spec.feature_names else features[spec.feature_names]
