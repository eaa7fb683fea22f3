"""Engagement features: hand-worked values, point-in-time safety, input forms."""

import numpy as np
import pandas as pd
import pytest

from features import engagement
from features.engagement import build_engagement_features, normalise_event_type, reference_aggregation_sql
from features.spec import FeatureSpec, count_feature, decayed_feature

SPEC = FeatureSpec()
AS_OF = pd.Timestamp("2025-03-31 00:00:00")


def events_frame(rows):
    """rows: (lead_id, days before AS_OF, event_type)."""
    return pd.DataFrame({
        "lead_id": [r[0] for r in rows],
        "occurred_at": [AS_OF - pd.Timedelta(days=r[1]) for r in rows],
        "event_type": [r[2] for r in rows],
    })


def snapshots_frame(lead_ids, as_of=AS_OF, index=None):
    return pd.DataFrame({"lead_id": lead_ids, "as_of": np.array([as_of] * len(lead_ids), dtype="datetime64[ns]")},
                        index=index)


@pytest.fixture
def worked():
    """Lead 1's history, worked out by hand below; lead 2 has no events."""
    events = events_frame([
        (1, 0.5, "email_open"),        # 12 hours ago
        (1, 7, "email_open"),          # exactly on the 7-day boundary: counts in 7d
        (1, 7, "Email-Open"),          # same instant, same normalised type: a duplicate, counts once
        (1, 30, "email_click"),        # exactly 30 days: in 30d, one half-life of hl30
        (1, 45, "pricing page view"),  # normalised to pricing_page_view
        (1, 100, "podcast_listened"),  # unknown type -> other
        (1, 100, "podcast_listened"),  # exact duplicate
    ])
    return snapshots_frame([1, 2], index=pd.Index(["a", "b"])), events


def test_worked_example_counts_recency_decay(worked):
    snapshots, events = worked
    got = build_engagement_features(snapshots, events, SPEC)
    one = got.loc["a"]
    # email_open: ages 0.5 and 7 (the duplicate at 7 dropped)
    assert one["events_email_open_7d"] == 2       # 7 <= 7 counts
    assert one["events_email_open_30d"] == 2
    assert one["events_email_open_total"] == 2
    assert one["days_since_email_open"] == pytest.approx(0.5)
    # decayed hl7: 0.5**(0.5/7) + 0.5**(7/7) = 0.95170 + 0.5
    assert one["decayed_email_open_hl7d"] == pytest.approx(0.5 ** (0.5 / 7) + 0.5)
    # email_click: one event aged exactly 30 days
    assert one["events_email_click_7d"] == 0
    assert one["events_email_click_30d"] == 1
    assert one["days_since_email_click"] == pytest.approx(30)
    assert one["decayed_email_click_hl30d"] == pytest.approx(0.5)      # one half-life ago
    assert one["decayed_email_click_hl7d"] == pytest.approx(0.5 ** (30 / 7))
    # pricing page view at 45 days: outside 30d, inside 90d
    assert (one["events_pricing_page_view_30d"], one["events_pricing_page_view_90d"]) == (0, 1)
    # unknown type counted once under other, at 100 days
    assert (one["events_other_90d"], one["events_other_total"], one["days_since_other"]) == (0, 1, 100)
    # all types: ages 0.5, 7, 30, 45, 100
    assert [one[f"events_any_{w}d"] for w in (7, 30, 90)] == [2, 3, 4]
    assert one["events_any_total"] == 5
    assert one["days_since_any_event"] == pytest.approx(0.5)
    # each event on its own calendar date; within 30 days: the dates 0.5, 7 and 30 days back
    assert one["active_days_total"] == 5
    assert one["active_days_30d"] == 3
    # n30 = 3 (0.5, 7, 30), previous 30 days: 1 (45) -> (3 - 1) / 4
    assert one["events_trend_30d"] == pytest.approx(0.5)
    # 1 click / max(2 opens, 1 click)
    assert one["email_click_rate"] == pytest.approx(0.5)
    assert one["events_demo_request_total"] == 0
    assert np.isnan(one["days_since_demo_request"])


def test_lead_without_events(worked):
    snapshots, events = worked
    two = build_engagement_features(snapshots, events, SPEC).loc["b"]
    days_since = [name for name in SPEC.engagement_feature_names if name.startswith("days_since")]
    assert two[days_since].isna().all()
    rest = two.drop(days_since + ["email_click_rate"])
    assert (rest == 0).all()
    assert np.isnan(two["email_click_rate"])    # no opens, no clicks


