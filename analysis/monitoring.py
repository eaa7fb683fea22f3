"""The monitoring report: a self-contained HTML page of a drift report (models.monitoring), tables as CSV."""

from __future__ import annotations

import html
from pathlib import Path

from analysis.plots import _pyplot


def score_drift_figure(report, *, title: str = "Probability distribution: training reference vs. scored base"):
    """Bar pairs of the reference's and the scored base's share in each probability bin."""
    import numpy as np

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 3.6))
    bins = report.score_bins
    x = np.arange(len(bins))
    axis.bar(x - 0.2, bins["reference_share"], width=0.4, label="training reference")
    axis.bar(x + 0.2, bins["share"], width=0.4, label="scored base")
    axis.set_xticks(x, bins["bin"], rotation=30, ha="right", fontsize=7)
    axis.set_ylabel("share of leads")
    axis.set_title(f"{title}\nPSI {report.score['psi']:.3f}", fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def write_monitoring_report(report, out_dir, *, title: str = "") -> Path:
    """Write ``monitoring.html`` and the tables as CSV into ``out_dir``; return the HTML path."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report.features.to_csv(out_dir / "feature_drift.csv", index=False)
    report.tiers.to_csv(out_dir / "tier_mix.csv", index=False)
    report.score_bins.to_csv(out_dir / "score_bins.csv", index=False)
    figure = score_drift_figure(report)
    try:
        page = render_monitoring_html(report, {"score": figure}, title=title)
    finally:
        plt.close(figure)
    path = out_dir / "monitoring.html"
    path.write_text(page, encoding="utf-8")
    return path


def render_monitoring_html(report, figures: dict, *, title: str = "") -> str:
    low, high = report.psi_bands
    unseen_low, unseen_high = report.unseen_bands
    colour = {"ok": "#e7f5e7", "warning": "#fff4d6", "alert": "#fbe1e1"}[report.status]
    tiers = report.tiers.assign(difference=report.tiers["share"] - report.tiers["expected_share"])
    parts = [
        f"<h1>Drift monitoring{': ' + html.escape(title) if title else ''}</h1>",
        f"<p class='headline' style='background:{colour}'>Status <b>{report.status.upper()}</b>: "
        f"{report.rows:,} scored leads compared with {report.reference_rows:,} rows of the training reference "
        f"(the calibration split). Score PSI {report.score['psi']:.3f}; tier mix PSI {report.tier_psi:.3f}; "
        f"{int((report.features['status'] == 'warning').sum())} features at warning, "
        f"{int((report.features['status'] == 'alert').sum())} at alert.</p>",
        f"<p>PSI bands: below {low:g} stable, {low:g}-{high:g} warning (a moderate shift worth a look), "
        f"{high:g} and above alert (a significant shift: check the data feed, then consider retraining). "
        f"Unseen categories: warning from {unseen_low:.0%} of rows, alert from {unseen_high:.0%}.</p>",
        "<h2>Score</h2>", _figure(figures, "score"), _table(report.score_bins),
        "<h2>Tier mix against the expected shares</h2>", _table(tiers),
        "<h2>Features, most shifted first</h2>",
        "<p><em>unseen_share</em>: rows whose category the training data never had; <em>missing_*</em>: "
        "share of missing values in the reference and now.</p>", _table(report.features),
    ]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:12px;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
             ".headline{font-size:1.15em;padding:.8em}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Drift monitoring</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def _table(frame) -> str:
    return frame.to_html(index=False, float_format=lambda value: f"{value:.3f}", border=0, escape=True)


def _figure(figures: dict, name: str) -> str:
    import base64
    import io

    buffer = io.BytesIO()
    figures[name].savefig(buffer, format="png", dpi=90)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<p><img alt='{name}' src='data:image/png;base64,{encoded}'></p>"


def record_drift(report, out_dir, *, identity: dict, model_uri: str | None = None) -> tuple:
    """Write the monitoring page of ``report`` and log it as an MLflow run; returns ``(page path, run id)``."""
    from registry.runs import log_monitoring

    path = write_monitoring_report(report, out_dir,
                                   title=f"{identity.get('model_name', '')} version {identity['model_version']}")
    return path, log_monitoring(report, report_path=path, model_uri=model_uri, identity=identity)
