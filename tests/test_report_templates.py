"""Reports rendered from Jinja2 templates: one base page, cells formatted for people, text escaped, nothing undefined."""

import re
from html.parser import HTMLParser
from pathlib import Path

import jinja2
import pandas as pd
import pytest

from analysis import html as report_html
from analysis.monitoring import render_monitoring_html, write_monitoring_report
from analysis.rendering import render_page
from scoring.drift import DriftReport


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
    features = pd.DataFrame({"feature": [feature_name, "lead_source"], "kind": ["numeric", "categorical"],
                             "psi": [0.31234, 0.0004], "status": ["alert", "ok"], "unseen_share": [0.0, 0.25],
                             "missing_reference": [0.1, 0.0], "missing_now": [0.5, 0.0]})
    return DriftReport(rows=12345, reference_rows=678, features=features, score={"psi": 0.1234, "status": "warning"},
                       score_bins=pd.DataFrame({"bin": ["< 0.1", ">= 0.1"], "reference_share": [0.5, 0.5],
                                                "share": [0.25, 0.75]}),
                       tiers=pd.DataFrame({"tier": ["SQL", "MQL", "nurture"], "expected_share": [0.1, 0.3, 0.6],
                                           "share": [0.2, 0.3, 0.5]}),
                       tier_psi=0.05, status="alert")


def test_monitoring_page_shows_the_report_in_words_and_formatted_cells():
    page = render_monitoring_html(_report(), {}, title="nightly")
    words = " ".join(page.split())  # the template wraps its prose over lines
    assert page.startswith("<!DOCTYPE html>") and "<title>Drift monitoring: nightly</title>" in page
    assert "class=\"headline status-alert\"" in page and "Status <b>ALERT</b>: 12,345 scored leads" in words
    assert "Score PSI 0.123; tier mix PSI 0.050; 0 features at warning, 1 at alert." in words
    assert "below 0.1 stable, 0.1-0.25 warning" in words and "warning from 5% of rows, alert from 25%" in words
    score_bins, tiers, features = _tables(page)
    assert score_bins == [["bin", "reference share", "share"], ["< 0.1", "0.500", "0.250"], [">= 0.1", "0.500", "0.750"]]
    # difference = share - expected share, worked by hand: 0.1, 0.0, -0.1
    assert tiers[1:] == [["SQL", "0.100", "0.200", "0.100"], ["MQL", "0.300", "0.300", "0.000"],
                         ["nurture", "0.600", "0.500", "-0.100"]]
    assert features[0] == ["feature", "kind", "psi", "status", "unseen share", "missing reference", "missing now"]
    assert features[1] == ["company_size_log", "numeric", "0.312", "alert", "0.000", "0.100", "0.500"]


def test_text_from_the_data_is_escaped_never_markup():
    page = render_monitoring_html(_report("<script>alert(1)</script>"), {}, title="<i>x</i>")
    assert "<script>" not in page and "<i>x</i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;i&gt;x&lt;/i&gt;" in page
    assert _tables(page)[2][1][0] == "<script>alert(1)</script>"  # the text itself survives, as text


def test_written_page_embeds_its_picture_and_writes_the_tables(tmp_path):
    path = write_monitoring_report(_report(), tmp_path)
    page = path.read_text()
    assert re.search(r'<img alt="score" src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', page)
    assert "<link" not in page and not re.search(r"""src=["']?http""", page)
    assert pd.read_csv(tmp_path / "feature_drift.csv")["psi"].tolist() == [0.31234, 0.0004]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feature_drift.csv", "monitoring.html", "score_bins.csv",
                                                         "tier_mix.csv"]


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
        render_page("monitoring.html", title="", status="ok")