def test_columns_index_and_dtype(worked):
    snapshots, events = worked
    got = build_engagement_features(snapshots, events, SPEC)
    assert list(got.columns) == SPEC.engagement_feature_names
    assert got.index.equals(snapshots.index)
    assert (got.dtypes == np.float64).all()


def test_active_days_count_distinct_dates():
    # three events on one date (two within the last 30 days by the minute), one on another date
    as_of = pd.Timestamp("2025-03-31 12:00")
    events = pd.DataFrame({
        "lead_id": [7, 7, 7, 7],
        "occurred_at": pd.to_datetime(["2025-03-01 06:00", "2025-03-01 13:00", "2025-03-01 20:00",
                                       "2025-03-20 09:00"]),
        "event_type": ["page_view"] * 4,
    })
    got = build_engagement_features(snapshots_frame([7], as_of=as_of), events, SPEC).iloc[0]
    # ages: 30.25, 29.96, 29.67, 11.1 days: 2 distinct dates overall; in 30 days: 1 March (13:00, 20:00)
    # and 20 March
    assert got["active_days_total"] == 2
    assert got["active_days_30d"] == 2
    assert got["events_page_view_30d"] == 3


def test_trend_zero_when_no_recent_activity_and_minus_one_when_fading():
    events = events_frame([(1, 40, "page_view"), (2, 200, "page_view")])
    got = build_engagement_features(snapshots_frame([1, 2]), events, SPEC)
    assert got["events_trend_30d"].tolist() == [-1.0, 0.0]


def test_events_at_or_after_as_of_change_nothing(worked):
    snapshots, events = worked
    future = events_frame([(1, 0, "demo_request"), (1, -0.001, "email_click"), (2, -3, "email_open"),
                           (1, -400, "unknown thing")])   # 0 days: exactly at as_of
    before = build_engagement_features(snapshots, events, SPEC)
    after = build_engagement_features(snapshots, pd.concat([events, future], ignore_index=True), SPEC)
    pd.testing.assert_frame_equal(before, after)


def test_two_snapshots_of_one_lead_see_different_histories():
    events = events_frame([(1, 40, "demo_request"), (1, 5, "demo_request")])
    snapshots = pd.DataFrame({"lead_id": [1, 1], "as_of": [AS_OF - pd.Timedelta(days=20), AS_OF]})
    got = build_engagement_features(snapshots, events, SPEC)
    assert got["events_demo_request_total"].tolist() == [1, 2]
    assert got["days_since_demo_request"].tolist() == pytest.approx([20, 5])


@pytest.mark.parametrize("reader", ["numpy", "duckdb"])
@pytest.mark.parametrize("events_as_string", [True, False])
def test_int_and_string_lead_ids_join(worked, events_as_string, reader, monkeypatch):
    if reader == "duckdb":
        monkeypatch.setattr(engagement, "IN_MEMORY_MAX_EVENTS", -1)
    snapshots, events = worked
    expected = build_engagement_features(snapshots, events, SPEC)
    if events_as_string:
        events = events.assign(lead_id=events["lead_id"].astype(str))
    else:
        snapshots = snapshots.assign(lead_id=snapshots["lead_id"].astype(str))
    pd.testing.assert_frame_equal(build_engagement_features(snapshots, events, SPEC), expected)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_file_input_matches_frame_input(worked, tmp_path, suffix):
    snapshots, events = worked
    path = tmp_path / f"events{suffix}"
    events.to_parquet(path) if suffix == ".parquet" else events.to_csv(path, index=False)
    pd.testing.assert_frame_equal(build_engagement_features(snapshots, path, SPEC),
                                  build_engagement_features(snapshots, events, SPEC))
    pd.testing.assert_frame_equal(build_engagement_features(snapshots, str(path), SPEC),
                                  build_engagement_features(snapshots, events, SPEC))


