"""The comparison report: a self-contained HTML page for people (pictures embedded) and its tables as CSV.

The CSVs keep the raw columns and decimals (for spreadsheets); the page shows labels in words,
percentages, money with thousands separators and intervals in brackets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis import html as report_html
from analysis.html import money, percent
from analysis.rendering import render_page
from scoring.score_file import neutralise_formulas

FIGURES = ("cumulative_gains", "tier_conversion", "score_vs_points", "forecast")
INTERVAL_WORDS = {
    "roc_auc_difference": "ROC AUC, model minus rules",
    "sql_conversion_difference": "SQL conversion at equal volume, model minus rules",
    "model_sql_conversion": "SQL conversion at equal volume, model",
    "rules_sql_conversion": "SQL conversion, rules",
}


def comparison_figures(comparison) -> dict:
    """The report's pictures, by name (matplotlib figures)."""
    from analysis.plots import forecast_figure, gains_figure, score_points_figure, tier_conversion_figure

    scored = comparison.scored
    scores = {"model": scored["probability"], "rules": scored["points"],
              **{column[len("points_"):]: scored[column] for column in scored.columns if column.startswith("points_")}}
    return {
        "cumulative_gains": gains_figure(scored["label"], scores),
        "tier_conversion": tier_conversion_figure(comparison.tables["tiers"]),
        "score_vs_points": score_points_figure(scored["probability"], scored["points"], scored["label"]),
        "forecast": forecast_figure(comparison.tables["forecast"]),
    }


