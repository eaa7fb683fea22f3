"""The monitoring report: a self-contained HTML page of a drift report (scoring.drift), grouped by factor; tables as CSV."""

from __future__ import annotations

from pathlib import Path

from analysis import html as report_html
from analysis.plots import _pyplot
from analysis.rendering import render_page

#: Status words on the page (the report's own values are ok / warning / alert).
STATUS_WORDS = {"ok": "stable", "warning": "warning", "alert": "alert"}
#: Shifted factors drawn, most shifted first: a page with a hundred pictures is read by nobody.
MAX_PICTURES = 12


def distribution_figure(bins, *, title: str, reference_label: str = "reference", now_label: str = "scored base",
                        previous=None):
    """Bar pairs (or triples, with the previous run's ``share``) of each bin's share of leads."""
    import numpy as np

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 3.4))
    x = np.arange(len(bins))
    width = 0.27 if previous is not None else 0.4
    axis.bar(x - width / (1 if previous is not None else 2), bins["reference_share"], width=width,
             label=reference_label, color="#9db4d8")
    if previous is not None:
        axis.bar(x, previous["reference_share"], width=width, label="previous run", color="#c9c9c9")
    axis.bar(x + width / (1 if previous is not None else 2), bins["share"], width=width, label=now_label,
             color="#d9822b")
    axis.set_xticks(x, [str(label)[:28] for label in bins["bin"]], rotation=30, ha="right", fontsize=7)
    axis.set_ylabel("share of leads")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def score_drift_figure(report, *, title: str = "Probability distribution: reference vs. scored base"):
    """Bar pairs of the reference's and the scored base's share in each probability bin."""
    return distribution_figure(report.score_bins, title=f"{title}\nPSI {report.score['psi']:.3f}")


def write_monitoring_report(report, out_dir, *, title: str = "") -> Path:
    """Write ``monitoring.html`` and the tables as CSV into ``out_dir``; return the HTML path."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report.features.to_csv(out_dir / "feature_drift.csv", index=False)
    report.factors.to_csv(out_dir / "factor_drift.csv", index=False)
    report.tiers.to_csv(out_dir / "tier_mix.csv", index=False)
    report.score_bins.to_csv(out_dir / "score_bins.csv", index=False)
    figures = {"score": score_drift_figure(report)}
    previous = report.previous
    for row in report.shifted_factors().head(MAX_PICTURES).itertuples():
        earlier = previous.feature_bins.get(row.feature) if previous is not None else None
        figures[f"factor:{row.factor}"] = distribution_figure(
            report.feature_bins[row.feature], previous=earlier,
            title=f"{row.words}: {row.feature}, PSI {row.psi:.3f} ({STATUS_WORDS[row.status]})")
    if previous is not None:  # factors shifted since the previous run only
        for row in previous.shifted_factors().head(MAX_PICTURES).itertuples():
            figures.setdefault(f"previous:{row.factor}", distribution_figure(
                previous.feature_bins[row.feature], reference_label="previous run",
                title=f"{row.words}: {row.feature}, PSI {row.psi:.3f} against the previous run"))
    try:
        page = render_monitoring_html(report, figures, title=title)
    finally:
        for shown in figures.values():
            plt.close(shown)
    path = out_dir / "monitoring.html"
    path.write_text(page, encoding="utf-8")
    return path


def render_monitoring_html(report, figures: dict, *, title: str = "") -> str:
    """The page as one HTML string (``templates/monitoring.html``); pictures embedded, so the file travels alone."""
    low, high = report.psi_bands
    unseen_low, unseen_high = report.unseen_bands
    tiers = report.tiers.assign(difference=report.tiers["share"] - report.tiers["expected_share"])
    return render_page(
        "monitoring.html", title=title, status=report.overall_status,
        status_words=STATUS_WORDS[report.overall_status], rows=f"{report.rows:,}",
        reference_source=report.reference_source, score_psi=f"{report.score['psi']:.3f}",
        tier_psi=f"{report.tier_psi:.3f}", factor_count=len(report.factors),
        psi_low=f"{low:g}", psi_high=f"{high:g}", unseen_low=f"{unseen_low:.0%}", unseen_high=f"{unseen_high:.0%}",
        against_reference=_comparison(report, figures, "factor"),
        against_previous=_comparison(report.previous, figures, "previous") if report.previous is not None else None,
        expected=_expected(report.expected),
        score_figure=report_html.figure(figures, "score", dpi=90),
        score_bins=report_html.table(report.score_bins, formats={"reference_share": "percent", "share": "percent"}),
        tiers=report_html.table(tiers, formats={"expected_share": "percent", "share": "percent",
                                                "difference": "percent"}),
        features=report_html.table(report.features[["words", "feature", "psi", "status", "unseen_share",
                                                    "missing_reference", "missing_now"]],
                                   formats={"psi": "probability", "unseen_share": "percent",
                                            "missing_reference": "percent", "missing_now": "percent"},
                                   labels={"words": "factor"}))


def _comparison(report, figures: dict, prefix: str) -> dict:
    """One comparison's plain values: status, counts, the factor table and one picture per shifted factor."""
    shifted = report.shifted_factors()
    table = report.factors.assign(status=report.factors["status"].map(STATUS_WORDS))[
        ["words", "status", "psi", "feature", "features", "unseen_share", "missing_reference", "missing_now", "moved"]]
    return {"status": report.status, "status_words": STATUS_WORDS[report.status], "source": report.reference_source,
            "score_psi": f"{report.score['psi']:.3f}", "shifted": len(shifted),
            "factors": report_html.table(table, formats={"psi": "probability", "unseen_share": "percent",
                                                         "missing_reference": "percent", "missing_now": "percent"},
                                         labels={"words": "factor", "feature": "most shifted column",
                                                 "features": "columns", "moved": "categories that moved"}),
            "pictures": [picture for row in shifted.itertuples()
                         if (picture := report_html.figure(figures, f"{prefix}:{row.factor}", dpi=80,
                                                           caption=row.words)) is not None]}


def _expected(expected: dict) -> dict | None:
    if not expected:
        return None
    sql = expected["expected_sql_precision"]
    return {"leads": f"{expected['leads']:,}", "conversions": f"{expected['expected_conversions']:,.0f}",
            "low": f"{expected['expected_conversions_low']:,.0f}", "high": f"{expected['expected_conversions_high']:,.0f}",
            "roc_auc": f"{expected['expected_roc_auc']:.3f}", "sql_leads": f"{expected['sql_leads']:,}",
            "sql_precision": report_html.percent(sql) if expected["sql_leads"] else None}


def record_drift(report, out_dir, *, identity: dict, model_uri: str | None = None, as_of=None) -> tuple:
    """Write the monitoring page of ``report`` and log it as an MLflow run; returns ``(page path, run id)``."""
    from registry.analysis_runs import log_monitoring

    path = write_monitoring_report(report, out_dir,
                                   title=f"{identity.get('model_name', '')} version {identity['model_version']}")
    return path, log_monitoring(report, report_path=path, model_uri=model_uri, identity=identity, as_of=as_of)
