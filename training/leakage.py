"""Leakage guard: a lead column that alone predicts the outcome almost perfectly was written after it."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from features.spec import FeatureSpec

REPORT_COLUMNS = ("column", "feature", "kind", "single_column_auc", "verdict", "declared_post_outcome", "suspicious",
                  "kept", "excluded", "reason")
#: Verdicts, most alarming first: the order the console and MLflow show them in.
VERDICTS = ("excluded", "kept on request", "suspicious", "declared post-outcome", "ok")


class LeakageWarning(UserWarning):
    """A column was excluded from training (or kept on request) because it looks like post-outcome data."""


class SuspiciousColumnWarning(LeakageWarning):
    """A column predicts the outcome well enough alone to look post-outcome; it is kept, and flagged."""


def leakage_report(features: pd.DataFrame, labels, spec: FeatureSpec, *, max_auc: float = 0.95,
                   suspicious_auc: float = 0.80, post_outcome=(), keep=(), groups=None,
                   seed: int = 0) -> pd.DataFrame:
    """Single-column ROC AUC of each attribute feature on the training rows, and the verdict per column.

    Categories are target-rate encoded out of fold (fitted on the training rows, never scoring a
    row with its own label); with ``groups`` (the lead id of each row, as with snapshots) the
    folds are grouped, so no lead's other snapshots encode its own level. Numbers are ranked
    raw, missing values both first and last. The AUC is taken in both directions,
    ``max(auc, 1 - auc)``.

    Verdicts: a column reaching ``max_auc`` is *excluded* (unless listed in ``keep``: *kept on
    request*); one reaching ``suspicious_auc`` is *suspicious*: kept, but flagged; a column the
    user declared ``post_outcome`` is excluded as *declared*, which is a decision, not a warning.
    Columns, never values, are reported: the table is safe to log.
    """
    if not 0.5 < max_auc <= 1.0:
        raise ValueError(f"The 'max_auc' parameter of leakage_report must be in (0.5, 1]. Got {max_auc!r} instead.")
    if not 0.5 < suspicious_auc <= max_auc:
        raise ValueError("The 'suspicious_auc' parameter of leakage_report must be in (0.5, max_auc]. "
                         f"Got {suspicious_auc!r} with max_auc={max_auc!r} instead.")
    labels = np.asarray(labels, dtype=int)
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape[0] != labels.shape[0]:
            raise ValueError(f"The 'groups' parameter of leakage_report must give one lead id per row: "
                             f"{labels.shape[0]} rows. Got {groups.shape[0]} instead.")
    categorical = set(spec.categorical_feature_names)
    declared, kept = set(post_outcome), set(keep)
    rows = []
    for feature, column in spec.source_columns.items():
        values = features[feature]
        auc = (_categorical_auc(values, labels, groups=groups, seed=seed) if feature in categorical
               else _numeric_auc(values.to_numpy(dtype=float), labels))
        rows.append({"column": column, "feature": feature, "kind": "categorical" if feature in categorical
                     else "numeric", "single_column_auc": round(float(auc), 4)})
    report = pd.DataFrame(rows, columns=["column", "feature", "kind", "single_column_auc"])
    # A column is judged as a whole, by its most predictive feature: a leaking derived feature
    # takes its siblings with it.
    column_auc = report.groupby("column")["single_column_auc"].transform("max")
    report["declared_post_outcome"] = report["column"].isin(declared)
    too_high = column_auc >= max_auc
    report["kept"] = too_high & report["column"].isin(kept) & ~report["declared_post_outcome"]
    report["excluded"] = report["declared_post_outcome"] | (too_high & ~report["kept"])
    report["suspicious"] = ~report["excluded"] & ~report["kept"] & (column_auc >= suspicious_auc)
    report["verdict"] = np.select(
        [report["declared_post_outcome"], report["excluded"], report["kept"], report["suspicious"]],
        ["declared post-outcome", "excluded", "kept on request", "suspicious"], default="ok")
    report["reason"] = [_reason(verdict, auc, max_auc=max_auc, suspicious_auc=suspicious_auc)
                        for verdict, auc in zip(report["verdict"], column_auc)]
    order = report["verdict"].map({verdict: rank for rank, verdict in enumerate(VERDICTS)})
    report = report.assign(_order=order, _auc=column_auc).sort_values(
        ["_order", "_auc", "single_column_auc"], ascending=[True, False, False], kind="stable")
    return report[list(REPORT_COLUMNS)].reset_index(drop=True)


def apply_leakage_guard(features: pd.DataFrame, labels, spec: FeatureSpec, *, max_auc: float = 0.95,
                        suspicious_auc: float = 0.80, post_outcome=(), keep=(), groups=None, seed: int = 0,
                        log=print):
    """Run :func:`leakage_report` and drop what it excludes; return ``(spec, report)``.

    Every excluded, kept-on-request or suspicious column gets a loud warning naming it; the
    columns the user declared post-outcome get one plain line saying they are excluded as declared.
    """
    unknown = sorted(set(post_outcome) - set(spec.source_columns.values()))
    if unknown:
        log(f"note: post-outcome column(s) {unknown} are not features anyway")
    report = leakage_report(features, labels, spec, max_auc=max_auc, suspicious_auc=suspicious_auc,
                            post_outcome=post_outcome, keep=keep, groups=groups, seed=seed)
    by_column = report.drop_duplicates("column")
    declared = by_column.loc[by_column["verdict"].eq("declared post-outcome"), "column"].tolist()
    if declared:
        log(f"leakage guard: excluded as declared post-outcome: {', '.join(declared)}")
    for row in by_column.itertuples():
        if row.verdict in ("excluded", "kept on request"):
            verdict = "KEPT because the config says keep" if row.kept else "EXCLUDED from training"
            warnings.warn(f"leakage guard: column {row.column!r} {verdict} ({row.reason})", LeakageWarning,
                          stacklevel=2)
        elif row.verdict == "suspicious":
            warnings.warn(f"leakage guard: column {row.column!r} is SUSPICIOUS ({row.reason}): kept, but a model "
                          "using it is not promoted automatically; declare it post-outcome if it is written after "
                          "the outcome", SuspiciousColumnWarning, stacklevel=2)
    return spec_without(spec, set(report.loc[report["excluded"], "column"])), report


def suspicious_columns(report: pd.DataFrame) -> list[str]:
    """The columns a leakage report flags as suspicious or kept on request: still features, still doubtful."""
    if report is None or "verdict" not in report.columns:
        return []
    doubtful = report["verdict"].isin(("suspicious", "kept on request"))
    return list(dict.fromkeys(report.loc[doubtful, "column"]))


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


def _reason(verdict: str, auc: float, *, max_auc: float, suspicious_auc: float) -> str:
    if verdict == "declared post-outcome":
        return "declared post-outcome in the config"
    if verdict in ("excluded", "kept on request"):
        return f"single-column AUC {auc:.3f} >= {max_auc}"
    if verdict == "suspicious":
        return f"single-column AUC {auc:.3f} >= {suspicious_auc}"
    return ""


def _categorical_auc(values: pd.Series, labels: np.ndarray, *, groups=None, seed: int,
                     smoothing: float = 10.0) -> float:
    """AUC of an out-of-fold, smoothed target-rate encoding; missing is a level of its own.

    With ``groups`` the folds keep each group (a lead's snapshots) together: otherwise a lead's
    other snapshots, with the same level and mostly the same label, encode its own row.
    """
    if np.bincount(labels, minlength=2).min() < 2:
        return 0.5
    levels = values.astype(object).where(values.notna(), "\0missing").astype(str).to_numpy()
    prior = labels.mean()
    encoded = np.full(labels.size, prior)
    n_splits = min(5, int(np.bincount(labels).min()))
    if groups is not None:
        n_splits = min(n_splits, int(pd.unique(groups).size))
        if n_splits < 2:
            return 0.5
        splits = _group_folds(groups, n_splits=n_splits, seed=seed)
    else:
        splits = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(levels, labels)
    for fit_rows, score_rows in splits:
        rates = (pd.DataFrame({"level": levels[fit_rows], "y": labels[fit_rows]})
                 .groupby("level")["y"].agg(["sum", "count"]))
        smoothed = (rates["sum"] + smoothing * prior) / (rates["count"] + smoothing)
        encoded[score_rows] = pd.Series(levels[score_rows]).map(smoothed).fillna(prior).to_numpy()
    auc = roc_auc_score(labels, encoded)
    return float(max(auc, 1.0 - auc))


def _group_folds(groups: np.ndarray, *, n_splits: int, seed: int):
    """(fit rows, score rows) per fold, each group in one fold, drawn by a seeded hash of its id.

    A hash rather than StratifiedGroupKFold: linear in rows on 100,000s of snapshots, and a lead's
    fold does not depend on which other leads are present.
    """
    hashed = pd.util.hash_array(np.asarray(groups).astype(str).astype(object), hash_key=f"{seed % 10 ** 8:08d}leakfold")
    fold = (hashed % np.uint64(n_splits)).astype(int)
    for number in range(n_splits):
        scored = fold == number
        if scored.any() and not scored.all():
            yield np.flatnonzero(~scored), np.flatnonzero(scored)
