"""Durations below a day, and the event vocabulary as data: the log's own types, keys, words and limits."""

import pandas as pd
import pytest

from features.engagement import build_engagement_features
from features.snapshots import as_of_schedule, build_snapshots
from features.spec import FeatureSpec, event_key
from features.timing import duration, duration_days, duration_label
from features.vocabulary import EventVocabulary
from models.factor_words import describe_factor
from models.rules import RulesError, rules_from_dict
from train import build_parser
from training.split import suggest_spans

T = pd.Timestamp


@pytest.mark.parametrize("text, days", [
    ("6h", 0.25), ("2d", 2.0), ("90d", 90.0), ("30m", 30 / 1440), ("45min", 45 / 1440), ("1w", 7.0),
    ("1.5d", 1.5), (" 12 H ", 0.5), (90, 90.0), (0.5, 0.5), ("90", 90.0), ("7.5", 7.5),
])
def test_duration_days(text, days):
    assert duration_days(text) == pytest.approx(days)


@pytest.mark.parametrize("bad", ["", "soon", "6 parsecs", "h6", "-2d", "0h", 0, -3, True, None, "6h30m"])
def test_duration_refuses_what_it_cannot_read(bad):
    with pytest.raises(ValueError, match=r"\[training\] horizon must be a (positive )?duration"):
        duration_days(bad, name="[training] horizon")


def test_duration_as_timedelta_and_labels():
    assert duration("6h") == pd.Timedelta(hours=6) and duration(1 / 24) == pd.Timedelta(hours=1)
    assert [duration_label(d) for d in (7, 90, 1.5, 0.25, 1 / 24, 1 / 48)] == ["7d", "90d", "1.5d", "6h", "1h", "30m"]


def test_cli_accepts_durations_and_the_old_day_flags():
    parser = build_parser()
    new = parser.parse_args(["train", "--config", "c.toml", "--horizon", "6h", "--every", "30m",
                             "--test-span", "2d", "--calibration-span", "12h"])
    assert (new.horizon_days, new.snapshot_every_days, new.test_days, new.calibration_days) == (
        0.25, pytest.approx(1 / 48), 2, 0.5)
    old = parser.parse_args(["train", "--config", "c.toml", "--horizon-days", "90", "--every-days", "15",
                             "--test-days", "90", "--calibration-days", "60"])
    assert (old.horizon_days, old.snapshot_every_days, old.test_days, old.calibration_days) == (90, 15, 90, 60)
    assert parser.parse_args(["train", "--config", "c.toml"]).horizon_days is None  # the config's, else 90d


def test_sub_day_schedule_and_horizon():
    assert list(as_of_schedule("2025-03-03 07:30", "2025-03-03 19:00", every_days="6h")) == [
        T("2025-03-03 00:00"), T("2025-03-03 06:00"), T("2025-03-03 12:00"), T("2025-03-03 18:00")]
    leads = pd.DataFrame({"lead_id": ["a", "b"], "created_at": [T("2025-03-03 01:00"), T("2025-03-03 01:00")]})
    deals = pd.DataFrame({"lead_id": ["a", "b"], "closed_at": [T("2025-03-03 11:59"), T("2025-03-03 12:00")],
                          "outcome": ["won", "won"]})
    snapshots = build_snapshots(leads, deals, as_of_dates=[T("2025-03-03 06:00")], horizon_days="6h")
    # a closes inside [06:00, 12:00); b exactly at the horizon's end, which is outside it.
    assert snapshots.set_index("lead_id")["label"].to_dict() == {"a": 1, "b": 0}


