"""Reports rendered from Jinja2 templates: one base page, cells formatted for people, text escaped, nothing undefined."""

import re
from html.parser import HTMLParser
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import pytest

from analysis import html as report_html
from analysis.monitoring import render_monitoring_html, write_monitoring_report
from analysis.rendering import render_page
from models.monitoring import build_reference
from scoring.drift import DriftMonitor, DriftReport


class _Tables(HTMLParser):
    """Every table of a page as a list of rows, each a list of cell texts (headings included)."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell)
            self._cell = None


def _tables(page: str) -> list:
    parser = _Tables()
    parser.feed(page)
    return parser.tables


def _report(feature_name: str = "company_size_log") -> DriftReport:
    """A real report of a tiny reference: 100 leads, half with a size up to 49.5, half above; one source."""
    reference = build_reference(pd.DataFrame({feature_name: np.arange(100, dtype=float), "lead_source": ["web"] * 100}),
                                np.linspace(0.01, 0.99, 100), ["SQL"] * 10 + ["MQL"] * 30 + ["nurture"] * 60,
                                categorical=["lead_source"], n_bins=2, source="the 100 leads open at 2026-01-01",
                                factors={feature_name: ("company_size", "company size"),
                                         "lead_source": ("lead_source", "source")})
    # 40 scored leads: every size in the upper bin, a quarter of them missing; the source unchanged.
    monitor = DriftMonitor(reference).add(
        pd.DataFrame({feature_name: [80.0] * 30 + [np.nan] * 10, "lead_source": ["web"] * 40}),
        np.full(40, 0.9), ["SQL"] * 8 + ["MQL"] * 12 + ["nurture"] * 20)
    return monitor.report()


def test_monitoring_page_shows_the_report_in_words_and_formatted_cells():
    page = render_monitoring_html(_report(), {}, title="nightly")
    words = " ".join(page.split())  # the template wraps its prose over lines
    assert page.startswith("<!DOCTYPE html>") and "<title>Drift monitoring: nightly</title>" in page
    assert "class=\"headline status-alert\"" in page and "Status <b>ALERT</b>: 40 scored leads" in words
    assert "compared with the 100 leads open at 2026-01-01" in words and "1 of 2 factors outside the bands" in words
    assert "below 0.1 stable, 0.1-0.25 warning" in words and "warning from 5% of leads, alert from 25%" in words
    # Expected: 40 leads at 0.9 -> 36 conversions; 8 SQL leads at 0.9 -> 90.0 %.
    assert "about <b>36</b> conversions among 40 leads" in words and "90.0 % of the 8 SQL leads" in words
    factors, score_bins, tiers, features = _tables(page)
    assert factors[0] == ["factor", "status", "psi", "most shifted column", "columns", "unseen share",
                          "missing reference", "missing now", "categories that moved"]
    # Size shares (0.5, 0.5, 0) -> (0, 0.75, 0.25), floored at 1e-4, worked by hand.
    size_psi = (1e-4 - 0.5) * np.log(1e-4 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5) + (0.25 - 1e-4) * np.log(0.25 / 1e-4)
    assert factors[1][:5] == ["company size", "alert", f"{size_psi:.3f}", "company_size_log", "1"]
    assert factors[1][6:8] == ["0.0 %", "25.0 %"]
    assert factors[2][:2] == ["source", "stable"]
    assert score_bins[0] == ["bin", "reference share", "share"]
    # difference = share - expected share, worked by hand: 0.2 - 0.1, 0.3 - 0.3, 0.5 - 0.6
    assert tiers[1:] == [["SQL", "10.0 %", "20.0 %", "10.0 %"], ["MQL", "30.0 %", "30.0 %", "0.0 %"],
                         ["nurture", "60.0 %", "50.0 %", "-10.0 %"]]
    assert features[0] == ["factor", "feature", "psi", "status", "unseen share", "missing reference", "missing now"]
    assert features[1][:2] == ["company size", "company_size_log"]


def test_text_from_the_data_is_escaped_never_markup():
    page = render_monitoring_html(_report("<script>alert(1)</script>"), {}, title="<i>x</i>")
    assert "<script>" not in page and "<i>x</i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;i&gt;x&lt;/i&gt;" in page
    assert _tables(page)[0][1][3] == "<script>alert(1)</script>"  # the text itself survives, as text


def test_written_page_embeds_its_pictures_and_writes_the_tables(tmp_path):
    path = write_monitoring_report(_report(), tmp_path)
    page = path.read_text()
    assert re.search(r'<img alt="score" src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', page)
    # One picture per shifted factor (company size), none for the stable source.
    assert re.search(r'<img alt="factor:company_size" src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', page)
    assert "factor:lead_source" not in page
    assert "<link" not in page and not re.search(r"""src=["']?http""", page)
    assert pd.read_csv(tmp_path / "feature_drift.csv")["feature"].tolist() == ["company_size_log", "lead_source"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["factor_drift.csv", "feature_drift.csv", "monitoring.html",
                                                         "score_bins.csv", "tier_mix.csv"]


def test_table_formats_each_column_and_aligns_text_left():
    frame = pd.DataFrame({"tier": ["SQL", "MQL"], "conversion_rate": [0.0523, 0.0042], "leads": [1234, 5],
                          "amount": [2272197.163, float("nan")]})
    table = report_html.table(frame, formats={"conversion_rate": "percent", "amount": "money"},
                              labels={"conversion_rate": "conversion"})
    assert table["columns"] == [{"label": "tier", "css": "text"}, {"label": "conversion", "css": ""},
                                {"label": "leads", "css": ""}, {"label": "amount", "css": ""}]
    assert table["rows"] == [["SQL", "5.2 %", "1,234", "2,272,197"], ["MQL", "0.42 %", "5", "\u2013"]]


def test_every_report_template_extends_the_base_page_and_a_missing_value_fails_loudly():
    folder = Path(report_html.__file__).parent / "templates"
    reports = sorted(path.name for path in folder.glob("*.html") if not path.name.startswith(("_", "base")))
    assert reports == ["comparison.html", "monitoring.html", "training_report.html"]
    for name in reports:
        assert (folder / name).read_text().startswith('{% extends "base.html" %}')
    with pytest.raises(jinja2.UndefinedError, match="rows"):
        render_page("monitoring.html", title="", status="ok", status_words="stable")
