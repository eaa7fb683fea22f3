"""Forecast conversions from calibrated probabilities: expected count, Poisson-binomial interval, revenue."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import norm

from models.score_bins import normal_conversion_interval

#: Above this many leads the exact O(n^2) distribution gives way to its normal approximation.
EXACT_MAX_LEADS = 20_000


def conversion_interval(probability, *, level: float = 0.9) -> tuple[float, int, int]:
    """``(expected, low, high)`` conversions among independent leads with these probabilities.

    ``low`` and ``high`` are the central ``level`` quantiles of the Poisson-binomial
    distribution (exact by dynamic programming up to ``EXACT_MAX_LEADS`` leads, normal above).
    """
    if not 0 < level < 1:
        raise ValueError(f"The 'level' parameter of conversion_interval must be in (0, 1). Got {level!r} instead.")
    probability = np.asarray(probability, dtype=float)
    if np.any((probability < 0) | (probability > 1)):
        raise ValueError("conversion_interval needs probabilities in [0, 1].")
    expected = float(probability.sum())
    tail = (1 - level) / 2
    if probability.size == 0:
        return 0.0, 0, 0
    if probability.size > EXACT_MAX_LEADS:
        return expected, *normal_conversion_interval(expected, float(np.sum(probability * (1 - probability))),
                                                     level=level)
    cdf = np.cumsum(poisson_binomial_pmf(probability))
    low = int(np.searchsorted(cdf, tail, side="left"))
    high = int(np.searchsorted(cdf, 1 - tail, side="left"))
    return expected, low, min(high, probability.size)


def poisson_binomial_pmf(probability) -> np.ndarray:
    """P(exactly k conversions), k = 0..n, for independent leads (one convolution per lead)."""
    pmf = np.zeros(len(probability) + 1)
    pmf[0] = 1.0
    for i, p in enumerate(np.asarray(probability, dtype=float), start=1):
        pmf[1:i + 1] = pmf[1:i + 1] * (1 - p) + pmf[:i] * p
        pmf[0] *= 1 - p
    return pmf


def level_check(y_history, p_history) -> tuple[float, float]:
    """``(shift, relative_sd)``: the log-odds shift that makes probabilities add up to what happened.

    ``y_history``/``p_history`` are outcomes and probabilities of recent snapshots whose horizon
    is complete and which the model never trained on. Calibration maps are fitted on a few
    hundred conversions and fix the level of every probability only to about 1/sqrt(m); a
    forecast of many leads inherits that bias whole. ``relative_sd`` is how well the history
    knows the level (Bernoulli noise of its expected count).
    """
    y = np.asarray(y_history, dtype=float)
    p = np.clip(np.asarray(p_history, dtype=float), 1e-9, 1 - 1e-9)
    if p.size == 0 or y.sum() == 0 or y.sum() == y.size:
        return 0.0, 0.0
    logit = np.log(p / (1 - p))
    shift = float(brentq(lambda b: np.sum(1 / (1 + np.exp(-(logit + b)))) - y.sum(), -10, 10))
    adjusted = shift_probabilities(p, shift)
    return shift, float(np.sqrt(np.sum(adjusted * (1 - adjusted))) / adjusted.sum())


def shift_probabilities(probability, shift: float) -> np.ndarray:
    """Probabilities moved by ``shift`` on the log-odds scale (ranking and spread unchanged)."""
    p = np.clip(np.asarray(probability, dtype=float), 1e-12, 1 - 1e-12)
    return 1 / (1 + np.exp(-(np.log(p / (1 - p)) + shift)))


def forecast_table(probability, *, groups=None, amounts=None, actual=None, actual_revenue=None,
                   level: float = 0.9, shift: float | None = None, level_sd: float = 0.0) -> pd.DataFrame:
    """Expected conversions with interval, overall (group ``all``) and per group.

    ``low``/``high`` are the exact Poisson-binomial interval of the calibrated probabilities
    (outcome noise only). With ``shift`` and ``level_sd`` from :func:`level_check`, the
    ``*_adjusted`` columns forecast from level-checked probabilities, their interval (normal
    approximation) widened by the uncertainty of that level.
    ``amounts`` is each lead's expected deal amount if won (adds ``expected_revenue`` with a
    normal interval); ``actual`` (0/1) and ``actual_revenue`` turn the forecast into a backtest
    with ``actual_conversions`` and ``inside`` columns.
    """
    probability = np.asarray(probability, dtype=float)
    frame = pd.DataFrame({"p": probability, "group": "all" if groups is None else np.asarray(groups, dtype=object)})
    if amounts is not None:
        frame["amount"] = np.asarray(amounts, dtype=float)
    if actual is not None:
        frame["y"] = np.asarray(actual, dtype=float)
    if actual_revenue is not None:
        frame["revenue"] = np.asarray(actual_revenue, dtype=float)
    parts = [("all", frame)] + ([] if groups is None else list(frame.groupby("group", sort=False)))
    rows = []
    z = norm.ppf(0.5 + level / 2)
    for name, part in parts:
        expected, low, high = conversion_interval(part["p"].to_numpy(), level=level)
        row = {"group": name, "leads": len(part), "expected_conversions": expected,
               "low": low, "high": high}
        if shift is not None:
            p = shift_probabilities(part["p"].to_numpy(), shift)
            mean = float(p.sum())
            sd = float(np.sqrt(np.sum(p * (1 - p)) + (level_sd * mean) ** 2))
            row.update(expected_adjusted=mean, low_adjusted=max(0, int(np.floor(mean - z * sd))),
                       high_adjusted=int(np.ceil(mean + z * sd)))
        if "amount" in part:
            mean = float((part["p"] * part["amount"]).sum())
            sd = float(np.sqrt((part["p"] * (1 - part["p"]) * part["amount"] ** 2).sum()))
            row.update(expected_revenue=mean, revenue_low=max(0.0, mean - z * sd), revenue_high=mean + z * sd)
            if shift is not None:
                row["expected_revenue_adjusted"] = float(
                    (shift_probabilities(part["p"].to_numpy(), shift) * part["amount"]).sum())
        if "y" in part:
            row["actual_conversions"] = int(part["y"].sum())
            row["inside"] = bool(low <= row["actual_conversions"] <= high)
            if shift is not None:
                row["inside_adjusted"] = bool(row["low_adjusted"] <= row["actual_conversions"] <= row["high_adjusted"])
        if "revenue" in part:
            row["actual_revenue"] = float(part["revenue"].sum())
        rows.append(row)
    return pd.DataFrame(rows)
