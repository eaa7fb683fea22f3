"""The training report: one HTML page per run with the standard pictures and tables of its test split.

ROC and PR curves, gains and lift, KS, reliability with the predictions' histogram, the
threshold picture with the tier cut-offs, confusion at the tier thresholds, conversion per tier
and decile, global importance of the reason factors, and the leakage report. The CLI writes it
beside the run and logs it to MLflow; it reads a :class:`training.pipeline.TrainingResult` by its
attributes and never imports training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis import html as report_html
from analysis.evaluation_plots import (conversion_bars_figure, confusion_figure, importance_figure, ks_curves, ks_figure,
                                       lift_gains_figure, precision_recall_figure, reliability_histogram_figure,
                                       roc_figure, threshold_figure)
from analysis.rendering import render_page
from training.journey import journey_tables

#: Rows whose contributions are averaged for factor importance (LightGBM's exact ones cost ~0.1 ms a row).
IMPORTANCE_ROWS = 20_000
FIGURES = ("roc", "precision_recall", "lift_gains", "ks", "reliability", "thresholds", "confusion",
           "conversion", "importance")


def training_report(result, *, out_dir, importance_rows: int = IMPORTANCE_ROWS, seed: int = 0) -> dict:
    """Write ``training_report.html`` and its tables as CSV into ``out_dir``.

    Returns ``{"path", "figures", "tables", "metrics"}``: the figures and tables by name (to log
    them) and the report's extra metrics (``test_ks``).
    """
    tables = training_tables(result, importance_rows=importance_rows, seed=seed)
    figures = training_figures(result, importance=tables.get("factor_importance"))
    _, _, _, ks, at = ks_curves(result.test["label"], result.test["probability"])
    metrics = {"test_ks": ks, "test_ks_probability": at}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(out_dir / f"{name}.csv", index=False)
    path = out_dir / "training_report.html"
    path.write_text(render_training_report(result, figures, tables, metrics), encoding="utf-8")
    return {"path": path, "figures": figures, "tables": tables, "metrics": metrics}


def training_tables(result, *, importance_rows: int = IMPORTANCE_ROWS, seed: int = 0) -> dict:
    """The report's tables: confusion at the tier thresholds and factor importance (when features are at hand)."""
    y, p = result.test["label"].to_numpy(), result.test["probability"].to_numpy()
    tables = {"confusion_at_tiers": confusion_table(y, p, tier_cutoffs(result.bundle.thresholds))}
    if getattr(result, "test_features", None) is not None and len(result.test_features):
        tables["factor_importance"] = factor_importance(result.bundle, result.test_features, max_rows=importance_rows,
                                                        seed=seed)
    tables.update(journey_tables(result.test, getattr(result, "test_features", None)))
    return tables


def training_figures(result, *, importance: pd.DataFrame | None = None) -> dict:
    """The report's pictures by name (matplotlib figures, detached from pyplot)."""
    y, p = result.test["label"].to_numpy(), result.test["probability"].to_numpy()
    cutoffs = tier_cutoffs(result.bundle.thresholds)
    figures = {
        "roc": roc_figure(y, p),
        "precision_recall": precision_recall_figure(y, p),
        "lift_gains": lift_gains_figure(y, p),
        "ks": ks_figure(y, p),
        "reliability": reliability_histogram_figure(y, p),
        "thresholds": threshold_figure(y, p, cutoffs),
        "confusion": confusion_figure(y, p, cutoffs),
        "conversion": conversion_bars_figure(result.tables["test_tiers"], result.tables["test_deciles"]),
    }
    if importance is not None and len(importance):
        figures["importance"] = importance_figure(importance)
    return figures


def tier_cutoffs(thresholds) -> dict:
    """``{"SQL": p, "MQL": p}`` from a TierThresholds."""
    return {"SQL": float(thresholds.sql), "MQL": float(thresholds.mql)}


def confusion_table(y_true, probability, cutoffs: dict) -> pd.DataFrame:
    """Per tier threshold: leads flagged (at or above it), converters caught and missed, precision, recall."""
    y_true = np.asarray(y_true, dtype=int)
    probability = np.asarray(probability, dtype=float)
    rows = []
    for tier, cut in cutoffs.items():
        flagged = probability >= cut
        tp = int((flagged & (y_true == 1)).sum())
        fp = int((flagged & (y_true == 0)).sum())
        fn = int((~flagged & (y_true == 1)).sum())
        tn = int((~flagged & (y_true == 0)).sum())
        rows.append({"tier": f"{tier} or above", "threshold": cut, "flagged": tp + fp,
                     "converted_flagged": tp, "not_converted_flagged": fp, "converted_missed": fn,
                     "not_converted_not_flagged": tn, "precision": tp / (tp + fp) if tp + fp else np.nan,
                     "recall": tp / (tp + fn) if tp + fn else np.nan, "volume": (tp + fp) / max(y_true.size, 1)})
    return pd.DataFrame(rows)