def test_sub_day_windows_are_point_in_time():
    """An event at as_of is not seen; one a minute before is, in every window; names read in hours."""
    spec = FeatureSpec(event_types=("Quote Sent",), windows_days=(1 / 24, 0.25), half_lives_days=(0.5,),
                       categorical_columns=(), numeric_columns=(), job_title_column=None, email_column=None)
    as_of = T("2025-03-03 12:00")
    events = pd.DataFrame({"lead_id": ["a"] * 4, "event_type": ["Quote Sent"] * 4,
                           "occurred_at": [as_of, as_of + pd.Timedelta(minutes=5), as_of - pd.Timedelta(minutes=1),
                                           as_of - pd.Timedelta(hours=2)]})
    got = build_engagement_features(pd.DataFrame({"lead_id": ["a"], "as_of": [as_of]}), events, spec).iloc[0]
    assert got["events_quote_sent_1h"] == 1          # 11:59 only; 12:00 and 12:05 are not seen
    assert got["events_quote_sent_6h"] == 2          # 11:59 and 10:00
    assert got["events_quote_sent_total"] == 2
    assert got["days_since_quote_sent"] == pytest.approx(1 / 1440)
    assert got["decayed_quote_sent_hl12h"] == pytest.approx(0.5 ** (1 / 720) + 0.5 ** (2 / 12))


def test_event_keys_are_column_safe_and_collisions_are_errors():
    assert [event_key(t) for t in ("Send Fine", "O_SENT_BACK", " Email-Open ", "A_SUBMITTED+complete", "Überweisung",
                                   None)] == ["send_fine", "o_sent_back", "email_open", "a_submitted_complete",
                                              "uberweisung", ""]
    assert event_key("請求").startswith("type_") and event_key("請求") == event_key(" 請求 ")
    spec = FeatureSpec(event_types=("Send Fine", "O_SENT_BACK"))
    assert "events_send_fine_7d" in spec.feature_names and "days_since_o_sent_back" in spec.feature_names
    assert spec.event_names["send_fine"] == "Send Fine"
    with pytest.raises(ValueError, match=r"'Send Fine' and 'send-fine' give the same column name 'send_fine'"):
        FeatureSpec(event_types=("Send Fine", "send-fine"))
    with pytest.raises(ValueError, match="reserved name 'any'"):
        FeatureSpec(event_types=("Any",))
    with pytest.raises(ValueError, match=r"event_words name type\(s\) \['Fax'\]"):
        FeatureSpec(event_types=("Send Fine",), event_words={"Fax": "faxed"})


def test_saved_spec_keeps_types_and_words():
    spec = FeatureSpec(event_types=("O_SENT_BACK", "Send Fine"),
                       event_words={"O_SENT_BACK": "sent the offer back", "Send Fine": ["fine", "fines", "was fined"]},
                       windows_days=(0.25, 7))
    assert FeatureSpec.from_dict(spec.as_dict()) == spec
    assert FeatureSpec().as_dict()["event_words"] == {} and FeatureSpec.from_dict(FeatureSpec().as_dict()) == FeatureSpec()


def test_vocabulary_learns_frequent_types_and_the_rest_is_other():
    events = pd.DataFrame({
        "lead_id": ["a"] * 10,
        "occurred_at": [T("2025-01-01")] * 9 + [T("2025-02-01")],
        "event_type": ["Send Fine"] * 4 + ["send fine"] + ["O_SENT_BACK"] * 3 + ["Fax", "Fax"],
    })
    types, counts = EventVocabulary(min_count=2).learn(events)
    assert types == ("Send Fine", "O_SENT_BACK", "Fax")  # spellings with one key are one type, named as most often
    # Before the test window (mid-January) Fax has one event: under min_count, so it counts as other.
    assert EventVocabulary(min_count=2).learn(events, before=T("2025-01-15"))[0] == ("Send Fine", "O_SENT_BACK")
    types, _ = EventVocabulary(min_count=1).learn(events, before=T("2025-01-15"))
    assert types == ("Send Fine", "O_SENT_BACK", "Fax")
    assert EventVocabulary(min_count=1, max_types=1).learn(events)[0] == ("Send Fine",)
    assert EventVocabulary(min_count=1, min_share=0.25).learn(events)[0] == ("Send Fine", "O_SENT_BACK")
    assert counts.set_index("key")["events"].to_dict() == {"send_fine": 5, "o_sent_back": 3, "fax": 2}
    with pytest.raises(ValueError, match="'max_types' parameter of EventVocabulary must be a positive integer"):
        EventVocabulary(max_types=0)


