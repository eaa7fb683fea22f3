"""A few leads' features in plain Python (the HTTP route) must equal build_features on the same leads."""

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from crm.synthetic import generate_crm
from features.build import build_features
from features.single_lead import few_lead_features
from features.spec import FeatureSpec
from scoring.lead_requests import Lead, lead_features


def _assert_same(ours: pd.DataFrame, batch: pd.DataFrame) -> None:
    assert list(ours.columns) == list(batch.columns)
    for column in batch.columns:
        expected, got = batch[column].to_numpy(), ours[column].to_numpy()
        if expected.dtype == object:
            assert got.dtype == object, column
            assert [None if pd.isna(v) else v for v in got] == [None if pd.isna(v) else v for v in expected], column
        else:
            np.testing.assert_allclose(got.astype(float), expected, rtol=1e-12, atol=1e-12, err_msg=column)
            assert (np.isnan(got) == np.isnan(expected)).all(), column


def _rows(leads: pd.DataFrame, events: pd.DataFrame, attributes):
    rows = []
    for lead in leads.itertuples(index=False):
        own = events[events["lead_id"] == lead.lead_id]
        rows.append((lead.created_at, {column: getattr(lead, column) for column in attributes},
                     list(zip(own["occurred_at"], own["event_type"]))))
    return rows


def test_synthetic_leads_every_column_equals_the_batch_builder():
    crm = generate_crm(300, months=6, seed=3)
    as_of = crm.end - pd.Timedelta(days=20)  # later events exist: they must be ignored
    leads = crm.leads[crm.leads["created_at"] < as_of].head(24).reset_index(drop=True)
    events = crm.events[crm.events["lead_id"].isin(leads["lead_id"])]
    assert (events["occurred_at"] >= as_of).any() and (events["occurred_at"] < as_of).any()
    spec = FeatureSpec()
    attributes = [c for c in leads.columns if c not in ("lead_id", "created_at")]
    for start in range(0, len(leads), 4):
        part = leads.iloc[start:start + 4].reset_index(drop=True)
        snapshots = pd.DataFrame({"lead_id": part["lead_id"], "as_of": as_of})
        batch = build_features(snapshots, part, events, spec)
        _assert_same(few_lead_features(spec, _rows(part, events, attributes), as_of), batch)


def test_sub_day_windows_own_types_duplicates_missing_values_and_the_as_of_boundary():
    spec = FeatureSpec(event_types=("Send Fine", "Appeal to Judge", "email_open", "email_click"),
                       windows_days=(1 / 24, 0.25, 1, 7), half_lives_days=(0.5, 3.0),
                       categorical_columns=("Region",), numeric_columns=("Amount",), raw_numeric_columns=("Points",),
                       boolean_columns=("Paid",), job_title_column="title", email_column="mail")
    as_of = pd.Timestamp("2024-03-10 12:00:00")
    t = as_of.to_pydatetime()
    leads = pd.DataFrame({
        "lead_id": [1, 2, 3, 4],
        "created_at": pd.to_datetime(["2024-01-01 08:00", "2024-03-10 11:30", "2023-06-01 00:00", "2024-03-01 00:00"]),
        "Region": ["  North ", None, "select", 3.0],
        "Amount": [1200.0, np.nan, -4.0, 0.0],
        "Points": [-2.5, np.nan, 7.0, 0.0],
        "Paid": ["Yes", None, "no", True],
        "title": ["VP Sales", None, "Intern", "head of data"],
        "mail": ["a@gmail.com", None, "b@acme.io", "broken"],
    })
    event_rows = [
        (1, t - timedelta(minutes=30), "Send Fine"),
        (1, t - timedelta(minutes=30), "Send Fine"),  # exact duplicate: counts once
        (1, t - timedelta(minutes=30), "send-fine "),  # same key, same time: a duplicate too
        (1, t - timedelta(hours=5), "Appeal to Judge"),
        (1, t - timedelta(days=2, hours=3), "Payment"),  # not a spec type: other
        (1, t - timedelta(days=40), "email_open"),
        (1, t - timedelta(days=45), "email_click"),
        (1, t, "Send Fine"),  # at as_of: ignored
        (1, t + timedelta(hours=1), "Appeal to Judge"),  # after as_of: ignored
        (2, t - timedelta(seconds=1), "EMAIL OPEN"),
        (2, t - timedelta(microseconds=1), "email_open"),
        (3, t - timedelta(days=31), "email_open"),
        (3, t - timedelta(days=59, hours=23), "email_click"),
        (3, t - timedelta(days=61), "email_click"),
        (3, t - timedelta(days=400), None),  # missing type: other
    ]  # lead 4: no events at all
    events = pd.DataFrame(event_rows, columns=["lead_id", "occurred_at", "event_type"])
    events["occurred_at"] = pd.to_datetime(events["occurred_at"])
    snapshots = pd.DataFrame({"lead_id": leads["lead_id"], "as_of": as_of})
    batch = build_features(snapshots, leads, events, spec)
    attributes = ["Region", "Amount", "Points", "Paid", "title", "mail"]
    ours = few_lead_features(spec, _rows(leads, events, attributes), as_of)
    _assert_same(ours, batch)
    # Worked out by hand for lead 1: one Send Fine 30 minutes before as_of (duplicates once),
    # within the 1 h window; the Appeal 5 h before is in 6 h but not 1 h; three active days.
    first = ours.iloc[0]
    assert first["events_send_fine_1h"] == 1 and first["events_send_fine_total"] == 1
    assert first["events_appeal_to_judge_1h"] == 0 and first["events_appeal_to_judge_6h"] == 1
    assert first["events_other_total"] == 1 and first["events_any_total"] == 5
    assert first["days_since_send_fine"] == pytest.approx(30 / 1440)
    assert first["active_days_total"] == 4 and first["email_click_rate"] == 1.0
    assert np.isnan(ours.iloc[3]["days_since_any_event"]) and ours.iloc[3]["events_trend_30d"] == 0.0


def test_the_service_hook_takes_the_plain_route_and_agrees_with_many_leads():
    """lead_features on 3 leads (plain route) equals lead_features on the same leads among 12 (batch route)."""
    spec = FeatureSpec(windows_days=(0.25, 7, 30))
    as_of = pd.Timestamp("2025-05-01 09:00")
    zone = timezone(timedelta(hours=2))
    bodies = []
    for k in range(12):
        bodies.append(Lead(
            lead_id=k, created_at=datetime(2025, 1, 1 + k, tzinfo=zone),
            attributes={"job_title": ["CEO", None, "Marketing Manager"][k % 3], "industry": "Retail",
                        "company_size": [None, 40, "120"][k % 3], "email": f"x{k}@example.com"},
            events=[{"occurred_at": datetime(2025, 5, 1, 10, k, tzinfo=zone), "event_type": "demo_request"},
                    {"occurred_at": datetime(2025, 4, 1 + k), "event_type": "Page View"},
                    {"occurred_at": datetime(2025, 5, 1, 9), "event_type": "pricing_page_view"}]))
    many = lead_features(spec, bodies, as_of)
    few = lead_features(spec, bodies[5:8], as_of)
    _assert_same(few.reset_index(drop=True), many.iloc[5:8].reset_index(drop=True))
    assert few["events_demo_request_6h"].tolist() == [1.0, 1.0, 1.0]
    assert few["events_pricing_page_view_total"].tolist() == [0.0, 0.0, 0.0]
