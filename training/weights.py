"""Training weights: leads, not snapshots, count (each lead weighs one, shared by its snapshots), and optionally
recent snapshots count more (a half-life the selection windows may choose)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def lead_weights(groups) -> np.ndarray:
    """Per row, one over the number of rows of its lead, rescaled so the weights average one.

    A lead open for a year has 24 snapshots on a 15-day schedule, a lead that closed within a
    month two: unweighted, long-open leads dominate the fit. With one unit per lead the demo's
    test ROC AUC rose by 0.003-0.004 on average over three seeds (``benchmarks/demo_gap.py``). One row
    per lead gives weights of one: a lead table trains as before.
    """
    groups = pd.Series(np.asarray(groups))
    if groups.isna().any():
        raise ValueError(f"lead_weights needs a lead for every row. Got {int(groups.isna().sum())} missing, e.g. "
                         f"rows {np.flatnonzero(groups.isna().to_numpy())[:5].tolist()}.")
    per_lead = groups.map(groups.value_counts()).to_numpy(dtype=float)
    weight = 1.0 / per_lead
    return weight * (weight.size / weight.sum()) if weight.size else weight


def recency_weights(times, half_life_days: float) -> np.ndarray:
    """Per row, ``0.5 ** (age / half_life_days)``, the age counted back from the newest row; rescaled to average one.

    For data that moves: a candidate fitted so is offered to the selection windows
    (``[training] recency_half_lives``), which keep it only when it beats the unweighted fit beyond their
    noise. On the stationary synthetic demo it lost forward ROC AUC (``benchmarks/forward_variants.py``).
    """
    times = pd.to_datetime(pd.Series(np.asarray(times)))
    if times.isna().any():
        raise ValueError(f"recency_weights needs a time for every row. Got {int(times.isna().sum())} missing.")
    age = (times.max() - times).dt.total_seconds().to_numpy() / 86_400.0
    weight = 0.5 ** (age / float(half_life_days))
    return weight * (weight.size / weight.sum()) if weight.size else weight


def training_weights(groups, times=None, *, per_lead: bool, half_life_days=None):
    """A fit's row weights: each lead weighing one (``per_lead``) times recency (``half_life_days``, with ``times``);
    None when neither applies, so the fit is unweighted."""
    weight = lead_weights(groups) if per_lead else None
    if half_life_days is not None:
        recency = recency_weights(times, half_life_days)
        weight = recency if weight is None else weight * recency
    return weight


def fit_weighted(estimator, X, y, sample_weight=None):
    """``estimator.fit(X, y)`` with ``sample_weight`` handed to its final step when it is a Pipeline; returns it.

    Equal weights (one row per lead) fit unweighted, exactly as before weights existed. A leaf
    minimum (LightGBM's ``min_child_samples``) above a quarter of the rows is lowered to it first.
    """
    _fit_leaf_minimum(estimator, len(X))
    if sample_weight is None or np.ptp(np.asarray(sample_weight, dtype=float)) == 0:
        return estimator.fit(X, y)
    steps = getattr(estimator, "steps", None)
    key = f"{steps[-1][0]}__sample_weight" if steps else "sample_weight"
    return estimator.fit(X, y, **{key: np.asarray(sample_weight, dtype=float)})


def _fit_leaf_minimum(estimator, n_rows: int) -> None:
    """Lower LightGBM's ``min_child_samples`` to a quarter of ``n_rows`` when it is larger (set_params).

    Why: a split needs that many rows (counted, not weighed) on both sides, so the default 200 on
    the 326 training rows of a 1,500-lead export allowed no split at all: every tree one leaf, a
    constant prediction, validation AUC 0.5000, weighted or not. A quarter still allows up to four
    leaves per tree; at 800 rows and above the default 200 stays, so larger data fit as before.
    """
    key = f"{estimator.steps[-1][0]}__min_child_samples" if hasattr(estimator, "steps") else "min_child_samples"
    minimum = estimator.get_params().get(key)
    if isinstance(minimum, int) and minimum > leaf_minimum_cap(n_rows):
        estimator.set_params(**{key: leaf_minimum_cap(n_rows)})


def leaf_minimum_cap(n_rows: int) -> int:
    """The largest leaf minimum (LightGBM's ``min_child_samples``) that still lets ``n_rows`` rows split: a quarter."""
    return max(1, int(n_rows) // 4)