def write_report(comparison, figures: dict, out_dir) -> Path:
    """Write ``report.html`` and one CSV per table into ``out_dir``; return the HTML path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in comparison.tables.items():
        # Lead ids and categories come from the export: a cell like =HYPERLINK(...) must not run in a spreadsheet.
        neutralise_formulas(table).to_csv(out_dir / f"{name}.csv", index=False)
    path = out_dir / "report.html"
    path.write_text(render_html(comparison, figures), encoding="utf-8")
    return path


def headline(comparison) -> str:
    """One paragraph: AUC of each scorer and SQL conversion at equal volume, with bootstrap intervals."""
    m = comparison.metrics
    text = f"ROC AUC: model {m['model_roc_auc']:.3f}, rules {m['rules_roc_auc']:.3f}"
    if "learned_points_roc_auc" in m:
        text += (f", learned points table {m['learned_points_roc_auc']:.3f} "
                 f"({m['learned_points_roc_auc'] / m['model_roc_auc']:.3f}x the model)")
    intervals = _intervals(comparison)
    if "roc_auc_difference" in intervals:
        text += f"; model minus rules {_signed(intervals['roc_auc_difference'], '{:+.3f}')}"
    tiers = comparison.tables["tiers"].set_index(["scorer", "tier"])
    rules, model = tiers.loc[("rules", "SQL")], tiers.loc[("model at equal volume", "SQL")]
    text += (f". SQL conversion at equal volume ({int(rules['leads']):,} SQLs): model {percent(model['conversion_rate'])}, "
             f"rules {percent(rules['conversion_rate'])}")
    if "sql_conversion_difference" in intervals:
        text += f" (difference {_signed(intervals['sql_conversion_difference'], 'points')})"
    return text + f"; base rate {percent(m['test_base_rate'])}."


def render_html(comparison, figures: dict) -> str:
    """The report as one HTML string (``templates/comparison.html``); pictures are base64 PNGs, so the file travels alone."""
    p, m, tables = comparison.params, comparison.metrics, comparison.tables
    if p.get("window_test_first"):
        scope = (f"Test snapshots {p['window_test_first']} .. {p.get('window_test_last', '')}: "
                 f"{m['test_rows']:,} snapshots of leads the model never saw, horizon {p.get('horizon_days', '')} days")
    else:
        scope = f"{m['test_rows']:,} test leads the model never saw ({p.get('split', '')} split)"
    figures = {name: report_html.figure(figures, name) for name in FIGURES}
    return render_page(
        "comparison.html", scope=scope, rules=p.get("rules", ""), headline=headline(comparison),
        resamples=p.get("bootstrap_resamples", 0), unit="snapshots" if "as_of" in comparison.scored else "leads",
        intervals=_interval_table(tables["intervals"]) if "intervals" in tables else None,
        auc=report_html.table(tables["auc"], formats={"roc_auc": "probability", "pr_auc": "probability"},
                              labels={"roc_auc": "ROC AUC", "pr_auc": "PR AUC (average precision)"}),
        lift=_lift_table(tables["lift"]),
        tiers=report_html.table(tables["tiers"],
                                formats={"conversion_rate": "percent", "share_of_conversions": "percent"},
                                labels={"conversion_rate": "conversion",
                                        "share_of_conversions": "share of all conversions"}),
        crosstab=report_html.table(crosstab_grid(tables["crosstab"])),
        crosstab_equal_volume=report_html.table(crosstab_grid(tables["crosstab_equal_volume"])),
        disagreements=_disagreement_table(tables["disagreements"]),
        forecast_text=_forecast_text(comparison), forecast=report_html.table(forecast_display(tables["forecast"])),
        figures=figures)


def crosstab_grid(crosstab):
    """Cells as 'conversion (leads)', rule tiers down, model tiers across."""
    cells = crosstab.assign(cell=[f"{percent(rate)} ({leads:,})" if leads else "-"
                                  for rate, leads in zip(crosstab["conversion_rate"], crosstab["leads"])])
    table = cells.pivot(index="rule_tier", columns="model_tier", values="cell")
    table.index.name, table.columns.name = "rules \\ model", None
    return table.reset_index()


def forecast_display(forecast: pd.DataFrame) -> pd.DataFrame:
    """The forecast table for people: intervals in brackets, money formatted, fewer and named columns."""
    rows = {}
    if "as_of" in forecast:
        rows["forecast date"] = forecast["as_of"]
    rows["leads of"] = forecast["group"].map(lambda g: "all tiers" if g == "all" else g)
    rows["leads"] = forecast["leads"].map(lambda v: f"{int(v):,}")
    rows["expected conversions [90 % interval]"] = [
        f"{e:,.0f} [{lo:,}\u2013{hi:,}]" for e, lo, hi in zip(forecast["expected_conversions"], forecast["low"],
                                                              forecast["high"])]
    if "expected_adjusted" in forecast:
        rows["level-checked [90 % interval]"] = [
            f"{e:,.0f} [{lo:,}\u2013{hi:,}]" for e, lo, hi in zip(forecast["expected_adjusted"],
                                                                  forecast["low_adjusted"], forecast["high_adjusted"])]
    if "actual_conversions" in forecast:
        rows["actual conversions"] = forecast["actual_conversions"].map(lambda v: f"{int(v):,}")
        rows["actual inside interval"] = forecast["inside"].map(lambda v: "yes" if v else "no")
    if "expected_revenue" in forecast and forecast["expected_revenue"].notna().any():
        rows["expected revenue [90 % interval]"] = [
            f"{money(e)} [{money(lo)}\u2013{money(hi)}]" for e, lo, hi in zip(
                forecast["expected_revenue"], forecast["revenue_low"], forecast["revenue_high"])]
    if "actual_revenue" in forecast and forecast["actual_revenue"].notna().any():
        rows["actual revenue"] = forecast["actual_revenue"].map(money)
    return pd.DataFrame(rows)


def _forecast_text(comparison) -> str:
    m = comparison.metrics
    text = ("Expected conversions within the horizon per model tier: the sum of calibrated probabilities with its "
            "exact Poisson-binomial 90 % interval (outcome noise only), then what actually happened.")
    if "forecast_history_rows" in m:
        text += (" Level-checked: one log-odds shift that makes the probabilities add up to what happened on "
                 "earlier snapshots of held-out leads whose horizon ended before the forecast date, its interval "
                 f"widened by how well that history knows the level (history: {m['forecast_history_rows']:,} "
                 f"snapshots, actual / expected {m.get('forecast_history_actual_per_expected', float('nan')):.2f}).")
    return text


def _lift_table(lift: pd.DataFrame) -> dict:
    frame = lift.assign(top_share=lift["top_share"].map(lambda v: f"top {percent(v, decimals=0)}"))
    return report_html.table(frame, formats={"conversion_rate": "percent", "lift": "ratio", "capture": "percent"},
                             labels={"top_share": "leads called", "conversion_rate": "conversion",
                                     "lift": "lift over base rate", "capture": "share of conversions captured"})


def _interval_table(intervals: pd.DataFrame) -> dict:
    rows = []
    for row in intervals.itertuples():
        style = "{:+.3f}" if row.metric == "roc_auc_difference" else (
            "points" if row.metric.endswith("difference") else "percent")
        rows.append({"measure": INTERVAL_WORDS.get(row.metric, row.metric),
                     "estimate": _format(row.estimate, style),
                     f"{row.level:.0%} interval": (f"{_format(row.low, style)} to {_format(row.high, style)}"
                                                   if np.isfinite(row.low) else "\u2013")})
    return report_html.table(pd.DataFrame(rows))


def _disagreement_table(table: pd.DataFrame) -> dict:
    shown = table.assign(
        lead_id=table["lead_id"].astype(str),  # an identifier, not an amount: no thousands separators
        label=table["label"].map(lambda v: "converted" if v == 1 else "did not convert"),
        probability=table["probability"].map(lambda v: percent(v)),
        rank_gap=table["rank_gap"].map(lambda v: f"{v * 100:+.0f}"),
        points=table["points"].map(lambda v: f"{v:,.0f}"),
    )
    if "as_of" in shown:
        shown["as_of"] = pd.to_datetime(shown["as_of"]).dt.strftime("%Y-%m-%d")
    return report_html.table(shown, labels={
        "lead_id": "lead", "as_of": "as of", "label": "outcome", "rank_gap": "rank gap", "probability":
        "model probability", "model_tier": "model tier", "points": "rule points", "rule_tier": "rule tier",
        "rule_reasons": "rules that gave most points", "model_reasons": "model's strongest factors"})


def _intervals(comparison) -> dict:
    table = comparison.tables.get("intervals")
    if table is None:
        return {}
    return {row.metric: row for row in table.itertuples()}


def _signed(row, style: str) -> str:
    text = _format(row.estimate, style)
    if np.isfinite(row.low):
        text += f", {row.level:.0%} interval {_format(row.low, style)} to {_format(row.high, style)}"
    return text


def _format(value, style: str) -> str:
    if value is None or not np.isfinite(value):
        return "\u2013"
    if style == "points":
        return f"{value * 100:+.1f} points"
    if style == "percent":
        return percent(value)
    return style.format(value)