@pytest.mark.parametrize("reader", ["numpy", "duckdb"])
def test_matches_brute_force_on_random_data(reader, monkeypatch):
    """Both readers of the sorted event rows: numpy for small frames, DuckDB for everything else."""
    if reader == "duckdb":
        monkeypatch.setattr(engagement, "IN_MEMORY_MAX_EVENTS", -1)
    rng = np.random.default_rng(3)
    n_events = 3000
    events = pd.DataFrame({
        "lead_id": rng.integers(0, 40, n_events),
        # whole hours so duplicates and shared dates happen often
        "occurred_at": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 24 * 150, n_events), unit="h"),
        "event_type": rng.choice(["email_open", "email_click", "Demo Request", "weird", None], n_events),
    })
    snapshots = pd.DataFrame({
        "lead_id": rng.integers(0, 45, 120),
        "as_of": pd.Timestamp("2025-02-01") + pd.to_timedelta(rng.integers(0, 24 * 120, 120), unit="h"),
    }, index=rng.permutation(1000)[:120])
    spec = FeatureSpec(windows_days=(3, 30), half_lives_days=(2.5,))
    got = build_engagement_features(snapshots, events, spec)
    pd.testing.assert_frame_equal(got, _brute_force(snapshots, events, spec), check_exact=False, rtol=1e-9)


def test_a_join_too_big_for_a_small_memory_limit_is_redone_with_the_default(tmp_path):
    """Not every DuckDB operator spills: a chunk over batch scoring's small limit is redone, not lost."""
    rng = np.random.default_rng(11)
    n_events = 60_000
    events = pd.DataFrame({
        "lead_id": rng.integers(0, 600, n_events),
        "occurred_at": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 24 * 3600 * 150, n_events),
                                                                    unit="s"),
        "event_type": rng.choice(["email_open", "email_click", "demo_request", "pricing_page_view"], n_events),
    })
    path = tmp_path / "events.parquet"
    events.to_parquet(path)
    snapshots = pd.DataFrame({"lead_id": np.arange(620), "as_of": pd.Timestamp("2025-05-01")})
    with pytest.warns(ResourceWarning, match=r"more than DuckDB's 1MB memory limit; it was redone with 2GB"):
        # The frame: DuckDB reads it (a Parquet file with typed times is read by pyarrow, under no DuckDB limit).
        squeezed = build_engagement_features(snapshots, events, SPEC, memory_limit="1MB")
    pd.testing.assert_frame_equal(squeezed, build_engagement_features(snapshots, path, SPEC))
    few = snapshots.iloc[::40]  # the brute force is slow: a sample of the same rows checks the values
    pd.testing.assert_frame_equal(squeezed.loc[few.index], _brute_force(few, events, SPEC),
                                  check_exact=False, rtol=1e-9)


def test_custom_spec_without_30_day_window_or_click_rate():
    spec = FeatureSpec(event_types=("demo_request",), windows_days=(14,), half_lives_days=(1.5,))
    events = events_frame([(1, 10, "demo_request"), (1, 40, "email_open")])
    got = build_engagement_features(snapshots_frame([1]), events, spec).iloc[0]
    assert list(got.index) == spec.engagement_feature_names
    assert "email_click_rate" not in got.index
    assert got["events_other_total"] == 1
    assert got["decayed_demo_request_hl1.5d"] == pytest.approx(0.5 ** (10 / 1.5))
    assert got["events_trend_30d"] == pytest.approx(0.0)   # one within 30, one in the 30 before


def test_empty_snapshots_and_empty_events():
    empty = build_engagement_features(snapshots_frame([]), events_frame([(1, 1, "page_view")]), SPEC)
    assert empty.shape == (0, len(SPEC.engagement_feature_names))
    no_events = build_engagement_features(snapshots_frame([1]), events_frame([]).astype(
        {"lead_id": "int64", "event_type": "object"}), SPEC)
    assert no_events["events_any_total"].tolist() == [0.0]


def test_caller_frames_untouched(worked):
    snapshots, events = worked
    snapshots_before, events_before = snapshots.copy(), events.copy()
    build_engagement_features(snapshots, events, SPEC)
    pd.testing.assert_frame_equal(snapshots, snapshots_before)
    pd.testing.assert_frame_equal(events, events_before)


