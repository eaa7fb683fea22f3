"""Points rules: parsing errors name the file and rule; scoring by hand on tiny frames."""

import numpy as np
import pandas as pd
import pytest

from models.rules import RulesError, load_rules, rules_from_dict, score_rules, top_rules

T = pd.Timestamp
AS_OF = T("2025-03-01")


@pytest.fixture
def crm():
    leads = pd.DataFrame({
        "lead_id": [1, 2, 3],
        "created_at": [T("2025-01-01")] * 3,
        "job_title": ["VP Marketing", "intern", "Engineer"],
        "industry": ["Software", "Retail", "Education"],
        "country": ["US", "DE", "US"],
        "lead_source": ["webinar", "paid_search", "Purchased List"],
        "email": ["a@acme.com", "b@gmail.com", "c@school.edu"],
        "company_size": [499.0, 9.0, np.nan],
        "annual_revenue": [np.nan, 1e5, 1e6],
    })
    events = pd.DataFrame({
        "lead_id": [1, 1, 1, 1, 2, 2, 3],
        "occurred_at": [T("2025-02-28"), T("2025-02-27"), T("2025-02-26"), T("2025-01-15"), T("2025-02-20"),
                        T("2025-03-05"),  # after as_of: invisible
                        T("2025-02-01")],
        "event_type": ["page_view", "page_view", "page_view", "page_view", "demo_request", "demo_request",
                       "unsubscribe"],
    })
    snapshots = pd.DataFrame({"lead_id": [1, 2, 3], "as_of": AS_OF}, index=[10, 11, 12])
    return snapshots, leads, events


def write(tmp_path, text):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return path


THRESHOLDS = "[thresholds]\nmql = 10\nsql = 20\n"


@pytest.mark.parametrize("body, match", [
    ('[[attribute]]\nname = "size"\ncolumn = "headcount"\nequals = 1\npoints = 5\n',
     r"rules\.toml: attribute rule 1 \('size'\): unknown column 'headcount'"),
    ('[[behaviour]]\nname = "demo"\nevent = "demo_requested"\npoints = 5\n',
     r"rules\.toml: behaviour rule 1 \('demo'\): unknown event type 'demo_requested'"),
    ('[[behaviour]]\nname = "demo"\nevent = "demo_request"\npoints = "lots"\n',
     r"behaviour rule 1 \('demo'\): points must be a number. Got 'lots'"),
    ('[[attribute]]\nname = "vp"\ncolumn = "seniority"\npoints = 5\n', r"needs exactly one of"),
    ('[[behaviour]]\nname = "d"\nevent = "demo_request"\npoints = 5\nwindow_days = 7\nhalf_life_days = 7\n',
     r"window_days or half_life_days, not both"),
    ('[[attribute]]\nname = "big"\ncolumn = "company_size"\nrange = [500, 100]\npoints = 5\n',
     r"range low must be below high"),
    ('[[attribute]]\nname = "x"\ncolumn = "industry"\nequals = "a"\npoints = 1\nweight = 2\n',
     r"attribute rule 1 \('x'\): weight is an unknown key; expected one of \['column', 'contains', 'equals', 'in',"),
])
def test_bad_rules_name_file_and_rule(tmp_path, body, match):
    with pytest.raises(RulesError, match=match):
        load_rules(write(tmp_path, THRESHOLDS + body))


def test_sql_threshold_below_mql_is_refused(tmp_path):
    with pytest.raises(RulesError, match=r"rules\.toml: \[thresholds\] sql must be above mql"):
        load_rules(write(tmp_path, "[thresholds]\nmql = 50\nsql = 40\n"))
    with pytest.raises(RulesError, match=r"\[thresholds\] mql must be a number"):
        load_rules(write(tmp_path, '[thresholds]\nmql = "fifty"\nsql = 40\n'))
    with pytest.raises(RulesError, match="not valid TOML"):
        load_rules(write(tmp_path, "[thresholds\n"))


def test_points_by_hand(crm):
    snapshots, leads, events = crm
    rules = rules_from_dict({
        "thresholds": {"mql": 10, "sql": 30},
        "attribute": [
            {"name": "vp", "column": "seniority", "in": ["vp", "c_level"], "points": 15},
            {"name": "free mail", "column": "email_domain_type", "equals": "free", "points": -10},
            {"name": "big", "column": "company_size", "range": [200, float("inf")], "points": 5},
            {"name": "list", "column": "lead_source", "contains": "LIST", "points": -3},
        ],
        "behaviour": [
            {"name": "visits", "event": "page_view", "points": 2, "cap": 5, "window_days": 7},
            {"name": "demo", "event": "demo_request", "points": 20, "half_life_days": 9},
            {"name": "unsub", "event": "unsubscribe", "points": -20},
        ],
    })
    scored = score_rules(rules, snapshots, leads, events)
    assert list(scored.index) == [10, 11, 12]
    # Lead 1: vp 15 + big 5 + three visits in 7 days (6, capped at 5); the January visit is outside the window.
    assert scored.loc[10, "points"] == pytest.approx(25)
    # Lead 2: free mail -10, one demo 9 days before as_of at half-life 9 -> 20 * 0.5; the later demo is unseen.
    assert scored.loc[11, "rule:demo"] == pytest.approx(10)
    assert scored.loc[11, "points"] == pytest.approx(0)
    # Lead 3: purchased list -3, unsubscribed -20.
    assert scored.loc[12, "points"] == pytest.approx(-23)
    assert list(scored["tier"]) == ["MQL", "nurture", "nurture"]
    assert top_rules(scored).loc[10] == "vp +15; big +5; visits +5"


def test_thresholds_and_count_bands(crm):
    snapshots, leads, events = crm
    rules = rules_from_dict({
        "thresholds": {"mql": 5, "sql": 8},
        "behaviour": [{"name": "busy", "event": "page_view", "points": 8, "range": [3, float("inf")]},
                      {"name": "some", "event": "page_view", "points": 5, "range": [1, 3]}],
    })
    scored = score_rules(rules, snapshots, leads, events)
    assert list(scored["points"]) == [8, 0, 0]  # four all-time visits fall in the top band only
    assert list(scored["tier"]) == ["SQL", "nurture", "nurture"]


def test_rules_widen_the_spec_rather_than_recount():
    rules = rules_from_dict({"thresholds": {"mql": 1, "sql": 2},
                             "behaviour": [{"name": "d", "event": "demo_request", "points": 1, "window_days": 14},
                                           {"name": "p", "event": "page_view", "points": 1, "half_life_days": 3}]})
    spec = rules.feature_spec()
    assert 14 in spec.windows_days and 3.0 in spec.half_lives_days
    assert {"events_demo_request_14d", "decayed_page_view_hl3d"} <= set(spec.feature_names)


def test_example_rules_round_trip(tmp_path):
    from models.rules import EXAMPLE_RULES

    rules = load_rules(EXAMPLE_RULES)
    assert rules.sql > rules.mql and len(rules.attributes) >= 5 and len(rules.behaviours) >= 5
    assert any(rule.points < 0 for rule in rules.attributes)
    again = load_rules(rules.save(tmp_path / "again.toml"))
    assert again == rules and again.as_dict() == rules.as_dict()