def factor_importance(bundle, features: pd.DataFrame, *, max_rows: int = IMPORTANCE_ROWS,
                      seed: int = 0) -> pd.DataFrame:
    """Mean absolute contribution (log-odds) of each reason factor over the rows, strongest first.

    Contributions are the model's exact ones (:func:`models.explain.feature_contributions`),
    summed per factor as the reasons group them (:func:`models.factor_words.feature_families`), so the
    table ranks the same factors a lead's reasons name. Over ``max_rows`` rows, a seeded sample.
    """
    from models.explain import feature_contributions
    from models.factor_words import factor_words, feature_families

    if len(features) > max_rows:
        features = features.sample(max_rows, random_state=seed)
    contributions, _ = feature_contributions(bundle, features)
    families = feature_families(bundle.spec)
    by_factor = contributions.T.groupby([families[name] for name in contributions.columns], sort=False).sum().T
    mean_abs = by_factor.abs().mean()
    table = pd.DataFrame({"factor": [factor_words(name, bundle.spec) for name in mean_abs.index], "factor_key": mean_abs.index,
                          "mean_abs_contribution": mean_abs.to_numpy(),
                          "mean_contribution": by_factor.mean().to_numpy()})
    table["share"] = table["mean_abs_contribution"] / max(table["mean_abs_contribution"].sum(), 1e-12)
    return table.sort_values("mean_abs_contribution", ascending=False, kind="stable").reset_index(drop=True)


def render_training_report(result, figures: dict, tables: dict, metrics: dict) -> str:
    """The report as one HTML string (``templates/training_report.html``; pictures embedded, so the file travels alone)."""
    m, p = {**result.metrics, **metrics}, result.params
    y = result.test["label"].to_numpy()
    if p.get("split") == "temporal":
        window = (f"test snapshots {p.get('window_test_first', '')} .. {p.get('window_test_last', '')}: "
                  f"{int(m['test_rows']):,} snapshots of leads the model never saw")
    else:
        window = f"{p.get('split', '')} split: {int(m['test_rows']):,} test leads the model never saw"
    oracle = (f" (oracle ROC AUC {m['test_oracle_roc_auc']:.3f}: the best any model could do on these rows)"
              if "test_oracle_roc_auc" in m else "")
    headline = (f"{p.get('model', 'model')} with {p.get('calibration', '')} calibration. ROC AUC "
                f"{m['test_roc_auc']:.3f}{oracle}, PR AUC {m['test_pr_auc']:.3f} (base rate "
                f"{report_html.percent(m['test_base_rate'])}), KS {m['test_ks']:.3f}, Brier {m['test_brier']:.4f}, "
                f"expected calibration error {report_html.percent(m['test_ece'])}, top-decile lift "
                f"{m['test_top_decile_lift']:.2f}.")
    thresholds = tier_cutoffs(result.bundle.thresholds)
    captions = {"lift_gains": "Gains: conversions captured by calling the top of the list. Lift: how many times the "
                              "base rate the top of the list converts at.",
                "ks": f"KS {m['test_ks']:.3f}: the widest gap between the two cumulative distributions; 0 is no "
                      "separation, 1 perfect."}
    importance = tables.get("factor_importance")
    leakage = result.tables.get("leakage_report")
    return render_page(
        "training_report.html", window=window, converted=f"{int(y.sum()):,}",
        horizon=f" of {p['horizon_days']} days" if "horizon_days" in p else "", headline=headline,
        sql_cutoff=f"{thresholds['SQL']:.3f}", mql_cutoff=f"{thresholds['MQL']:.3f}",
        figures={name: report_html.figure(figures, name, caption=captions.get(name, "")) for name in FIGURES},
        confusion=report_html.table(tables["confusion_at_tiers"], formats={
            "threshold": "probability", "precision": "percent", "recall": "percent", "volume": "percent"},
            labels={"flagged": "leads at or above", "converted_flagged": "converted, flagged",
                    "not_converted_flagged": "did not convert, flagged", "converted_missed": "converted, missed",
                    "not_converted_not_flagged": "did not convert, not flagged",
                    "precision": "conversion of flagged", "recall": "share of converters caught",
                    "volume": "share of leads flagged"}),
        tiers=_summary_table(result.tables["test_tiers"]), deciles=_summary_table(result.tables["test_deciles"]),
        importance=None if importance is None else report_html.table(
            importance.drop(columns="factor_key").head(30), formats={
                "mean_abs_contribution": "ratio", "mean_contribution": lambda v: f"{v:+.2f}", "share": "percent"},
            labels={"mean_abs_contribution": "mean |contribution|", "mean_contribution": "mean contribution",
                    "share": "share of all"}),
        leakage=None if leakage is None or not len(leakage) else report_html.table(leakage, formats={"auc": "probability"}),
        excluded=", ".join(p.get("excluded_columns") or []),
        journey={name: report_html.table(tables[name], formats=JOURNEY_FORMATS,
                                         labels={**JOURNEY_LABELS, "band": band})
                 for name, band in JOURNEY_TABLES.items() if name in tables})


#: training.journey's tables as the report shows them: the heading of each one's band column.
JOURNEY_TABLES = {"auc_by_lead_age": "lead age", "auc_by_events_so_far": "events so far", "score_stability": ""}
JOURNEY_FORMATS = {"base_rate": "percent", "roc_auc": "probability", "median_abs_change_points": "ratio",
                   "p90_abs_change_points": "ratio", "tier_changed_share": "percent", "rank_correlation": "probability"}
JOURNEY_LABELS = {"base_rate": "conversion", "roc_auc": "ROC AUC", "median_abs_change_points": "median change (points)",
                  "p90_abs_change_points": "90th pct change (points)",
                  "tier_changed_share": "tier changed", "rank_correlation": "rank correlation"}


def _summary_table(frame: pd.DataFrame) -> dict:
    return report_html.table(frame, formats={"conversion_rate": "percent", "expected_rate": "percent",
                                             "lift": "ratio", "share_of_conversions": "percent"},
                             labels={"conversion_rate": "conversion", "expected_rate": "expected conversion",
                                     "share_of_conversions": "share of all conversions"})
