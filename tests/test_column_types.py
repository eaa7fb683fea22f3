"""Column types decided per column, masked bounded messages, spreadsheet-safe CSV and no per-lead rows in MLflow."""

import types

import mlflow
import numpy as np
import pandas as pd
import pytest

from crm.readers import parse_numbers, read_table
from features.column_types import decide_decimal, parse_timestamp_column, same_id_type
from features.contract import DataContractError, bounded, contract_message
from scoring.score_file import neutralise_formulas


def parse(values, **kwargs):
    return parse_timestamp_column(pd.Series(values), source="leads.csv", column="created_at", **kwargs).tolist()


@pytest.mark.parametrize("values, expected", [
    (["2025-03-01", "2025-03-01 10:30", "2025-03-01T10:30:00Z", "2025-03-01T12:30:00+02:00"],
     ["2025-03-01", "2025-03-01 10:30", "2025-03-01 10:30", "2025-03-01 10:30"]),
    (["1740825000", "1740825000.5"], ["2025-03-01 10:30", "2025-03-01 10:30:00.5"]),  # epoch seconds
    ([1740825000000, 1740825060000], ["2025-03-01 10:30", "2025-03-01 10:31"]),  # epoch milliseconds
    (["01/12/2023", "13/01/2023 9:05"], ["2023-12-01", "2023-01-13 09:05"]),  # a day above 12 first: day-first
    (["01/12/2023", "12/13/2023"], ["2023-01-12", "2023-12-13"]),  # a day above 12 second: month-first
    (["01.12.23", "13.01.23"], ["2023-12-01", "2023-01-13"]),
    # Calendar digits, not epoch milliseconds (202403150930 as milliseconds is 1976-05-31).
    (["202403150930", "202412312359"], ["2024-03-15 09:30", "2024-12-31 23:59"]),
    ([202403150930, 202412312359], ["2024-03-15 09:30", "2024-12-31 23:59"]),  # the same as numbers
    (["20240315", "20241231"], ["2024-03-15", "2024-12-31"]),
    (["20240315093015", "20241231235959"], ["2024-03-15 09:30:15", "2024-12-31 23:59:59"]),
    ([None, "", "2025-03-01"], [None, None, "2025-03-01"]),
])
def test_one_format_per_column(values, expected):
    assert parse(values) == [pd.Timestamp(e) if e else pd.NaT for e in expected]


@pytest.mark.parametrize("values, message", [
    (["01/12/2023", "02/11/2023"], r"created_at' holds dates like '01/12/2023' whose day and month cannot be told "
                                   r"apart .*date_format = \"%d/%m/%Y\" .*--date-format"),
    (["13/12/2023", "12/13/2023"], r"a day above 12 in both first and second place.*row 1: '13/12/2023'; "
                                   r"row 2: '12/13/2023'"),
    (["2025-03-01", "01/12/2023", "2025-03-02"], r"1 of 3 values are not ISO 8601 .*row 2: '01/12/2023'"),
    (["2025-03-01", "yesterday"], r"must hold a timestamp in one format.*row 2: 'yesterday'"),
    (["12345", "67890"], r"numbers from 12345 to 67890, which are neither calendar digits .* nor epoch seconds"),
    # 1980 in epoch seconds: before 1990, so not read as time, and no calendar reading fits either.
    (["315532800", "315619200"], r"neither calendar digits .*epoch seconds or milliseconds between 1990 and now"),
    # Epoch milliseconds a week from now: past the moment of reading.
    ([str(int((pd.Timestamp.now() + pd.Timedelta(days=7)).timestamp() * 1000))], r"between 1990 and now"),
    (["20240315", "202403150930"], r"neither calendar digits \(YYYYMMDD, YYYYMMDDHHMM, YYYYMMDDHHMMSS, one length\)"),
    (["20241315"], r"neither calendar digits"),  # month 13
    (["0001-01-01"], r"read as ISO 8601 \(years 1900-2200\); 1 values do not parse\. Example rows: row 1"),
    (["2025-02-30"], r"read as ISO 8601 .*row 1: '2025-02-30'"),
])
def test_columns_that_cannot_be_read_one_way_are_refused(values, message):
    with pytest.raises(DataContractError, match=message):
        parse(values)


def test_a_date_format_reads_an_ambiguous_column_and_only_where_it_fits():
    assert parse(["01/12/2023", "02/11/2023"], date_format="%d/%m/%Y") == [pd.Timestamp("2023-12-01"),
                                                                           pd.Timestamp("2023-11-02")]
    assert parse(["01/12/2023", "02/11/2023"], date_format="%m/%d/%Y") == [pd.Timestamp("2023-01-12"),
                                                                           pd.Timestamp("2023-02-11")]
    assert parse(["2025-03-01"], date_format="%d/%m/%Y") == [pd.Timestamp("2025-03-01")]  # ISO still reads


