"""Probability bins: a scored population summarised as counts per probability interval, never as lead rows.

The tier planner plans on bins so that a base of a million leads costs what a small one does. Bin
``k`` holds the probabilities in ``[k / bins, (k + 1) / bins)`` (the last bin also holds 1.0), so a
cut-off on a bin edge splits the bins exactly as :meth:`models.tiers.TierThresholds.assign` splits
the leads (``probability >= cut-off``): counts and sums above an edge are exact, not approximate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Probability bins of the planner: a cut-off moves in steps of 0.001.
DEFAULT_BINS = 1_000
BIN_COLUMNS = ("bin", "leads", "expected", "variance")


def probability_bins(probability, *, converted=None, bins: int = DEFAULT_BINS) -> pd.DataFrame:
    """One row per non-empty bin: ``bin``, ``leads``, ``expected`` (sum of p), ``variance`` (sum of p(1-p)).

    With ``converted`` (0/1 per lead, the outcome of held-out leads) a ``converted`` column counts
    the leads of the bin that converted. Rows are ordered by bin, lowest probability first.
    """
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"The 'bins' parameter of probability_bins must be a positive integer. Got {bins!r} instead.")
    p = np.asarray(probability, dtype=float)
    if p.size and not np.all((p >= 0) & (p <= 1)):
        raise ValueError("probability_bins needs probabilities in [0, 1]; got values outside "
                         f"(e.g. {p[(p < 0) | (p > 1) | np.isnan(p)][:3].tolist()}).")
    index = bin_index(p, bins=bins)
    columns = {"leads": np.bincount(index, minlength=bins),
               "expected": np.bincount(index, weights=p, minlength=bins),
               "variance": np.bincount(index, weights=p * (1 - p), minlength=bins)}
    if converted is not None:
        y = np.asarray(converted, dtype=float)
        if y.shape != p.shape or not np.all((y == 0) | (y == 1)):
            raise ValueError("probability_bins: 'converted' must hold one 0 or 1 per probability.")
        columns["converted"] = np.bincount(index, weights=y, minlength=bins).round().astype(np.int64)
    frame = pd.DataFrame({"bin": np.arange(bins), **columns})
    return frame[frame["leads"] > 0].reset_index(drop=True)


def bin_index(probability, *, bins: int = DEFAULT_BINS) -> np.ndarray:
    """The bin of each probability: the last edge ``k / bins`` at or below it (edges compared, not ``floor(p * bins)``,
    whose rounding would put 0.3 and 0.3 >= 300/1000 on different sides)."""
    edges = np.arange(bins + 1) / bins
    return np.clip(np.searchsorted(edges, np.asarray(probability, dtype=float), side="right") - 1, 0, bins - 1)


def bin_edge(k: int, *, bins: int = DEFAULT_BINS) -> float:
    """The probability at which bin ``k`` starts, as the same float ``bin_index`` compares with."""
    return float(np.arange(bins + 1)[k] / bins)


def gains_by_score(score, converted) -> pd.DataFrame:
    """Leads and conversions per distinct score value, highest first: a scorer's gains curve as aggregates.

    How the points rules are kept for the planner: the rules' top N leads (ties taken in proportion)
    are read off it for any N, without storing a lead row.
    """
    frame = pd.DataFrame({"score": np.asarray(score, dtype=float), "converted": np.asarray(converted, dtype=int)})
    if frame["score"].isna().any():
        raise ValueError("gains_by_score needs a score for every lead; got missing values.")
    grouped = frame.groupby("score", sort=True)["converted"].agg(leads="size", converted="sum")
    return grouped.iloc[::-1].reset_index()


def normal_conversion_interval(expected: float, variance: float, *, level: float = 0.9) -> tuple[int, int]:
    """``(low, high)`` conversions: the normal approximation of the Poisson-binomial with this mean and variance.

    What :func:`analysis.forecast.conversion_interval` uses above its exact range, and what the
    planner can compute from bins alone (the sums of p and of p(1-p) per bin are all it needs).
    """
    from scipy.stats import norm

    tail = (1 - level) / 2
    low, high = norm.ppf([tail, 1 - tail], loc=expected, scale=max(float(np.sqrt(variance)), 1e-12))
    return max(0, int(np.floor(low))), int(np.ceil(high))
