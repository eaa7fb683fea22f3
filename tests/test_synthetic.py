"""The synthetic CRM: reproducible, contract-shaped, time-consistent, with an exact and calibrated oracle."""

import numpy as np
import pandas as pd
import pytest

from crm.synthetic import EVENT_TYPES, STAGES, generate_crm, load_truth, write_crm


@pytest.fixture(scope="module")
def crm():
    return generate_crm(2_000, seed=7)


def _monthly_snapshots(crm, *, horizon_days=90):
    """Open leads at each month start whose horizon ends inside the data, labelled won-within-horizon."""
    leads, deals = crm.leads, crm.deals
    closed = deals.groupby("lead_id")["closed_at"].min()
    won = deals.loc[deals["outcome"] == "won"].set_index("lead_id")["closed_at"]
    horizon = pd.Timedelta(days=horizon_days)
    first = leads["created_at"].min().normalize() + pd.offsets.MonthBegin(1)
    frames = []
    for as_of in pd.date_range(first, crm.end - horizon, freq="MS"):
        ids = leads.loc[leads["created_at"] < as_of, "lead_id"]
        ids = ids[~(closed.reindex(ids) < as_of).to_numpy()]
        won_at = won.reindex(ids)
        label = ((won_at >= as_of) & (won_at < as_of + horizon)).to_numpy()
        frames.append(pd.DataFrame({"lead_id": ids.to_numpy(), "as_of": as_of, "label": label.astype(int)}))
    return pd.concat(frames, ignore_index=True)


def test_same_seed_same_frames_and_other_seed_differs(crm):
    again = generate_crm(2_000, seed=7)
    for name in ("leads", "events", "deals"):
        pd.testing.assert_frame_equal(getattr(crm, name), getattr(again, name))
    pd.testing.assert_frame_equal(crm.truth.spells, again.truth.spells)
    other = generate_crm(2_000, seed=8)
    assert not crm.events.equals(other.events)


def test_tables_follow_the_data_contract(crm):
    leads, events, deals = crm.leads, crm.events, crm.deals
    assert list(leads.columns) == ["lead_id", "created_at", "job_title", "industry", "company_size",
                                   "annual_revenue", "country", "lead_source", "email"]
    assert leads["lead_id"].dtype == np.int64 and leads["lead_id"].is_unique and len(leads) == 2_000
    assert leads["created_at"].dtype == "datetime64[ns]"
    assert leads["company_size"].dtype == float and leads["annual_revenue"].dtype == float
    assert list(events.columns) == ["lead_id", "occurred_at", "event_type", "channel"]
    assert events["occurred_at"].dtype == "datetime64[ns]" and events["lead_id"].dtype == np.int64
    assert set(events["event_type"]) <= set(EVENT_TYPES)
    assert {"demo_request", "pricing_page_view", "email_bounce"} <= set(events["event_type"])
    assert list(deals.columns) == ["lead_id", "closed_at", "outcome", "amount"]
    assert set(deals["outcome"]) == {"won", "lost"} and (deals["amount"] > 0).all()
    assert deals["lead_id"].is_unique


def test_export_is_messy_like_a_real_one(crm):
    industry = crm.leads["industry"]
    assert industry.isna().any() and (industry == "Select").any()
    assert {"Software", "software", "SOFTWARE"} <= set(industry.dropna())
    assert industry.dropna().str.endswith(" ").any()
    assert crm.leads["company_size"].isna().any() and crm.leads["job_title"].isna().any()
    assert crm.leads["email"].str.contains("@gmail.com").any()
    assert 0.005 < crm.events.duplicated().mean() < 0.02


def test_nothing_happens_before_creation_or_after_end(crm):
    created = crm.leads.set_index("lead_id")["created_at"]
    events, deals = crm.events, crm.deals
    assert (events["occurred_at"].to_numpy() >= created.reindex(events["lead_id"]).to_numpy()).all()
    assert (events["occurred_at"] < crm.end).all()
    assert (deals["closed_at"].to_numpy() >= created.reindex(deals["lead_id"]).to_numpy()).all()
    assert (deals["closed_at"] < crm.end).all()


def test_deals_are_exactly_the_absorbed_leads(crm):
    spells = crm.truth.spells
    absorbed = spells.loc[spells["stage"].isin(["won", "lost"])].set_index("lead_id")
    deals = crm.deals.set_index("lead_id")
    assert set(deals.index) == set(absorbed.index)
    assert (deals["outcome"] == absorbed.loc[deals.index, "stage"]).all()
    assert (deals["closed_at"] == absorbed.loc[deals.index, "started_at"]).all()