def test_typed_timestamps_out_of_range_are_refused():
    with pytest.raises(DataContractError, match=r"between the years 1900 and 2200; 1 values are not\. .*row 2"):
        parse_timestamp_column(pd.Series(pd.to_datetime(["2025-01-01", "1800-01-01"])), source="s", column="c")


def test_a_column_that_reads_both_as_calendar_digits_and_epoch_time_asks(monkeypatch):
    # With the year 3000 as "now", 20240315 (8 digits) is no epoch time, but 12-digit 202403150930 as
    # epoch milliseconds is 1976 and 14-digit values as milliseconds land in 2611: both readings fit.
    import features.column_types as column_types

    monkeypatch.setattr(column_types, "_latest", lambda: pd.Timestamp("3000-01-01"))
    with pytest.raises(DataContractError, match=r"read both as calendar digits YYYYMMDDHHMMSS and as epoch "
                                                r"milliseconds; set \[data\] date_format = \"%Y%m%d%H%M%S\""):
        parse(["20240315093015", "20241231235959"])
    assert parse(["20240315093015"], date_format="%Y%m%d%H%M%S") == [pd.Timestamp("2024-03-15 09:30:15")]


def test_readings_other_than_iso_are_logged_once_and_kept(caplog):
    import logging

    from features.column_types import readings

    with caplog.at_level(logging.INFO, logger="lead_scoring.readings"):
        for _ in range(2):
            parse_timestamp_column(pd.Series(["202403150930"]), source="events.csv", column="occurred_at")
        parse(["2025-03-01"])
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["events.csv: occurred_at read as calendar digits YYYYMMDDHHMM"]
    assert readings()["events.csv: occurred_at"] == "read as calendar digits YYYYMMDDHHMM"


@pytest.mark.parametrize("columns, expected", [
    ([["0,5", "12"], ["1.234,5"]], ","), ([["0.5"], ["1,234.5"]], "."), ([["1,234", "1.5"]], "."), ([["12"]], "."),
    ([["1.200", "7"], ["0,5"]], ","), ([["1.234.567"]], ","),
])
def test_the_decimal_mark_is_what_the_file_shows(columns, expected):
    assert decide_decimal([pd.Series(c, dtype="string") for c in columns], source="f.csv") == expected


def test_a_file_showing_both_decimal_marks_is_refused():
    with pytest.raises(DataContractError, match=r"f\.csv: numbers use both decimal marks \('0\.5' and '1,25'\)"):
        decide_decimal([pd.Series(["0.5"], dtype="string"), pd.Series(["1,25"], dtype="string")], source="f.csv")


@pytest.mark.parametrize("values, mark, other", [(["1.200", "7", "950"], ".", ","), (["1,234", "7"], ",", ".")])
def test_numbers_that_read_both_ways_ask_for_the_decimal_mark(values, mark, other):
    # German 1.200 is twelve hundred, English 1.200 one point two: nothing else in the file tells.
    with pytest.raises(DataContractError, match=rf"f\.csv: numbers such as '{values[0]}' read two ways .*set "
                                                rf"\[data\] decimal = \"\{mark}\" \(thousands \"\{other}\"\) or "
                                                rf"\[data\] decimal = \"\{other}\""):
        decide_decimal([pd.Series(values, dtype="string")], source="f.csv")
    assert decide_decimal([pd.Series(values, dtype="string")], source="f.csv", configured=",") == ","


