"""The three event readers give the same features: pyarrow on typed Parquet, DuckDB, numpy."""

import numpy as np
import pandas as pd
import pytest

from features import engagement
from features.engagement import build_engagement_features
from features.event_pass import group_events
from features.event_rows import is_typed_parquet, read_events_frame
from features.spec import FeatureSpec

SPEC = FeatureSpec()


def messy_events(rng, n=5000, ids=40):
    """Times off the microsecond grid, missing times and types, unknown leads, duplicates."""
    events = pd.DataFrame({
        "lead_id": rng.integers(0, ids + 5, n),
        "occurred_at": (pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 24 * 120, n), unit="h")
                        + pd.to_timedelta(rng.integers(0, 1000, n) * 1500 - 1, unit="ns")),
        "event_type": rng.choice(["email_open", "Email-Click", " Demo Request", "weird", None], n),
    })
    events.loc[::97, "occurred_at"] = pd.NaT
    return pd.concat([events, events.iloc[:300]], ignore_index=True)  # exact duplicates


def snapshots_of(rng, ids=40):
    return pd.DataFrame({
        "lead_id": np.r_[np.arange(ids), rng.integers(0, ids, 30)],
        "as_of": pd.Timestamp("2025-03-01") + pd.to_timedelta(rng.integers(0, 24 * 60, ids + 30), unit="h"),
    }, index=rng.permutation(500)[:ids + 30])


@pytest.mark.parametrize("ids_as", ["int", "str", "mixed"])
def test_parquet_reader_matches_duckdb_reader(tmp_path, monkeypatch, ids_as):
    rng = np.random.default_rng(5)
    events, snapshots = messy_events(rng), snapshots_of(rng)
    if ids_as in ("str", "mixed"):
        events = events.assign(lead_id=events["lead_id"].map(lambda i: f"L{i:03d}" if ids_as == "str" else str(i)))
    if ids_as == "str":
        snapshots = snapshots.assign(lead_id=snapshots["lead_id"].map(lambda i: f"L{i:03d}"))
    path = tmp_path / "events.parquet"
    events.to_parquet(path)
    assert is_typed_parquet(path)
    from_parquet = build_engagement_features(snapshots, path, SPEC)
    monkeypatch.setattr(engagement, "IN_MEMORY_MAX_EVENTS", -1)  # the frame goes through DuckDB
    from_duckdb = build_engagement_features(snapshots, events, SPEC)
    pd.testing.assert_frame_equal(from_parquet, from_duckdb, check_exact=False, rtol=1e-12, atol=0)
    assert from_parquet["events_any_total"].sum() > 0


def test_nanoseconds_round_to_microseconds_as_duckdb_does(tmp_path, monkeypatch):
    # 1,500 ns after a whole microsecond rounds up to 2 us, 1,499 ns down to 1 us (half away from zero).
    base = pd.Timestamp("2025-03-01")
    events = pd.DataFrame({"lead_id": [1, 2], "occurred_at": [base + pd.Timedelta(1500, "ns"),
                                                              base + pd.Timedelta(1499, "ns")],
                           "event_type": ["page_view", "page_view"]})
    path = tmp_path / "events.parquet"
    events.to_parquet(path)
    snapshots = pd.DataFrame({"lead_id": [1, 2], "as_of": [base + pd.Timedelta(10, "us")] * 2})
    got = build_engagement_features(snapshots, path, SPEC)["days_since_page_view"].to_numpy()
    np.testing.assert_allclose(got * 86_400e6, [8.0, 9.0], rtol=1e-9)
    monkeypatch.setattr(engagement, "IN_MEMORY_MAX_EVENTS", -1)
    pd.testing.assert_frame_equal(build_engagement_features(snapshots, path, SPEC),
                                  build_engagement_features(snapshots, events, SPEC))


