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


@pytest.fixture(scope="module")
def monthly():
    crm = generate_crm(6_000, seed=11)
    snapshots = _monthly_snapshots(crm)
    return crm, snapshots, crm.filtered_probability(snapshots, 90)


def test_filtered_probability_is_calibrated_on_monthly_snapshots(monthly):
    crm, snapshots, filtered = monthly
    assert filtered.shape == (len(snapshots),) and ((filtered >= 0) & (filtered <= 1)).all()
    error = 2 * np.sqrt(np.sum(filtered * (1 - filtered))) / len(filtered)
    assert abs(snapshots["label"].mean() - filtered.mean()) < 4 * error
    for share in (0.5, 0.9, 0.98):  # the top of the ranking too, where the stage decides
        top = filtered >= np.quantile(filtered, share)
        assert abs(snapshots.loc[top, "label"].mean() - filtered[top].mean()) < 0.05


def test_filtered_probability_ranks_between_a_simple_model_and_the_oracle(monthly):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    crm, snapshots, filtered = monthly
    # The simple model knows the fit level too and is scored on its own training rows: recent counts
    # per event type and the days since the last event, the features a stage shows itself in.
    joined = snapshots[["lead_id", "as_of"]].reset_index().merge(crm.events, on="lead_id")
    joined = joined.loc[joined["occurred_at"] < joined["as_of"]]
    recent = joined.loc[joined["occurred_at"] >= joined["as_of"] - pd.Timedelta(days=30)]
    counts = pd.crosstab(recent["index"], recent["event_type"]).reindex(
        index=snapshots.index, columns=list(EVENT_TYPES), fill_value=0)
    silent_days = (snapshots["as_of"] - joined.groupby("index")["occurred_at"].max().reindex(snapshots.index))
    level = crm.truth.leads.set_index("lead_id")["fit_level"].reindex(snapshots["lead_id"]).to_numpy()
    features = np.column_stack([level, np.log1p(counts.to_numpy()),
                                np.log1p((silent_days.dt.total_seconds() / 86_400).fillna(999).to_numpy())])
    labels = snapshots["label"].to_numpy()
    simple = LogisticRegression(max_iter=2_000).fit(features, labels).predict_proba(features)[:, 1]
    auc = {name: roc_auc_score(labels, p) for name, p in (
        ("simple", simple), ("filtered", filtered),
        ("oracle", crm.oracle_probability(snapshots, 90)))}
    assert auc["simple"] + 0.003 < auc["filtered"] < auc["oracle"], auc


def test_filtered_probability_of_a_silent_lead_is_the_chain_without_events(crm):
    """No event since creation: the stage posterior is the no-event chain's, integrated over activity and address."""
    from scipy.linalg import expm

    from crm.synthetic_world import BOUNCE_RATE, EMAIL_ONLY, EVENT_RATES

    truth, horizon = crm.truth, 90
    closed = crm.deals.set_index("lead_id")["closed_at"]
    leads = crm.leads.set_index("lead_id")
    no_events = crm.events.iloc[:0]
    aware, cold = STAGES.index("aware"), STAGES.index("cold")
    good_rates = EVENT_RATES.sum(axis=1)
    bad_rates = np.delete(EVENT_RATES, EMAIL_ONLY, axis=1).sum(axis=1) + BOUNCE_RATE
    bad_share = 0.07 * 0.20 + 0.93 * 0.04  # purchased lists are 7% of leads and bounce more
    for days in (15.0, 45.0, 200.0):  # the last one is all but surely cold: a long silence in logs
        as_of = leads["created_at"] + pd.Timedelta(days=days)
        still_open = (as_of < closed.reindex(leads.index).fillna(crm.end)) & (as_of <= crm.end)
        lead_id = still_open.index[still_open.to_numpy()][40]
        as_of = as_of[lead_id]
        level = int(truth.leads.set_index("lead_id").loc[lead_id, "fit_level"])
        q = truth.generators[level][:4, :4]

        def stage_mass(rates, unsubscribes):
            """E over the lognormal activity (Gauss-Hermite) of P(no event, no close, stage at as_of)."""
            silent = np.zeros((4, 4))  # joining engaged or evaluating is always an event; cold sometimes is
            silent[:, cold] = q[:, cold] * (1 - unsubscribes)
            silent[cold, cold] = 0.0
            z, weight = np.polynomial.hermite_e.hermegauss(60)
            return sum(w * expm((silent + np.diag(np.diag(q) - np.exp(-0.045 + 0.3 * x) * rates)) * days)[aware]
                       for x, w in zip(z, weight)) / np.sqrt(2 * np.pi)

        mass = (1 - bad_share) * stage_mass(good_rates, 0.3) + bad_share * stage_mass(bad_rates, 0.0)
        expected = mass / mass.sum() @ truth.won_within(horizon)[level, :4]
        snapshot = pd.DataFrame({"lead_id": [lead_id], "as_of": [as_of]})
        got = truth.filtered_probability(snapshot, no_events, horizon)
        np.testing.assert_allclose(got, [expected], rtol=3e-4)  # 33 activity nodes vs quadrature
        # Silence is news: the longer it lasts, the likelier the lead went cold.
        assert mass[cold] / mass.sum() > 0.05