def test_csv_cells_are_text_until_a_column_is_decided(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text("lead_id,code,size,note\n007,0012,\"1,5\",NA\n8,0400,2,null\n")
    frame = read_table(path, text_columns=("lead_id",))
    assert frame["lead_id"].tolist() == ["007", "8"]  # ids exactly as written
    assert frame["code"].tolist() == ["0012", "0400"]  # zero-padded codes stay text
    assert frame["size"].tolist() == [1.5, 2.0] and frame.attrs["decimal"] == ","
    assert frame["note"].tolist() == ["NA", "null"]  # no value is turned missing behind the user's back


@pytest.mark.parametrize("values, message", [
    (["12", "inf"], r"column 'size' must hold numbers .*'inf'.*row 2"),
    (["12", "NaN"], r"column 'size' must hold numbers .*'NaN'.*row 2"),
    (["12", "1e400"], r"column 'size' must hold numbers .*'1e400'"),
    ([1.0, np.inf], r"column 'size' must hold finite numbers; 1 infinite values\. Example rows: row 2: size=inf"),
])
def test_infinities_and_nan_in_numbers_are_refused(values, message):
    with pytest.raises(DataContractError, match=message):
        parse_numbers(pd.Series(values, name="size"), source="leads.csv", column="size")


def test_ids_match_as_text():
    leads = pd.Series(["007", "8", "L-1"])
    assert same_id_type(pd.Series([8, 7]), leads).tolist() == ["8", "7"]  # 7 is not "007"
    assert same_id_type(pd.Series(["8"]), pd.Series([8, 9])).tolist() == [8]


def test_messages_mask_personal_data_by_value_and_by_name_and_stay_short():
    rows = pd.DataFrame({"lead_id": ["a"], "notes": ["write to ana.lopez@example.com or +44 20 7946 0000"],
                         "Tel": ["020 7946 0000"], "Contact Person": ["Ana Lopez"], "Home Address": ["1 Main St"],
                         "created_at": ["2025-03-01 12:00:00"]})
    message = contract_message("leads.csv", "created_at", "a timestamp", "1 bad", rows)
    assert "ana.lopez" not in message and "7946" not in message and "Ana Lopez" not in message
    assert "notes='write to <e-mail> or <phone>'" in message
    assert "Tel='<redacted>'" in message and "Contact Person='<redacted>'" in message
    assert "Home Address='<redacted>'" in message and "created_at='2025-03-01 12:00:00'" in message
    assert "\n" not in message
    flood = bounded("x: " + ", ".join(f"person{i}@example.com" for i in range(500)))
    assert len(flood) <= 800 and "@" not in flood and flood.endswith("chars)")


def test_csv_cells_a_spreadsheet_would_run_are_neutralised():
    frame = pd.DataFrame({"lead_id": ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "ok", None],
                          "probability": [0.1, -0.2, 0.3, 0.4, 0.5, 0.6]})
    safe = neutralise_formulas(frame)
    assert safe["lead_id"].tolist()[:5] == ["'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "ok"]
    assert pd.isna(safe["lead_id"].iloc[5])
    assert safe["probability"].tolist() == frame["probability"].tolist()  # numbers untouched
    assert frame["lead_id"].iloc[0].startswith("=")  # the caller's frame is not modified


def test_comparisons_log_no_per_lead_rows_unless_asked(mlflow_store, tmp_path, monkeypatch):
    import hashlib
    import hmac

    from registry.analysis_runs import log_comparison

    mlflow.set_tracking_uri(mlflow_store)
    report = tmp_path / "report.html"
    report.write_text("<p>lead ana@example.com</p>")
    comparison = types.SimpleNamespace(
        params={"rows": 2}, metrics={"model_roc_auc": 0.8}, scorecard=None,
        tables={"tiers": pd.DataFrame({"tier": ["SQL"], "leads": [2]}),
                "disagreements": pd.DataFrame({"lead_id": ["ana@example.com", "L-2"], "rank_gap": [0.5, -0.4]})})
    client = mlflow.MlflowClient()

    run = log_comparison(comparison, figures={}, report_path=report)
    logged = {item.path for item in client.list_artifacts(run, "comparison")}
    assert logged == {"comparison/tiers.csv"}
    assert client.get_run(run).data.tags["report_path"] == str(report)

    def logged_ids(run_id):
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="comparison/disagreements.csv")
        return pd.read_csv(path)["lead_id"].tolist()

    # With the team's key, ids are HMAC-SHA256 digests anyone holding the key can reproduce.
    monkeypatch.setenv("LEAD_SCORING_ID_KEY", "team secret")
    run = log_comparison(comparison, figures={}, report_path=report, log_lead_rows=True)
    logged = {item.path for item in client.list_artifacts(run, "comparison")}
    assert logged == {"comparison/tiers.csv", "comparison/disagreements.csv"}  # the report lists raw ids
    expected = [hmac.new(b"team secret", lead.encode(), hashlib.sha256).hexdigest()[:16]
                for lead in ("ana@example.com", "L-2")]
    assert logged_ids(run) == expected
    assert hashlib.sha256(b"ana@example.com").hexdigest()[:16] not in expected  # not the plain hash
    assert "LEAD_SCORING_ID_KEY" in client.get_run(run).data.tags["lead_rows"]

    # Without it, each run keys its digests afresh: the same id differs between runs.
    monkeypatch.delenv("LEAD_SCORING_ID_KEY")
    first = logged_ids(log_comparison(comparison, figures={}, report_path=report, log_lead_rows=True))
    second = logged_ids(log_comparison(comparison, figures={}, report_path=report, log_lead_rows=True))
    assert first != second and len(set(first)) == 2 and all(len(digest) == 16 for digest in first + second)
    assert expected[0] not in first