def test_text_times_and_csv_are_not_read_by_pyarrow(tmp_path):
    events = pd.DataFrame({"lead_id": [1], "occurred_at": ["2025-01-01 10:00"], "event_type": ["page_view"]})
    events.to_parquet(tmp_path / "text.parquet")
    events.to_csv(tmp_path / "events.csv", index=False)
    assert not is_typed_parquet(tmp_path / "text.parquet")
    assert not is_typed_parquet(tmp_path / "events.csv")
    assert not is_typed_parquet(tmp_path / "nowhere.parquet")
    assert not is_typed_parquet(events)


def test_grouping_keeps_each_leads_events_and_drops_other_leads():
    events = pd.DataFrame({"lead_id": [3, 9, 3, 7, 3], "occurred_at": pd.to_datetime(["2025-01-05", "2025-01-01",
                                                                                        "2025-01-02", "2025-01-03",
                                                                                        "2025-01-04"]),
                           "event_type": ["page_view"] * 5})
    rows = read_events_frame(events, pd.Index([7, 3]), SPEC.event_keys_with_other)
    grouped = group_events(*rows, 2)
    assert grouped.start.tolist() == [0, 1, 4]  # lead 7 has one event, lead 3 three, lead 9 none kept
    day = 86_400_000_000
    assert (grouped.ts[1:] // day - grouped.ts[1:].min() // day).tolist() == [3, 0, 2]  # file order within a lead


def test_threads_over_slices_give_the_same_rows(monkeypatch, tmp_path):
    from features import event_pass

    rng = np.random.default_rng(9)
    events, snapshots = messy_events(rng, n=20_000, ids=400), snapshots_of(rng, ids=400)
    path = tmp_path / "events.parquet"
    events.to_parquet(path, row_group_size=3_000)  # 7 row groups: runs of them read by different threads
    one = build_engagement_features(snapshots, path, SPEC)
    monkeypatch.setattr(event_pass, "worker_threads", lambda rows, **_: 3)  # uneven slices, more threads than cores
    pd.testing.assert_frame_equal(build_engagement_features(snapshots, path, SPEC), one, check_exact=True)


def test_runs_of_row_groups_cover_the_file_in_order():
    from features.event_rows import _runs_of_row_groups

    assert _runs_of_row_groups([10, 10, 10, 10], 2) == [([0, 1], 0), ([2, 3], 20)]
    assert _runs_of_row_groups([30, 5, 5], 3) == [([0], 0), ([1], 30), ([2], 35)]
    assert _runs_of_row_groups([7], 4) == [([0], 0)]
    assert _runs_of_row_groups([], 2) == [([], 0)]


@pytest.mark.parametrize("ids_as", ["int", "str"])
def test_events_read_once_for_a_lead_base_give_each_chunks_features(tmp_path, ids_as):
    """LeadEvents (batch scoring's one read) against reading the file for each chunk: every cell equal.

    The base has leads without events and the file events of leads outside the base; the chunks
    hold several snapshots of a lead at different times, so events at or after each as_of stay unseen.
    """
    from features.lead_events import LeadEvents

    rng = np.random.default_rng(21)
    events, snapshots = messy_events(rng, n=8_000, ids=60), snapshots_of(rng, ids=60)
    base = pd.Series(np.arange(-3, 55))  # ids 55..64 of the file are another base's; -3..-1 have no events
    if ids_as == "str":
        events = events.assign(lead_id=events["lead_id"].map(lambda i: f"L{i:03d}"))
        snapshots = snapshots.assign(lead_id=snapshots["lead_id"].map(lambda i: f"L{i:03d}"))
        base = base.map(lambda i: f"L{i:03d}")
    snapshots = snapshots[snapshots["lead_id"].isin(base)]
    path = tmp_path / "events.parquet"
    events.to_parquet(path, row_group_size=2_000)
    once = LeadEvents.read(path, base, SPEC.event_keys_with_other)
    for chunk in (snapshots.iloc[:25], snapshots.iloc[25:], snapshots.iloc[:0]):
        expected = build_engagement_features(chunk, path, SPEC)
        pd.testing.assert_frame_equal(build_engagement_features(chunk, once, SPEC), expected, check_exact=True)
    assert build_engagement_features(snapshots, once, SPEC)["events_any_total"].sum() > 0
    outside = pd.DataFrame({"lead_id": [55 if ids_as == "int" else "L055"], "as_of": [pd.Timestamp("2025-03-01")]})
    with pytest.raises(ValueError, match=r"another set of leads.*55"):  # in the file, not in the base
        build_engagement_features(outside, once, SPEC)
    with pytest.raises(ValueError, match="grouped for event types"):
        build_engagement_features(snapshots, once, FeatureSpec(event_types=("demo_request",)))


@pytest.mark.parametrize("unit", ["ns", "us", "ms", "s"])
@pytest.mark.parametrize("with_nulls", [True, False])
def test_parquet_times_of_every_unit_with_and_without_nulls_match_duckdb(tmp_path, monkeypatch, unit, with_nulls):
    """The reader's kernel converts each unit itself, and skips null flags for columns without nulls.

    Some times lie before 1970 (negative nanoseconds round half away from zero, as DuckDB's cast does).
    Ten snapshots have two events of different types exactly at their as_of (unseen) and one just
    before it (seen); a lead without events has two snapshots; other leads have several.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(31)
    events, snapshots = messy_events(rng, n=4_000), snapshots_of(rng)
    early = events.index[::7]
    events.loc[early, "occurred_at"] = pd.Timestamp("1969-12-31") + pd.to_timedelta(
        rng.integers(0, 2 * 86_400 * 10**9, len(early)), "ns")
    if not with_nulls:
        events = events.dropna().reset_index(drop=True)
    tied = snapshots.index[:10]
    moments = pd.Timestamp("2025-02-10") + pd.to_timedelta(np.arange(10), "D")  # whole seconds in every unit
    snapshots.loc[tied, "as_of"] = moments
    at_as_of = [pd.DataFrame({"lead_id": snapshots.loc[tied, "lead_id"].to_numpy(), "occurred_at": when,
                              "event_type": kind}) for when, kind in ((moments, "free_trial_start"), (moments, "webinar_attended"),
                                                                      (moments - pd.Timedelta(1, "us"), "unsubscribe"))]
    events = pd.concat([events, *at_as_of], ignore_index=True)
    without = pd.DataFrame({"lead_id": [999, 999], "as_of": [moments[0], moments[5]]}, index=[-1, -2])
    snapshots = pd.concat([snapshots, without])
    table = pa.Table.from_pandas(events, preserve_index=False)
    table = table.set_column(1, "occurred_at", table.column("occurred_at").cast(pa.timestamp(unit), safe=False))
    path = tmp_path / "events.parquet"
    pq.write_table(table, path, row_group_size=1_500)
    from_parquet = build_engagement_features(snapshots, path, SPEC)
    monkeypatch.setattr(engagement, "IN_MEMORY_MAX_EVENTS", -1)
    from_duckdb = build_engagement_features(snapshots, table.to_pandas(), SPEC)
    pd.testing.assert_frame_equal(from_parquet, from_duckdb, check_exact=False, rtol=1e-12, atol=0)
    assert from_parquet["events_any_total"].sum() > 0
    at = from_parquet.loc[tied]
    assert np.isnan(at["days_since_free_trial_start"]).all() and np.isnan(at["days_since_webinar_attended"]).all()
    assert ((at["days_since_unsubscribe"] > 0) & (at["days_since_unsubscribe"] <= 1 / 86_400)).all()  # 1 us, 1 ms or 1 s
    assert (from_parquet.loc[[-1, -2], "events_any_total"] == 0).all()
    assert from_parquet.loc[[-1, -2], "days_since_any_event"].isna().all()