def test_reasons_use_the_configured_words_and_the_data_names():
    spec = FeatureSpec(event_types=("O_SENT_BACK", "Send Fine", "demo_request"),
                       event_words={"O_SENT_BACK": "sent the offer back"}, windows_days=(0.25, 7))
    def value(**values):
        return lambda name: values.get(name, 0.0)
    hours = value(events_o_sent_back_total=1, days_since_o_sent_back=0.2)
    assert describe_factor("o_sent_back", hours, spec) == "sent the offer back 4 hours ago"
    minutes = value(events_o_sent_back_total=1, days_since_o_sent_back=12.5 / 1440)
    assert describe_factor("o_sent_back", minutes, spec) == "sent the offer back 12 minutes ago"
    assert describe_factor("o_sent_back", value(), spec) == "never sent the offer back"
    three = value(events_o_sent_back_total=3, events_o_sent_back_6h=3, days_since_o_sent_back=0.05)
    assert describe_factor("o_sent_back", three, spec) == "sent the offer back 3 times in the last 6 hours, " \
                                                          "the latest 1 hour ago"
    assert describe_factor("send_fine", value(events_send_fine_total=1, days_since_send_fine=5.0), spec) == \
        "had a Send Fine event 5 days ago"
    # The contract's own words stay for its own types.
    assert describe_factor("demo_request", value(events_demo_request_total=1, days_since_demo_request=5.0), spec) == \
        "requested a demo 5 days ago"


def test_rules_take_the_models_own_types_by_name_or_key():
    spec = FeatureSpec(event_types=("O_SENT_BACK", "Send Fine"), windows_days=(0.25, 7))
    rules = rules_from_dict({"thresholds": {"mql": 10, "sql": 20}, "behaviour": [
        {"name": "sent back", "event": "O_SENT_BACK", "points": -5, "window": "6h"},
        {"name": "fined", "event": "send_fine", "points": 3, "half_life": "12h"},
        {"name": "rest", "event": "other", "points": 1}]}, spec=spec)
    assert [rule.feature for rule in rules.behaviours] == ["events_o_sent_back_6h", "decayed_send_fine_hl12h",
                                                          "events_other_total"]
    assert set(rules.feature_spec(spec).windows_days) == {0.25, 7}
    with pytest.raises(RulesError, match=r"unknown event type 'demo_request'; expected one of the model's event "
                                         r"types \['O_SENT_BACK', 'Send Fine', 'other'\]"):
        rules_from_dict({"thresholds": {"mql": 10, "sql": 20},
                         "behaviour": [{"event": "demo_request", "points": 5}]}, spec=spec)


def test_suggested_spans_fit_the_data():
    assert suggest_spans(pd.Timedelta(days=3)) == {"horizon": "18h", "every": "1h", "test_span": "18h",
                                                   "calibration_span": "12h"}
    assert suggest_spans(pd.Timedelta(days=730)) == {"horizon": "182d", "every": "18d", "test_span": "182d",
                                                     "calibration_span": "121d"}


def test_http_schema_and_model_page_name_the_models_own_event_types():
    import json

    from fastapi.testclient import TestClient

    from models.bundle import ModelBundle
    from scoring.service import create_app
    from models.tiers import TierThresholds

    spec = FeatureSpec(event_types=("O_SENT_BACK", "Send Fine"))
    bundle = ModelBundle(spec=spec, model=None, thresholds=TierThresholds(mql=0.1, sql=0.3))
    client = TestClient(create_app(bundle, {"model_version": "1"}))
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    event_type = schemas["Event"]["properties"]["event_type"]
    assert event_type["examples"] == ["O_SENT_BACK", "Send Fine"] and "demo_request" not in json.dumps(schemas["Event"])
    assert "['O_SENT_BACK', 'Send Fine']" in event_type["description"]
    assert client.get("/model").json()["event_types"] == ["O_SENT_BACK", "Send Fine"]
