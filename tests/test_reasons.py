"""Reasons: families group the contributions exactly, rank deterministically and read in plain words."""

import numpy as np
import pandas as pd
import pytest

from features.spec import FeatureSpec
from models.explain import explain
from models.factor_words import describe_factor, feature_families
from models.reasons import Reason, reason_columns, top_reasons

SPEC = FeatureSpec()


def values(**given):
    """A value(name) lookup: given features, else 0 for counts and NaN for recencies."""
    def value(name):
        if name in given:
            return given[name]
        return np.nan if name.startswith("days_since_") or name == "email_click_rate" else 0.0
    return value


@pytest.mark.parametrize("factor, features, text", [
    ("demo_request", dict(events_demo_request_total=1, events_demo_request_7d=1, days_since_demo_request=3.2),
     "requested a demo 3 days ago"),
    ("pricing_page_view", dict(events_pricing_page_view_total=5, events_pricing_page_view_7d=3,
                               events_pricing_page_view_30d=4, days_since_pricing_page_view=0.4),
     "3 pricing-page views in the last 7 days, the latest today"),
    ("email_open", dict(events_email_open_total=4, days_since_email_open=120.0),
     "4 e-mail opens in all, the latest 120 days ago"),
    ("webinar_attended", dict(events_webinar_attended_total=1, days_since_webinar_attended=1.5),
     "attended a webinar yesterday"),
    ("free_trial_start", {}, "no free-trial starts yet"),
    ("other", dict(events_other_total=2, events_other_90d=2, days_since_other=40.0),
     "2 other events in the last 90 days, the latest 40 days ago"),
    ("activity", dict(events_any_total=9, active_days_30d=4, days_since_any_event=2.0),
     "active on 4 days in the last 30 days, last active 2 days ago"),
    ("activity", dict(events_any_total=9, active_days_30d=0, days_since_any_event=75.0),
     "no activity in the last 30 days, last active 75 days ago"),
    ("activity", {}, "no activity yet"),
    ("activity_trend", dict(events_trend_30d=0.6), "activity rising over the last 30 days"),
    ("activity_trend", dict(events_trend_30d=-1.0), "activity falling over the last 30 days"),
    ("email_click_rate", dict(email_click_rate=0.25), "clicked 25% of opened e-mails"),
    ("email_click_rate", {}, "no e-mails opened yet"),
    ("lead_age", dict(lead_age_days=45.7), "lead created 45 days ago"),
    ("seniority", dict(seniority="vp"), "VP-level title"),
    ("seniority", dict(seniority=None), "no job title"),
    ("job_function", dict(job_function="marketing"), "job function: marketing"),
    ("email_domain_type", dict(email_domain_type="free"), "free e-mail domain"),
    ("email_domain_type", dict(email_domain_type="business"), "business e-mail domain"),
    ("industry", dict(industry="software"), "industry: software"),
    ("lead_source", dict(lead_source="trade show"), "source: trade show"),
    ("country", dict(country=np.nan), "country unknown"),
    ("company_size", dict(log_company_size=np.log1p(500.0)), "company size: 500 employees"),
    ("annual_revenue", dict(log_annual_revenue=np.log1p(32_100_000.0)), "annual revenue: 32.1M"),
    ("annual_revenue", dict(log_annual_revenue=np.nan), "annual revenue unknown"),
])
def test_each_feature_kind_reads_in_plain_words(factor, features, text):
    assert describe_factor(factor, values(**features), SPEC) == text


def test_unknown_event_type_of_a_custom_spec_still_reads():
    spec = FeatureSpec(event_types=("podcast_listened",), categorical_columns=("region",), numeric_columns=("seats",))
    families = feature_families(spec)
    assert families["decayed_podcast_listened_hl7d"] == "podcast_listened" and families["log_seats"] == "seats"
    value = values(events_podcast_listened_total=1, days_since_podcast_listened=9.0, region="emea",
                   log_seats=np.log1p(12))
    assert describe_factor("podcast_listened", value, spec) == "had a podcast listened event 9 days ago"
    assert describe_factor("region", value, spec) == "region: emea"
    assert describe_factor("seats", value, spec) == "seats: 12"


def test_a_feature_of_unknown_kind_is_its_own_plain_factor(monkeypatch):
    """Specs grow new kinds of columns (flags, raw numbers); reasons must degrade, not fail."""
    monkeypatch.setattr(FeatureSpec, "feature_names", property(lambda self: ["do_not_email", "lead_score"]))
    assert feature_families(SPEC) == {"do_not_email": "do_not_email", "lead_score": "lead_score"}
    assert describe_factor("lead_score", values(lead_score=-3.25), SPEC) == "lead score: -3.25"
    assert describe_factor("do_not_email", values(do_not_email=np.nan), SPEC) == "do not email unknown"


def test_every_feature_has_a_family_and_event_columns_share_one():
    families = feature_families(SPEC)
    assert list(families) == SPEC.feature_names
    demo = {name for name, family in families.items() if family == "demo_request"}
    assert demo == {"events_demo_request_7d", "events_demo_request_30d", "events_demo_request_90d",
                    "events_demo_request_total", "days_since_demo_request", "decayed_demo_request_hl7d",
                    "decayed_demo_request_hl30d"}


@pytest.mark.parametrize("kind", ["logistic", "lightgbm"])
def test_reasons_are_the_families_summed_contributions(small_models, kind):
    bundle, features = small_models[kind], small_models["features"].head(200)
    explanation = explain(bundle, features)
    families = pd.Series(feature_families(bundle.spec))
    # In spec order, so that exact ties (a missing title is missing seniority and function) rank alike.
    by_family = explanation.contributions.T.groupby(families).sum().T[list(dict.fromkeys(families))]
    reasons = top_reasons(explanation.contributions, features, bundle.spec)
    assert reasons == top_reasons(explanation.contributions, features, bundle.spec)  # deterministic
    for row, (positive, negative) in enumerate(reasons):
        assert len(positive) <= 3 and len(negative) <= 3
        expected_up = by_family.iloc[row][by_family.iloc[row] >= 0.01].sort_values(ascending=False, kind="stable").head(3)
        assert [r.factor for r in positive] == list(expected_up.index)
        for reason in positive + negative:
            assert reason.impact == pytest.approx(by_family.iloc[row][reason.factor], abs=1e-12)
        assert [r.impact for r in positive] == sorted((r.impact for r in positive), reverse=True)
        assert [r.impact for r in negative] == sorted(r.impact for r in negative)
        assert all(r.impact > 0 for r in positive) and all(r.impact < 0 for r in negative)
    # Every family's impact plus the base value is the whole margin: nothing is lost in grouping.
    np.testing.assert_allclose(by_family.sum(axis=1) + explanation.base_value, explanation.margin, atol=1e-9)


def test_reason_columns_for_a_crm_import():
    up, down = Reason("demo_request", "requested a demo 3 days ago", 1.234), Reason("seniority", "entry-level title", -0.5)
    columns = reason_columns([([up], [down]), ([], [])])
    assert list(columns) == [f"{side}_reason_{k}" for side in ("positive", "negative") for k in (1, 2, 3)]
    assert columns["positive_reason_1"] == ["requested a demo 3 days ago (+1.23)", ""]
    assert columns["negative_reason_1"] == ["entry-level title (-0.50)", ""]
    assert columns["positive_reason_2"] == ["", ""]
    assert up.as_dict() == {"factor": "demo_request", "text": "requested a demo 3 days ago", "impact": 1.234,
                            "direction": "up"}
