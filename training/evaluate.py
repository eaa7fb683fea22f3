"""Evaluation of calibrated probabilities: discrimination, calibration, lift, and tables per tier and decile."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from models.tiers import TIERS


def evaluate_probabilities(y_true, probability, *, prefix: str = "test_") -> dict:
    """Metrics named as MLflow logs them: roc_auc, pr_auc, log_loss, brier, ece, top_decile_lift, base_rate."""
    y_true = np.asarray(y_true, dtype=int)
    probability = np.asarray(probability, dtype=float)
    metrics = {
        "roc_auc": roc_auc_score(y_true, probability),
        "pr_auc": average_precision_score(y_true, probability),
        "log_loss": log_loss(y_true, np.clip(probability, 1e-15, 1 - 1e-15), labels=[0, 1]),
        "brier": brier_score_loss(y_true, probability),
        "ece": expected_calibration_error(y_true, probability),
        "top_decile_lift": top_share_lift(y_true, probability, share=0.10),
        "base_rate": float(y_true.mean()),
        "rows": int(y_true.size),
    }
    return {f"{prefix}{name}": float(value) for name, value in metrics.items()}


def expected_calibration_error(y_true, probability, *, n_bins: int = 10) -> float:
    """Mean |observed rate - mean probability| over equal-frequency bins, weighted by bin size."""
    bins = calibration_bins(y_true, probability, n_bins=n_bins)
    return float((bins["leads"] * (bins["observed"] - bins["predicted"]).abs()).sum() / bins["leads"].sum())


def calibration_bins(y_true, probability, *, n_bins: int = 10) -> pd.DataFrame:
    """Equal-frequency bins by probability: ``leads``, mean ``predicted`` and ``observed`` rate per bin."""
    y_true = np.asarray(y_true, dtype=float)
    probability = np.asarray(probability, dtype=float)
    order = np.argsort(probability, kind="stable")
    chunks = [chunk for chunk in np.array_split(order, n_bins) if chunk.size]
    return pd.DataFrame({"leads": [chunk.size for chunk in chunks],
                         "predicted": [probability[chunk].mean() for chunk in chunks],
                         "observed": [y_true[chunk].mean() for chunk in chunks]})


def top_share_lift(y_true, probability, *, share: float = 0.10) -> float:
    """Conversion rate among the top ``share`` of leads by probability, over the base rate."""
    y_true = np.asarray(y_true, dtype=float)
    top = top_share(probability, share=share)
    base = y_true.mean()
    return float(y_true[top].mean() / base) if base > 0 else float("nan")


def top_share(score, *, share: float) -> np.ndarray:
    """Positions of the top ``share`` of leads by score (at least one), highest first, ties by position."""
    score = np.asarray(score, dtype=float)
    return np.argsort(-score, kind="stable")[:max(1, int(round(share * score.size)))]


def tier_table(y_true, probability, tiers) -> pd.DataFrame:
    """Leads, conversions, observed and expected conversion rate, and lift per tier."""
    frame = pd.DataFrame({"tier": pd.Categorical(np.asarray(tiers, dtype=object), categories=TIERS),
                          "converted": np.asarray(y_true, dtype=int),
                          "probability": np.asarray(probability, dtype=float)})
    return _summarise(frame, "tier")


def decile_table(y_true, probability) -> pd.DataFrame:
    """The same summary per score decile, decile 1 holding the highest probabilities."""
    probability = np.asarray(probability, dtype=float)
    ranks = pd.Series(-probability).rank(method="first").to_numpy()
    decile = np.ceil(ranks / probability.size * 10).astype(int)
    frame = pd.DataFrame({"decile": decile, "converted": np.asarray(y_true, dtype=int), "probability": probability})
    return _summarise(frame, "decile")


def _summarise(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    base_rate = frame["converted"].mean()
    table = frame.groupby(by, observed=False).agg(
        leads=("converted", "size"),
        conversions=("converted", "sum"),
        conversion_rate=("converted", "mean"),
        expected_rate=("probability", "mean"),
    )
    table["lift"] = table["conversion_rate"] / base_rate if base_rate > 0 else np.nan
    table["share_of_conversions"] = table["conversions"] / max(int(frame["converted"].sum()), 1)
    return table.reset_index()