def test_oracle_is_a_probability_ordered_by_stage(crm):
    table = crm.truth.won_within(90)
    assert ((table >= 0) & (table <= 1)).all()
    aware, engaged, evaluating, cold = (STAGES.index(s) for s in ("aware", "engaged", "evaluating", "cold"))
    assert (table[:, evaluating] > table[:, engaged]).all() and (table[:, engaged] > table[:, aware]).all()
    assert (table[:, aware] > table[:, cold]).all()
    assert (np.diff(table[:, evaluating]) > 0).all()  # better fit, better odds


@pytest.mark.parametrize("level, stage", [(20, "aware"), (32, "engaged"), (40, "evaluating"), (28, "cold")])
def test_oracle_matches_a_monte_carlo_of_the_chain(crm, level, stage):
    horizon, n_paths = 90.0, 20_000
    q = crm.truth.generators[level]
    rng = np.random.default_rng(level)
    state = np.full(n_paths, STAGES.index(stage))
    time = np.zeros(n_paths)
    alive = np.ones(n_paths, dtype=bool)
    while alive.any():  # plain Gillespie, one jump at a time for all paths
        idx = np.flatnonzero(alive)
        rates = np.clip(q[state[idx]], 0, None)
        total = rates.sum(axis=1)
        time[idx] += rng.exponential(1.0 / total)
        jumped = time[idx] < horizon
        probs = rates[jumped] / total[jumped, None]
        nxt = (rng.random(jumped.sum())[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
        state[idx[jumped]] = nxt
        alive[idx[~jumped]] = False
        alive[idx[jumped]] = ~np.isin(nxt, [STAGES.index("won"), STAGES.index("lost")])
    estimate = np.mean(state == STAGES.index("won"))
    exact = crm.truth.won_within(horizon)[level, STAGES.index(stage)]
    assert abs(estimate - exact) < 4 * np.sqrt(exact * (1 - exact) / n_paths) + 1e-3


def test_oracle_is_calibrated_on_monthly_snapshots():
    crm = generate_crm(6_000, seed=11)
    snapshots = _monthly_snapshots(crm)
    oracle = crm.oracle_probability(snapshots, 90)
    assert oracle.shape == (len(snapshots),) and ((oracle >= 0) & (oracle <= 1)).all()
    # Snapshots of one lead are correlated: allow twice the independent-rows standard error.
    error = 2 * np.sqrt(np.sum(oracle * (1 - oracle))) / len(oracle)
    assert abs(snapshots["label"].mean() - oracle.mean()) < 4 * error
    top = oracle >= np.quantile(oracle, 0.9)
    assert abs(snapshots.loc[top, "label"].mean() - oracle[top].mean()) < 0.05
    assert 0.03 <= snapshots["label"].mean() <= 0.15


def test_oracle_refuses_snapshots_it_cannot_know(crm):
    lead = crm.leads.iloc[100]
    before = pd.DataFrame({"lead_id": [lead["lead_id"]], "as_of": [lead["created_at"] - pd.Timedelta(days=1)]})
    with pytest.raises(ValueError, match="created before as_of"):
        crm.oracle_probability(before)
    after = pd.DataFrame({"lead_id": [lead["lead_id"]], "as_of": [crm.end + pd.Timedelta(days=1)]})
    with pytest.raises(ValueError, match="must not lie after"):
        crm.oracle_probability(after)
    with pytest.raises(ValueError, match="horizon_days"):
        crm.oracle_probability(before, 0)


def test_generate_refuses_bad_sizes():
    with pytest.raises(ValueError, match="'n_leads' parameter of generate_crm"):
        generate_crm(0)
    with pytest.raises(ValueError, match="'months' parameter of generate_crm"):
        generate_crm(10, months=0)


def test_write_and_load_truth_round_trip(crm, tmp_path):
    assert load_truth(tmp_path) is None
    write_crm(crm, tmp_path)
    for name in ("leads", "events", "deals"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / f"{name}.parquet"), getattr(crm, name))
    truth = load_truth(tmp_path)
    snapshots = _monthly_snapshots(crm)
    np.testing.assert_allclose(truth.oracle_probability(snapshots, 90), crm.oracle_probability(snapshots, 90))
    np.testing.assert_allclose(truth.oracle_probability(snapshots, 30), crm.oracle_probability(snapshots, 30))
