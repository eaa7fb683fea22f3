"""The comparison report: a self-contained HTML page (pictures embedded) and its tables as CSV."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

FIGURES = ("cumulative_gains", "tier_conversion", "score_vs_points", "forecast")


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
        table.to_csv(out_dir / f"{name}.csv", index=False)
    path = out_dir / "report.html"
    path.write_text(render_html(comparison, figures))
    return path


def headline(comparison) -> str:
    """One paragraph: AUC of each scorer and SQL conversion at equal volume."""
    m = comparison.metrics
    text = (f"ROC AUC: model {m['model_roc_auc']:.3f}, rules {m['rules_roc_auc']:.3f}")
    if "learned_points_roc_auc" in m:
        text += (f", learned points table {m['learned_points_roc_auc']:.3f} "
                 f"({m['learned_points_roc_auc'] / m['model_roc_auc']:.3f}x the model)")
    tiers = comparison.tables["tiers"].set_index(["scorer", "tier"])
    rules, model = tiers.loc[("rules", "SQL")], tiers.loc[("model at equal volume", "SQL")]
    text += (f". SQL conversion at equal volume ({int(rules['leads']):,} SQLs): model {model['conversion_rate']:.1%}, "
             f"rules {rules['conversion_rate']:.1%} (base rate {m['test_base_rate']:.1%}).")
    return text


def render_html(comparison, figures: dict) -> str:
    """The report as one HTML string; pictures are base64 PNGs, so the file travels alone."""
    p = comparison.params
    tables = comparison.tables
    parts = [
        "<h1>Model vs. points rules</h1>",
        f"<p>Test snapshots {html.escape(p.get('window_test_first', ''))} .. "
        f"{html.escape(p.get('window_test_last', ''))}, {comparison.metrics['test_rows']:,} snapshots, "
        f"horizon {p.get('horizon_days', '')} days; rules: {html.escape(str(p.get('rules', '')))}.</p>",
        f"<p class='headline'>{html.escape(headline(comparison))}</p>",
        "<h2>Ranking: AUC, lift and capture</h2>", _table(tables["auc"]), _table(tables["lift"]),
        _figure(figures, "cumulative_gains"),
        "<h2>Tiers</h2><p>Each scorer's own tiers, and the model's tiers sized to the rules' tier counts "
        "(<em>model at equal volume</em>): the fair comparison of what sales would receive.</p>",
        _table(tables["tiers"]), _figure(figures, "tier_conversion"),
        "<h2>Where they agree: rule tier x model tier</h2>",
        "<p>Model at its own thresholds:</p>", _table(crosstab_grid(tables["crosstab"])),
        "<p>Model at equal volume:</p>", _table(crosstab_grid(tables["crosstab_equal_volume"])),
        _figure(figures, "score_vs_points"),
        "<h2>Leads they disagree on most</h2><p>rank_gap is the model's percentile rank minus the rules' "
        "(positive: the model rates the lead higher).</p>", _table(tables["disagreements"]),
        "<h2>Forecast backtest</h2><p>Expected conversions within the horizon per forecast date and model "
        "tier: the sum of calibrated probabilities with its exact Poisson-binomial 90 % interval (outcome "
        "noise only), and the same after a level check (<em>_adjusted</em>): one log-odds shift that makes "
        "the probabilities add up to what happened on earlier snapshots of held-out leads whose horizon "
        "ended before the forecast date, its interval widened by how well that history knows the level. "
        f"History: {comparison.metrics.get('forecast_history_rows', 0):,} snapshots, actual / expected "
        f"{comparison.metrics.get('forecast_history_actual_per_expected', float('nan')):.2f}. Then what "
        "actually happened.</p>",
        _table(tables["forecast"]), _figure(figures, "forecast"),
    ]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:12px;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
             ".headline{font-size:1.15em;background:#f3f6fa;padding:.8em}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Model vs. points rules</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def crosstab_grid(crosstab):
    """Cells as 'conversion (leads)', rule tiers down, model tiers across."""
    cells = crosstab.assign(cell=[f"{rate:.1%} ({leads:,})" if leads else "-"
                                  for rate, leads in zip(crosstab["conversion_rate"], crosstab["leads"])])
    table = cells.pivot(index="rule_tier", columns="model_tier", values="cell")
    table.index.name, table.columns.name = "rules \\ model", None
    return table.reset_index()


def _table(frame) -> str:
    return frame.to_html(index=False, float_format=lambda value: f"{value:.3f}", border=0, escape=True)


def _figure(figures: dict, name: str) -> str:
    figure = figures.get(name)
    if figure is None:
        return ""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<p><img alt='{name}' src='data:image/png;base64,{encoded}'></p>"