def test_filtered_probability_sees_only_events_before_as_of(monthly):
    crm, snapshots, filtered = monthly
    rows = snapshots.sample(500, random_state=3).reset_index(drop=True)
    before = crm.filtered_probability(rows, 90)
    np.testing.assert_allclose(before, filtered[snapshots.sample(500, random_state=3).index])
    events = crm.events
    cutoff = events["lead_id"].map(rows.groupby("lead_id")["as_of"].min())
    kept = events.loc[~(events["occurred_at"] >= cutoff)]  # leads without a snapshot keep everything
    first_rows = rows["as_of"].eq(rows["lead_id"].map(rows.groupby("lead_id")["as_of"].min()))
    np.testing.assert_allclose(crm.truth.filtered_probability(rows.loc[first_rows], kept, 90), before[first_rows])
    shuffled = rows.sample(frac=1.0, random_state=4)
    np.testing.assert_allclose(crm.filtered_probability(shuffled, 90), before[shuffled.index])
    # Events change the answer: without them, every lead looks silent.
    assert not np.allclose(crm.truth.filtered_probability(rows, events.iloc[:0], 90), before)


def test_filtered_probability_refuses_what_it_cannot_filter(crm):
    lead = crm.leads.iloc[100]
    snapshot = pd.DataFrame({"lead_id": [lead["lead_id"]], "as_of": [lead["created_at"] + pd.Timedelta(days=30)]})
    foreign = pd.DataFrame({"lead_id": [lead["lead_id"]], "occurred_at": [lead["created_at"] + pd.Timedelta(days=1)],
                            "event_type": ["phone_call"]})
    with pytest.raises(ValueError, match="only the event types"):
        crm.truth.filtered_probability(snapshot, foreign)
    before = snapshot.assign(as_of=lead["created_at"] - pd.Timedelta(days=1))
    with pytest.raises(ValueError, match="created before as_of"):
        crm.truth.filtered_probability(before, crm.events)
    with pytest.raises(ValueError, match="'horizon_days' parameter of filtered_probability"):
        crm.truth.filtered_probability(snapshot, crm.events, 0)


def test_fit_prior_from_the_exported_attributes_is_calibrated(crm):
    from crm.synthetic_filter import first_touches, fit_prior
    from crm.synthetic_world import event_frame

    ids = crm.leads["lead_id"].to_numpy()
    query = pd.DataFrame({"lead_id": ids, "created": crm.leads["created_at"].to_numpy()})
    prior = fit_prior(crm.leads, ids, first_touches(event_frame(crm.events), query), np.random.default_rng(0))
    assert prior.shape == (len(ids), 2, 64) and np.allclose(prior.sum(axis=(1, 2)), 1.0)
    truth = crm.truth.leads
    on_truth = prior[np.arange(len(ids)), truth["bad_email"].astype(int), truth["fit_level"].astype(int)]
    # A calibrated distribution gives the truth, on average, the probability it expects to: sum of p^2.
    assert abs(on_truth.mean() - (prior**2).sum(axis=(1, 2)).mean()) < 0.012
    assert on_truth.mean() > 0.2  # and it is sharp: the fit noise spans about two levels
    expected_level = (prior.sum(axis=1) * np.arange(64)).sum(axis=1)
    assert abs((expected_level - truth["fit_level"]).mean()) < 0.2
    assert abs(prior[:, 1].sum(axis=1).mean() - truth["bad_email"].mean()) < 0.015


def test_filtered_probability_from_attributes_is_calibrated_and_below_the_fit_known_one(monthly):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    crm, snapshots, filtered = monthly
    rows = snapshots["as_of"].dt.month.isin([4, 10]).to_numpy()
    part = snapshots.loc[rows].reset_index(drop=True)
    inferred = crm.truth.filtered_probability(part, crm.events, 90, leads=crm.leads, activity_nodes=9)
    labels = part["label"].to_numpy()
    error = 2 * np.sqrt(np.sum(inferred * (1 - inferred))) / len(inferred)
    assert abs(labels.mean() - inferred.mean()) < 4 * error
    top = inferred >= np.quantile(inferred, 0.9)
    assert abs(labels[top].mean() - inferred[top].mean()) < 0.05
    # What the events alone show a simple model (no attributes) ranks below it; knowing the fit, above.
    joined = part[["lead_id", "as_of"]].reset_index().merge(crm.events, on="lead_id")
    recent = joined.loc[(joined["occurred_at"] < joined["as_of"])
                        & (joined["occurred_at"] >= joined["as_of"] - pd.Timedelta(days=30))]
    counts = pd.crosstab(recent["index"], recent["event_type"]).reindex(
        index=part.index, columns=list(EVENT_TYPES), fill_value=0)
    simple = LogisticRegression(max_iter=2_000).fit(np.log1p(counts), labels).predict_proba(np.log1p(counts))[:, 1]
    auc = {"simple": roc_auc_score(labels, simple), "inferred": roc_auc_score(labels, inferred),
           "fit known": roc_auc_score(labels, filtered[rows])}
    assert auc["simple"] + 0.02 < auc["inferred"] < auc["fit known"], auc