def test_bad_input_is_refused_clearly(worked, tmp_path):
    snapshots, events = worked
    with pytest.raises(ValueError, match="missing column.*occurred_at"):
        build_engagement_features(snapshots, events.drop(columns="occurred_at"), SPEC)
    with pytest.raises(ValueError, match="'as_of'"):
        build_engagement_features(snapshots.drop(columns="as_of"), events, SPEC)
    with pytest.raises(TypeError, match="'as_of' column .* datetime64"):
        build_engagement_features(snapshots.assign(as_of="2025-01-01"), events, SPEC)
    (tmp_path / "events.json").write_text("[]")
    with pytest.raises(ValueError, match=r"expected a \.csv or \.parquet file"):
        build_engagement_features(snapshots, tmp_path / "events.json", SPEC)
    with pytest.raises(ValueError, match="no such file"):
        build_engagement_features(snapshots, tmp_path / "nowhere.parquet", SPEC)


def test_normalise_event_type():
    assert normalise_event_type("  Pricing-Page  View ") == "pricing_page_view"
    assert normalise_event_type(None) == ""


def test_reference_sql_runs(worked):
    import duckdb
    snapshots, events = worked
    with duckdb.connect() as con:
        con.register("snaps", snapshots)
        con.register("ev", events)
        rows = con.sql(reference_aggregation_sql("ev", "snaps")).df()
    assert rows["events_total"].sum() == 7    # no dedup, no normalisation: all events before as_of


def _brute_force(snapshots, events, spec):
    """Row by row, straight from the definitions."""
    types = (*spec.event_types, "other")
    events = events.assign(event_type=[normalise_event_type(t) for t in events["event_type"]])
    events = events.drop_duplicates(["lead_id", "occurred_at", "event_type"])
    events = events.assign(code=[t if t in spec.event_types else "other" for t in events["event_type"]])
    rows = []
    for lead_id, as_of in zip(snapshots["lead_id"], snapshots["as_of"]):
        seen = events[(events["lead_id"] == lead_id) & (events["occurred_at"] < as_of)]
        age = (as_of - seen["occurred_at"]).dt.total_seconds() / 86400
        row = {}
        for t in types:
            a = age[seen["code"] == t]
            for w in spec.windows_days:
                row[count_feature(t, w)] = float((a <= w).sum())
            row[f"events_{t}_total"] = float(len(a))
            row[f"days_since_{t}"] = a.min() if len(a) else np.nan
            for h in spec.half_lives_days:
                row[decayed_feature(t, h)] = float((0.5 ** (a / h)).sum())
        for w in spec.windows_days:
            row[count_feature("any", w)] = float((age <= w).sum())
        row["events_any_total"] = float(len(age))
        row["days_since_any_event"] = age.min() if len(age) else np.nan
        row["active_days_total"] = float(seen["occurred_at"].dt.normalize().nunique())
        row["active_days_30d"] = float(seen.loc[age <= 30, "occurred_at"].dt.normalize().nunique())
        n30, previous = (age <= 30).sum(), ((age > 30) & (age <= 60)).sum()
        row["events_trend_30d"] = (n30 - previous) / (n30 + previous) if n30 + previous else 0.0
        if spec.has_email_click_rate:
            clicks, opens = row["events_email_click_total"], row["events_email_open_total"]
            row["email_click_rate"] = clicks / max(opens, clicks) if max(opens, clicks) else np.nan
        rows.append(row)
    return pd.DataFrame(rows, index=snapshots.index, columns=spec.engagement_feature_names, dtype=np.float64)


def test_numpy_and_duckdb_readers_agree_on_messy_zoned_input(monkeypatch):
    """Zoned timestamps, missing types and times, several snapshots per lead: the same features either way."""
    rng = np.random.default_rng(8)
    n = 800
    events = pd.DataFrame({
        "lead_id": rng.integers(0, 20, n),
        "occurred_at": (pd.Timestamp("2025-01-01", tz="Europe/Berlin")
                        + pd.to_timedelta(rng.integers(0, 24 * 90, n), unit="h")),
        "event_type": rng.choice(["email_open", " Pricing-Page View", "demo_request", "other", None], n),
    })
    events.loc[::97, "occurred_at"] = pd.NaT
    snapshots = pd.DataFrame({"lead_id": np.r_[np.arange(25), np.arange(10)],
                              "as_of": [pd.Timestamp("2025-03-01")] * 25 + [pd.Timestamp("2025-02-01")] * 10})
    small = build_engagement_features(snapshots, events, SPEC)
    monkeypatch.setattr(engagement, "IN_MEMORY_MAX_EVENTS", -1)
    pd.testing.assert_frame_equal(small, build_engagement_features(snapshots, events, SPEC))
