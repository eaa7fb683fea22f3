"""Leakage guard: a lead column that alone predicts the outcome almost perfectly was written after it."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from features.spec import FeatureSpec

REPORT_COLUMNS = ("column", "feature", "kind", "single_column_auc", "declared_post_outcome", "kept", "excluded",
                  "reason")


class LeakageWarning(UserWarning):
    """A column was excluded from training (or kept on request) because it looks like post-outcome data."""


def leakage_report(features: pd.DataFrame, labels, spec: FeatureSpec, *, max_auc: float = 0.95,
                   post_outcome=(), keep=(), seed: int = 0) -> pd.DataFrame:
    """Single-column ROC AUC of each attribute feature on the training rows, and the verdict per column.

    Categories are target-rate encoded out of fold (fitted on the training rows, never scoring a
    row with its own label); numbers are ranked raw, missing values both first and last. The AUC
    is taken in both directions, ``max(auc, 1 - auc)``. A column reaching ``max_auc``, or declared
    ``post_outcome``, is excluded unless listed in ``keep``. Columns, never values, are reported:
    the table is safe to log.
    """
    if not 0.5 < max_auc <= 1.0:
        raise ValueError(f"The 'max_auc' parameter of leakage_report must be in (0.5, 1]. Got {max_auc!r} instead.")
    labels = np.asarray(labels, dtype=int)
    categorical = set(spec.categorical_feature_names)
    declared, kept = set(post_outcome), set(keep)
    rows = []
    for feature, column in spec.source_columns.items():
        values = features[feature]
        auc = (_categorical_auc(values, labels, seed=seed) if feature in categorical
               else _numeric_auc(values.to_numpy(dtype=float), labels))
        reasons = []
        if column in declared:
            reasons.append("declared post-outcome")
        if auc >= max_auc:
            reasons.append(f"single-column AUC {auc:.3f} >= {max_auc}")
        rows.append({"column": column, "feature": feature,
                     "kind": "categorical" if feature in categorical else "numeric",
                     "single_column_auc": round(float(auc), 4), "declared_post_outcome": column in declared,
                     "kept": bool(reasons) and column in kept, "excluded": bool(reasons) and column not in kept,
                     "reason": "; ".join(reasons)})
    report = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
    # A column is excluded as a whole: a derived feature that leaks takes its siblings with it.
    excluded_columns = set(report.loc[report["excluded"], "column"])
    report["excluded"] = report["column"].isin(excluded_columns)
    return report.sort_values("single_column_auc", ascending=False, kind="stable").reset_index(drop=True)


def apply_leakage_guard(features: pd.DataFrame, labels, spec: FeatureSpec, *, max_auc: float = 0.95,
                        post_outcome=(), keep=(), seed: int = 0, log=print):
    """Run :func:`leakage_report` and drop what it excludes; return ``(spec, report)``.

    Every excluded or kept-on-request column gets a loud warning naming it.
    """
    unknown = sorted(set(post_outcome) - set(spec.source_columns.values()))
    if unknown:
        log(f"note: post-outcome column(s) {unknown} are not features anyway")
    report = leakage_report(features, labels, spec, max_auc=max_auc, post_outcome=post_outcome, keep=keep,
                            seed=seed)
    for row in report.drop_duplicates("column").itertuples():
        if row.excluded or row.kept:
            verdict = "KEPT because the config says keep" if row.kept else "EXCLUDED from training"
            message = f"leakage guard: column {row.column!r} {verdict} ({row.reason})"
            warnings.warn(message, LeakageWarning, stacklevel=2)
    return spec_without(spec, set(report.loc[report["excluded"], "column"])), report


def spec_without(spec: FeatureSpec, columns) -> FeatureSpec:
    """The spec minus the lead columns in ``columns`` (and every feature made from them)."""
    columns = set(columns)
    if not columns:
        return spec
    keep = lambda names: tuple(name for name in names if name not in columns)  # noqa: E731
    return dataclasses.replace(
        spec,
        categorical_columns=keep(spec.categorical_columns),
        numeric_columns=keep(spec.numeric_columns),
        raw_numeric_columns=keep(spec.raw_numeric_columns),
        boolean_columns=keep(spec.boolean_columns),
        engagement_columns=keep(spec.engagement_columns),
        job_title_column=None if spec.job_title_column in columns else spec.job_title_column,
        email_column=None if spec.email_column in columns else spec.email_column,
    )


def _numeric_auc(values: np.ndarray, labels: np.ndarray) -> float:
    present = ~np.isnan(values)
    if not present.any() or labels.min() == labels.max():
        return 0.5
    low, high = np.nanmin(values) - 1.0, np.nanmax(values) + 1.0
    best = 0.5
    for fill in (low, high):  # missingness itself can leak: try it at either end
        auc = roc_auc_score(labels, np.where(present, values, fill))
        best = max(best, auc, 1.0 - auc)
    return float(best)


def _categorical_auc(values: pd.Series, labels: np.ndarray, *, seed: int, smoothing: float = 10.0) -> float:
    """AUC of an out-of-fold, smoothed target-rate encoding; missing is a level of its own."""
    if np.bincount(labels, minlength=2).min() < 2:
        return 0.5
    levels = values.astype(object).where(values.notna(), "\0missing").astype(str).to_numpy()
    encoded = np.empty(labels.size)
    prior = labels.mean()
    folds = StratifiedKFold(n_splits=min(5, int(np.bincount(labels).min())), shuffle=True, random_state=seed)
    for fit_rows, score_rows in folds.split(levels, labels):
        rates = (pd.DataFrame({"level": levels[fit_rows], "y": labels[fit_rows]})
                 .groupby("level")["y"].agg(["sum", "count"]))
        smoothed = (rates["sum"] + smoothing * prior) / (rates["count"] + smoothing)
        encoded[score_rows] = pd.Series(levels[score_rows]).map(smoothed).fillna(prior).to_numpy()
    auc = roc_auc_score(labels, encoded)
    return float(max(auc, 1.0 - auc))
