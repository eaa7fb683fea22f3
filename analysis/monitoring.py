"""The monitoring report: a self-contained HTML page of a drift report (models.monitoring), tables as CSV."""

from __future__ import annotations

from pathlib import Path

from analysis import html as report_html
from analysis.plots import _pyplot
from analysis.rendering import render_page


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
    """The page as one HTML string (``templates/monitoring.html``); the picture is embedded, so the file travels alone."""
    low, high = report.psi_bands
    unseen_low, unseen_high = report.unseen_bands
    tiers = report.tiers.assign(difference=report.tiers["share"] - report.tiers["expected_share"])
    return render_page(
        "monitoring.html", title=title, status=report.status, rows=f"{report.rows:,}",
        reference_rows=f"{report.reference_rows:,}", score_psi=f"{report.score['psi']:.3f}",
        tier_psi=f"{report.tier_psi:.3f}",
        features_warning=int((report.features["status"] == "warning").sum()),
        features_alert=int((report.features["status"] == "alert").sum()),
        psi_low=f"{low:g}", psi_high=f"{high:g}", unseen_low=f"{unseen_low:.0%}", unseen_high=f"{unseen_high:.0%}",
        score_figure=report_html.figure(figures, "score", dpi=90), score_bins=report_html.table(report.score_bins),
        tiers=report_html.table(tiers),
        features=report_html.table(report.features))
