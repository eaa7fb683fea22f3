import pandas as pd
import pytest

from crm.readers import load_crm
from features.contract import DataContractError, validate_deals, validate_events, validate_leads

NOW = pd.Timestamp("2026-01-01")


def leads_frame(**overrides):
    frame = pd.DataFrame({
        "lead_id": [1, 2, 3],
        "created_at": ["2025-01-01", "2025-02-01 10:30", "2025-03-01T00:00:00Z"],
        "email": ["a@x.com", "b@y.com", "c@z.com"],
    })
    return frame.assign(**overrides)


def test_valid_leads_parse_to_naive_utc():
    leads = validate_leads(leads_frame(), now=NOW)
    assert leads["created_at"].dtype == "datetime64[ns]"
    assert leads["created_at"].iloc[2] == pd.Timestamp("2025-03-01")


def test_missing_column_names_the_file_and_column():
    with pytest.raises(DataContractError, match=r"leads.csv: missing column\(s\) \['created_at'\]"):
        validate_leads(leads_frame().drop(columns="created_at"), source="leads.csv", now=NOW)


def test_duplicate_lead_ids_are_refused_with_rows_and_no_pii():
    with pytest.raises(DataContractError, match="column 'lead_id' must hold unique values") as error:
        validate_leads(leads_frame(lead_id=[1, 1, 2]), source="leads.csv", now=NOW)
    assert "a@x.com" not in str(error.value)


def test_unparsable_timestamp_is_refused_with_example_rows():
    with pytest.raises(DataContractError, match=r"(?s)column 'created_at' must hold a timestamp.*yesterday"):
        validate_leads(leads_frame(created_at=["2025-01-01", "yesterday", "2025-01-03"]), now=NOW)


def test_future_timestamps_are_refused():
    with pytest.raises(DataContractError, match="no timestamp in the future"):
        validate_leads(leads_frame(created_at=["2025-01-01", "2030-01-01", "2025-01-03"]), now=NOW)


def test_deals_outcome_amount_and_unknown_leads():
    ids = pd.Series([1, 2, 3])
    good = pd.DataFrame({"lead_id": [1], "closed_at": ["2025-05-01"], "outcome": [" Won "], "amount": [10.0]})
    assert validate_deals(good, lead_ids=ids, now=NOW)["outcome"].tolist() == ["won"]
    with pytest.raises(DataContractError, match=r"column 'outcome' must hold one of \['won', 'lost'\]"):
        validate_deals(good.assign(outcome="maybe"), lead_ids=ids, now=NOW)
    with pytest.raises(DataContractError, match="column 'amount' must hold non-negative amounts"):
        validate_deals(good.assign(amount=-1.0), lead_ids=ids, now=NOW)
    with pytest.raises(DataContractError, match="column 'lead_id' must hold ids present in the leads table"):
        validate_deals(good.assign(lead_id=9), lead_ids=ids, now=NOW)


@pytest.mark.parametrize("as_file", [False, True])
def test_event_log_checks(tmp_path, as_file):
    ids = pd.Series([1, 2])
    events = pd.DataFrame({"lead_id": [1, 2], "occurred_at": pd.to_datetime(["2025-01-02", "2025-01-03"]),
                           "event_type": ["page_view", "demo_request"]})

    def source(frame):
        if not as_file:
            return frame
        path = tmp_path / "events.parquet"
        frame.to_parquet(path)
        return path

    validate_events(source(events), lead_ids=ids, now=NOW)
    with pytest.raises(DataContractError, match=r"(?s)column 'lead_id' must hold ids present in the leads.*\b7\b"):
        validate_events(source(events.assign(lead_id=[1, 7])), lead_ids=ids, now=NOW)
    with pytest.raises(DataContractError, match="no timestamp in the future"):
        validate_events(source(events.assign(occurred_at=pd.to_datetime(["2025-01-02", "2031-01-01"]))),
                        lead_ids=ids, now=NOW)
    with pytest.raises(DataContractError, match=r"missing column\(s\) \['event_type'\]"):
        validate_events(source(events.drop(columns="event_type")), lead_ids=ids, now=NOW)


def test_unparsable_event_timestamp_in_csv(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("lead_id,occurred_at,event_type\n1,2025-01-02 10:00:00,page_view\n1,not a date,page_view\n")
    with pytest.raises(DataContractError, match=r"(?s)events.csv: column 'occurred_at' must hold a timestamp.*not a date"):
        validate_events(path, lead_ids=pd.Series([1]), now=NOW)


def test_load_crm_reads_files(tmp_path):
    leads_frame().to_csv(tmp_path / "leads.csv", index=False)
    pd.DataFrame({"lead_id": [2], "closed_at": ["2025-06-01"], "outcome": ["lost"]}).to_parquet(
        tmp_path / "deals.parquet")
    leads, events, deals = load_crm(tmp_path / "leads.csv", None, tmp_path / "deals.parquet", now=NOW)
    assert len(leads) == 3 and events is None and deals["outcome"].tolist() == ["lost"]
    with pytest.raises(DataContractError, match="no such file"):
        load_crm(tmp_path / "nope.csv")


def test_event_ids_must_match_as_the_builder_joins_them():
    # Lead "007" is text; an event of lead 7 would be cast to "7" by the builder and never match.
    events = pd.DataFrame({"lead_id": [7], "occurred_at": pd.to_datetime(["2025-01-02"]), "event_type": ["page_view"]})
    with pytest.raises(DataContractError, match="column 'lead_id' must hold ids present in the leads table"):
        validate_events(events, lead_ids=pd.Series(["007"]), now=NOW)
    validate_events(events.assign(lead_id=["007"]), lead_ids=pd.Series(["007"]), now=NOW)
