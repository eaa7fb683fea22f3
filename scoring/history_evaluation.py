"""What stored scores were worth when they were used: each past scoring run against the outcomes that came later."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from features.contract import DataContractError, parse_timestamps
from features.timing import naive_utc
from models.expected_performance import expected_performance
from models.tiers import TIERS

RUN_COLUMNS = ("scored_at", "as_of", "model_name", "model_version")


def outcome_labels(history: pd.DataFrame, deals: pd.DataFrame, *, horizon_days: float, until=None) -> pd.DataFrame:
    """Each stored score's outcome: ``label`` (won within the horizon after its ``as_of``) and ``resolved``.

    A score is resolved when its horizon ended by ``until`` (default: the latest closed deal) or
    when the lead closed, won or lost, within the horizon before ``until``; otherwise its outcome is
    not known yet. Same rule as the training snapshots' censoring.
    """
    for column in ("lead_id", "closed_at", "outcome"):
        if column not in deals.columns:
            raise DataContractError(f"deals: missing column {column!r}; expected lead_id, closed_at, outcome. "
                                    f"Columns found: {list(deals.columns)}.")
    deals = deals.assign(closed_at=parse_timestamps(deals["closed_at"], source="deals", column="closed_at",
                                                    frame=deals),
                         outcome=deals["outcome"].astype("string").str.strip().str.lower())
    until = naive_utc(until) if until is not None else deals["closed_at"].max()
    horizon = pd.Timedelta(days=float(horizon_days))
    rows = history.reset_index(drop=True)
    as_of = pd.to_datetime(rows["as_of"]).astype("datetime64[ns]")
    merged = pd.DataFrame({"row": np.arange(len(rows)), "key": rows["lead_id"].astype(str).to_numpy(),
                           "as_of": as_of.to_numpy()}).merge(
        pd.DataFrame({"key": deals["lead_id"].astype(str).to_numpy(),
                      "closed_at": deals["closed_at"].astype("datetime64[ns]").to_numpy(),
                      "outcome": deals["outcome"].to_numpy()}), on="key", how="left")
    within = ((merged["closed_at"] >= merged["as_of"]) & (merged["closed_at"] < merged["as_of"] + horizon)
              & (merged["closed_at"] <= until))
    won = (within & merged["outcome"].eq("won")).groupby(merged["row"]).any()
    closed = within.groupby(merged["row"]).any()
    resolved = closed.to_numpy() | (as_of + horizon <= until).to_numpy()
    return rows.assign(label=won.to_numpy().astype(int), resolved=resolved)


def evaluate_history(history: pd.DataFrame, deals: pd.DataFrame, *, horizon_days: float = 90,
                     until=None) -> pd.DataFrame:
    """One row per stored run: leads, resolved, conversions, ROC AUC, Brier, predicted vs actual, per-tier rates.

    Beside what happened, what was expected when the run was scored, before any outcome
    (:mod:`models.expected_performance`, over all the run's leads): ``expected_conversions`` with its
    95 % interval, ``expected_roc_auc`` and ``expected_sql_precision`` (against ``SQL_conversion``).
    """
    if history.empty:
        raise ValueError("The score history is empty: run `serve.py score ... --history FOLDER` first.")
    labelled = outcome_labels(history, deals, horizon_days=horizon_days, until=until)
    keys = [column for column in RUN_COLUMNS if column in labelled.columns]
    rows = []
    for run, group in labelled.groupby(keys, sort=True, dropna=False):
        known = group[group["resolved"]]
        row = dict(zip(keys, run if isinstance(run, tuple) else (run,)))
        row.update(leads=len(group), resolved=len(known), conversions=int(known["label"].sum()))
        expected = expected_performance(group["probability"].to_numpy(dtype=float), group["tier"])
        row.update({key: value for key, value in expected.items() if key.startswith("expected_")})
        y, probability = known["label"].to_numpy(), known["probability"].to_numpy(dtype=float)
        row["predicted_conversions"] = float(probability.sum())
        row["roc_auc"] = float(roc_auc_score(y, probability)) if 0 < y.sum() < len(y) else np.nan
        row["brier"] = float(brier_score_loss(y, probability, labels=[0, 1])) if len(y) else np.nan
        for tier in TIERS:
            in_tier = known["tier"].eq(tier)
            row[f"{tier}_conversion"] = float(known.loc[in_tier, "label"].mean()) if in_tier.any() else np.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    # Each expected figure beside the realised one it foretold.
    pairs = ["leads", "resolved", "expected_conversions", "expected_conversions_low", "expected_conversions_high",
             "conversions", "predicted_conversions", "expected_roc_auc", "roc_auc", "expected_sql_precision",
             "SQL_conversion"]
    return table[[*keys, *pairs, *[column for column in table.columns if column not in (*keys, *pairs)]]]
