"""build_features joins fit and engagement features per snapshot, point in time."""

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.spec import FeatureSpec

T = pd.Timestamp
SPEC = FeatureSpec()


@pytest.fixture
def crm():
    leads = pd.DataFrame({
        "lead_id": [1, 2],
        "created_at": [T("2025-01-01"), T("2025-02-01")],
        "job_title": ["VP Marketing", "intern"],
        "industry": ["Software", "Retail"],
        "country": ["US", "DE"],
        "lead_source": ["webinar", "paid_search"],
        "email": ["a@acme.com", "b@gmail.com"],
        "company_size": [499.0, 9.0],
        "annual_revenue": [np.nan, 1e5],
    })
    events = pd.DataFrame({
        "lead_id": [1, 1, 2],
        "occurred_at": [T("2025-02-20"), T("2025-02-27 12:00"), T("2025-02-10")],
        "event_type": ["demo_request", "pricing_page_view", "page_view"],
    })
    snapshots = pd.DataFrame({"lead_id": [2, 1, 1], "as_of": [T("2025-03-01"), T("2025-03-01"), T("2025-02-25")]},
                             index=[7, 8, 9])
    return snapshots, leads, events


def test_rows_follow_the_snapshots(crm):
    snapshots, leads, events = crm
    features = build_features(snapshots, leads, events, SPEC)
    assert list(features.columns) == SPEC.feature_names
    assert list(features.index) == [7, 8, 9]
    assert features["seniority"].tolist() == ["entry", "vp", "vp"]
    assert features["email_domain_type"].tolist() == ["free", "business", "business"]
    np.testing.assert_allclose(features["log_company_size"], np.log([10, 500, 500]))
    # Lead age in days at as_of: Feb 1 -> Mar 1 = 28; Jan 1 -> Mar 1 = 59; Jan 1 -> Feb 25 = 55.
    np.testing.assert_allclose(features["lead_age_days"], [28, 59, 55])
    # On Feb 25 lead 1 has the demo request (5 days ago) but not yet the pricing-page view.
    assert features.loc[9, "events_demo_request_total"] == 1
    assert features.loc[9, "events_pricing_page_view_total"] == 0
    assert features.loc[9, "days_since_demo_request"] == pytest.approx(5.0)
    assert features.loc[8, "days_since_pricing_page_view"] == pytest.approx(1.5)


def test_events_at_or_after_as_of_change_nothing(crm):
    snapshots, leads, events = crm
    before = build_features(snapshots, leads, events, SPEC)
    late = pd.DataFrame({"lead_id": [1, 1, 2], "occurred_at": [T("2025-03-01"), T("2025-03-02"), T("2025-06-01")],
                         "event_type": ["demo_request", "free_trial_start", "unsubscribe"]})
    after = build_features(snapshots, leads, pd.concat([events, late], ignore_index=True), SPEC)
    pd.testing.assert_frame_equal(before, after)
    # An event exactly at the Feb 25 snapshot's as_of is invisible to it, visible to the later one.
    on_as_of = pd.DataFrame({"lead_id": [1], "occurred_at": [T("2025-02-25")], "event_type": ["demo_request"]})
    after = build_features(snapshots, leads, pd.concat([events, on_as_of], ignore_index=True), SPEC)
    pd.testing.assert_series_equal(before.loc[9], after.loc[9])
    assert after.loc[8, "events_demo_request_total"] == before.loc[8, "events_demo_request_total"] + 1


def test_unknown_lead_is_refused(crm):
    snapshots, leads, events = crm
    with pytest.raises(ValueError, match=r"missing from the leads table, e.g. \[3\]"):
        build_features(pd.DataFrame({"lead_id": [3], "as_of": [T("2025-03-01")]}), leads, events, SPEC)


@pytest.mark.parametrize("overlap", [False, True])
def test_every_lead_once_in_order_equals_any_other_order_and_repeated_snapshots(monkeypatch, overlap):
    """The base in table order (no sort, no copy of the fit block) gives each row what a shuffled or
    repeated set of snapshots gives it, on the serial and the two-thread path alike."""
    from crm.synthetic import generate_crm
    from features import build

    if overlap:
        monkeypatch.setattr(build, "_OVERLAP_MIN_ROWS", 0)
    crm = generate_crm(300, months=6, seed=3)
    end = pd.Timestamp(crm.end)
    in_order = pd.DataFrame({"lead_id": crm.leads["lead_id"].to_numpy(), "as_of": end})
    base = build_features(in_order, crm.leads, crm.events, SPEC)
    shuffled = in_order.iloc[np.random.default_rng(0).permutation(len(in_order))]
    shuffled.index = shuffled.index + 1000
    got = build_features(shuffled, crm.leads, crm.events, SPEC)
    pd.testing.assert_frame_equal(got.set_axis(got.index - 1000).sort_index(), base, check_exact=True)
    twice = pd.concat([in_order, in_order.assign(as_of=end - pd.Timedelta(days=40))], ignore_index=True)
    repeated = build_features(twice, crm.leads, crm.events, SPEC)
    pd.testing.assert_frame_equal(repeated.iloc[:len(in_order)], base, check_exact=True)
    earlier = build_features(twice.iloc[len(in_order):], crm.leads, crm.events, SPEC)
    pd.testing.assert_frame_equal(repeated.iloc[len(in_order):], earlier, check_exact=True)
    assert (repeated["events_any_total"].iloc[len(in_order):].to_numpy()
            <= base["events_any_total"].to_numpy()).all()
