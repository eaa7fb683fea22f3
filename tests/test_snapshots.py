import pandas as pd
import pytest

from features.snapshots import as_of_schedule, build_snapshots, open_leads

T = pd.Timestamp


@pytest.fixture
def crm():
    leads = pd.DataFrame({
        "lead_id": [1, 2, 3, 4],
        "created_at": [T("2025-01-10"), T("2025-01-20"), T("2025-02-15"), T("2025-01-05")],
    })
    deals = pd.DataFrame({
        "lead_id": [1, 2, 4],
        "closed_at": [T("2025-03-10"), T("2025-02-20"), T("2025-06-01")],
        "outcome": ["won", "lost", "won"],
    })
    return leads, deals


def test_snapshot_labels_by_hand(crm):
    leads, deals = crm
    snapshots = build_snapshots(leads, deals, as_of_dates=[T("2025-02-01"), T("2025-03-01")], horizon_days=30)
    got = {(row.lead_id, str(row.as_of.date())): row.label for row in snapshots.itertuples()}
    assert got == {
        # Feb 1: lead 1 wins Mar 10 (> Feb 1 + 30 d = Mar 3): 0; lead 2 loses: 0; lead 3 not created; lead 4: 0.
        (1, "2025-02-01"): 0, (2, "2025-02-01"): 0, (4, "2025-02-01"): 0,
        # Mar 1: lead 1 wins Mar 10 < Mar 31: 1; lead 2 closed before: gone; lead 3 open: 0; lead 4 wins Jun 1: 0.
        (1, "2025-03-01"): 1, (3, "2025-03-01"): 0, (4, "2025-03-01"): 0,
    }


def test_horizon_boundaries(crm):
    leads, deals = crm
    # closed_at == as_of counts; closed_at == as_of + horizon does not.
    on_start = build_snapshots(leads, deals, as_of_dates=[T("2025-03-10")], horizon_days=1)
    assert on_start.set_index("lead_id").loc[1, "label"] == 1
    at_end = build_snapshots(leads, deals, as_of_dates=[T("2025-03-09")], horizon_days=1)
    assert at_end.set_index("lead_id").loc[1, "label"] == 0


def test_deals_after_the_horizon_change_no_label(crm):
    leads, deals = crm
    dates = [T("2025-02-01"), T("2025-03-01")]
    before = build_snapshots(leads, deals, as_of_dates=dates, horizon_days=30)
    later = pd.concat([deals, pd.DataFrame({"lead_id": [3], "closed_at": [T("2025-04-01")],
                                            "outcome": ["won"]})])
    after = build_snapshots(leads, later, as_of_dates=dates, horizon_days=30)
    pd.testing.assert_frame_equal(before, after)


def test_censored_snapshots_are_left_out_unless_closed(crm):
    leads, deals = crm
    snapshots = build_snapshots(leads, deals, as_of_dates=[T("2025-03-01")], horizon_days=90,
                                data_end=T("2025-04-01"))
    # Horizon ends May 30, after the data: only lead 1 (closed Mar 10) has a known label.
    assert snapshots["lead_id"].tolist() == [1]
    assert snapshots["label"].tolist() == [1]


def test_open_leads_excludes_closed_and_future_leads(crm):
    leads, deals = crm
    scoring = open_leads(leads, deals, T("2025-03-01"))
    assert scoring["lead_id"].tolist() == [1, 3, 4]
    assert (scoring["as_of"] == T("2025-03-01")).all()
    assert open_leads(leads, None, T("2025-01-15"))["lead_id"].tolist() == [1, 4]


def test_bad_horizon_is_refused(crm):
    with pytest.raises(ValueError, match="'horizon_days' parameter of build_snapshots must be a positive"):
        build_snapshots(*crm, as_of_dates=[T("2025-03-01")], horizon_days=-3)


def test_schedule():
    dates = as_of_schedule("2025-01-01 13:00", "2025-03-05", every_days=30)
    assert [str(d.date()) for d in dates] == ["2025-01-01", "2025-01-31", "2025-03-02"]


def test_a_won_deal_after_a_lost_one_in_the_horizon_counts(crm):
    leads, deals = crm
    again = pd.concat([deals, pd.DataFrame({"lead_id": [2], "closed_at": [T("2025-03-01")], "outcome": ["won"]})])
    snapshots = build_snapshots(leads, again, as_of_dates=[T("2025-02-01")], horizon_days=30)
    # Lead 2 lost on Feb 20 and won on Mar 1, both inside [Feb 1, Mar 3): a conversion.
    assert snapshots.set_index("lead_id").loc[2, "label"] == 1
