"""Where along a lead's journey the model ranks well: ROC AUC by lead age and by events so far, and how
steady a lead's score is between its consecutive snapshots (as the process-mining literature reports
predictive monitoring: by prefix length, and by the temporal stability of the predictions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

#: Lead age bands in days, and events-so-far bands (left-closed: [0, 30), [30, 90), ...).
AGE_EDGES = (0, 30, 90, 180, 365, np.inf)
EVENT_EDGES = (0, 1, 3, 6, 11, 21, np.inf)


def auc_by_band(labels, probability, values, *, edges, unit: str = "") -> pd.DataFrame:
    """Rows, conversions, base rate and ROC AUC per band of ``values`` (``[30, 90)``; NaN where one class only).

    Bands without rows are left out; ``unit`` names the values in the band labels ("days").
    """
    frame = pd.DataFrame({"label": np.asarray(labels, dtype=int), "probability": np.asarray(probability, dtype=float),
                          "value": np.asarray(values, dtype=float)})
    edges = np.asarray(edges, dtype=float)
    frame["band"] = np.searchsorted(edges, frame["value"].to_numpy(), side="right") - 1
    rows = []
    for band, group in frame.dropna(subset=["value"]).groupby("band", sort=True):
        low, high = edges[band], edges[band + 1] if band + 1 < edges.size else np.inf
        label = f">= {low:g}" if np.isinf(high) else f"[{low:g}, {high:g})"
        positives = int(group["label"].sum())
        rows.append({"band": f"{label}{' ' + unit if unit else ''}", "rows": len(group), "converted": positives,
                     "base_rate": positives / len(group),
                     "roc_auc": float(roc_auc_score(group["label"], group["probability"]))
                     if 0 < positives < len(group) else np.nan})
    return pd.DataFrame(rows, columns=["band", "rows", "converted", "base_rate", "roc_auc"])


def score_stability(test: pd.DataFrame) -> pd.DataFrame:
    """How a lead's score moves between consecutive snapshots: one row of figures over all such pairs.

    ``test`` has ``lead_id``, ``as_of``, ``probability`` and ``tier``. Pairs are a lead's snapshots next
    to each other in time; the figures: pairs, leads, median and 90th percentile of the absolute change
    in score points (probability x 100), the share of pairs whose tier changed, and the rank correlation
    of consecutive scores.
    """
    ordered = test.sort_values(["lead_id", "as_of"], kind="stable")
    previous = ordered.groupby("lead_id", sort=False).shift(1)
    paired = previous["probability"].notna().to_numpy()
    before, after = previous["probability"].to_numpy()[paired], ordered["probability"].to_numpy()[paired]
    change = np.abs(after - before) * 100
    return pd.DataFrame([{
        "pairs": int(paired.sum()), "leads": int(ordered.loc[paired, "lead_id"].nunique()),
        "median_abs_change_points": float(np.median(change)) if change.size else np.nan,
        "p90_abs_change_points": float(np.quantile(change, 0.9)) if change.size else np.nan,
        "tier_changed_share": float(np.mean(previous["tier"].to_numpy()[paired] != ordered["tier"].to_numpy()[paired]))
        if change.size else np.nan,
        "rank_correlation": float(pd.Series(before).corr(pd.Series(after), method="spearman"))
        if change.size > 1 else np.nan,
    }])


def journey_tables(test: pd.DataFrame, features: pd.DataFrame | None) -> dict:
    """The tables a training report shows: by lead age and events so far (when the features have them) and
    score stability (when leads have several test snapshots). ``features`` rows align with ``test``'s."""
    tables = {}
    labels, probability = test["label"].to_numpy(), test["probability"].to_numpy()
    if features is not None and "lead_age_days" in features:
        tables["auc_by_lead_age"] = auc_by_band(labels, probability, features["lead_age_days"], edges=AGE_EDGES,
                                                unit="days")
    if features is not None and "events_any_total" in features:
        tables["auc_by_events_so_far"] = auc_by_band(labels, probability, features["events_any_total"],
                                                     edges=EVENT_EDGES, unit="events")
    if "as_of" in test and test["lead_id"].duplicated().any():
        tables["score_stability"] = score_stability(test)
    return tables
