"""The single-lead route (``models.lead_scorer``) gives the batch path's numbers and texts, lead by lead."""

import numpy as np
import pandas as pd
import pytest

from scoring.lead_requests import Lead, lead_blocks, lead_features
from models.lead_scorer import LeadScorer, lead_scorer

KINDS = ("logistic", "lightgbm")


def _random_leads(crm, rng, n: int, as_of: pd.Timestamp) -> list[Lead]:
    """``n`` leads of the synthetic CRM with their events, some attributes blanked, unknown or odd."""
    leads = crm.leads[crm.leads["created_at"] < as_of]
    leads = leads.iloc[rng.choice(len(leads), size=n, replace=False)]
    events = crm.events[crm.events["lead_id"].isin(leads["lead_id"])]
    history = {lead_id: group for lead_id, group in events.groupby("lead_id")}
    attributes = [column for column in leads.columns if column not in ("lead_id", "created_at")]
    bodies = []
    for lead in leads.itertuples(index=False):
        values = {column: getattr(lead, column) for column in attributes}
        values = {column: None if value is None or (isinstance(value, float) and np.isnan(value))
                  else value.item() if isinstance(value, np.generic) else value for column, value in values.items()}
        for column in attributes:
            draw = rng.uniform()
            if draw < 0.08:
                values[column] = None
            elif draw < 0.12 and isinstance(values[column], str):
                values[column] = "Atlantis " + values[column]  # a category the model never saw
            elif draw < 0.15 and isinstance(values[column], (int, float)):
                values[column] = 0  # an edge value: zero size or revenue (negative ones are refused with a 422)
        own = history.get(lead.lead_id, events.iloc[:0])
        # Some events fall after as_of (they must not count), some leads have none.
        keep = own.iloc[:int(rng.integers(0, 40))]
        bodies.append(Lead.model_validate({
            "lead_id": int(lead.lead_id), "created_at": lead.created_at.isoformat(), "attributes": values,
            "events": [{"occurred_at": t.isoformat(), "event_type": str(kind)}
                       for t, kind in zip(keep["occurred_at"], keep["event_type"])]}))
    return bodies


def _assert_same(fast: dict, scores: pd.Series, reasons: tuple) -> None:
    assert fast["probability"] == pytest.approx(scores["probability"], abs=1e-12, rel=0)
    assert (fast["score"], fast["tier"], fast["fit_score"], fast["engagement_score"]) == (
        scores["score"], scores["tier"], scores["fit_score"], scores["engagement_score"])
    for ours, theirs in zip(fast["reasons"], reasons):
        assert [(r.factor, r.text) for r in ours] == [(r.factor, r.text) for r in theirs]
        np.testing.assert_allclose([r.impact for r in ours], [r.impact for r in theirs], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_one_lead_at_a_time_equals_the_batch_path_on_many_random_leads(small_models, kind):
    bundle, crm = small_models[kind], small_models["crm"]
    scorer = lead_scorer(bundle)
    assert isinstance(scorer, LeadScorer)
    rng = np.random.default_rng(7)
    for as_of in (crm.end - pd.Timedelta(days=3), crm.end - pd.Timedelta(days=200, hours=5)):
        bodies = _random_leads(crm, rng, 300, as_of)
        # 300 leads: the batch route (build_features; scikit-learn's transform for the logistic model).
        features = lead_features(bundle.spec, bodies, as_of)
        scores, reasons = bundle.score_with_reasons(features)
        direct = bundle.predict_probability(features)  # the calibrated model's own predict_proba
        texts = 0
        for i, body in enumerate(bodies):
            (fast,) = scorer.score(*lead_blocks(bundle.spec, [body], as_of))
            _assert_same(fast, scores.iloc[i], reasons[i])
            assert fast["probability"] == pytest.approx(direct[i], abs=1e-12, rel=0)
            texts += len(fast["reasons"][0]) + len(fast["reasons"][1])
        assert texts > 2 * len(bodies)  # reasons were compared, not just empty lists


@pytest.mark.parametrize("kind", KINDS)
def test_a_few_leads_and_feature_rows_together_keep_their_order(small_models, kind):
    bundle, crm = small_models[kind], small_models["crm"]
    as_of = crm.end - pd.Timedelta(days=10)
    bodies = _random_leads(crm, np.random.default_rng(3), 12, as_of)
    features = lead_features(bundle.spec, bodies, as_of)
    scores, reasons = bundle.score_with_reasons(features)
    rows = [{name: None if pd.isna(value) else value.item() if isinstance(value, np.generic) else value
             for name, value in features.iloc[i].items()} for i in (1, 4)]
    mixed = [bodies[0], Lead(features=rows[0]), bodies[2], Lead(features=rows[1])]
    results = lead_scorer(bundle).score(*lead_blocks(bundle.spec, mixed, as_of))
    for fast, i in zip(results, (0, 1, 2, 4)):
        _assert_same(fast, scores.iloc[i], reasons[i])


def test_feature_rows_with_numbers_as_text_and_many_leads_are_left_to_the_batch_path(small_models):
    bundle = small_models["logistic"]
    features = small_models["features"].iloc[:1]
    row = {name: None if pd.isna(value) else value.item() if isinstance(value, np.generic) else value
           for name, value in features.iloc[0].items()}
    numeric = bundle.spec.feature_names[len(bundle.spec.categorical_feature_names)]
    as_of = pd.Timestamp("2026-01-01")
    assert lead_blocks(bundle.spec, [Lead(features={**row, numeric: "7"})], as_of) is None
    assert lead_blocks(bundle.spec, [Lead(features=row)] * 9, as_of) is None
    labels, numbers = lead_blocks(bundle.spec, [Lead(features=row)] * 8, as_of)
    assert len(labels) == 8 and numbers.shape == (8, len(bundle.spec.feature_names) - len(labels[0]))


def test_a_segmented_model_has_no_single_lead_scorer(small_models):
    from dataclasses import replace

    class Segmented:
        route = None

    assert lead_scorer(replace(small_models["logistic"], model=Segmented())) is None


def test_stale_warnings_count_only_events_before_as_of_in_utc():
    from scoring.lead_requests import stale_warnings

    as_of = pd.Timestamp("2026-03-01 00:00")
    lead = Lead.model_validate({"created_at": "2025-10-01T00:00:00+02:00", "events": [
        {"occurred_at": "2026-01-01T01:00:00+01:00", "event_type": "page_view"},  # 2026-01-01 00:00 UTC
        {"occurred_at": "2026-03-01T00:00:00Z", "event_type": "demo_request"}]})  # at as_of: unseen
    idle = Lead.model_validate({"created_at": "2025-10-01T00:00:00+02:00"})  # 2025-09-30 22:00 UTC
    recent = Lead.model_validate({"created_at": "2026-02-20T00:00:00Z"})
    warnings = stale_warnings([lead, idle, recent, Lead(features={})], as_of, horizon_days=90)
    assert [w.split(";")[0] for w in warnings] == [
        "body.0: the newest event is 59 days before as_of 2026-03-01 00:00:00",
        "body.1: the newest event is 151 days before as_of 2026-03-01 00:00:00"]


def test_stale_warnings_start_just_past_a_quarter_of_the_horizon():
    from scoring.lead_requests import stale_warnings

    # A 90-day horizon allows 22.5 days (features.freshness): 22 days 12 h is fresh, a microsecond more is not.
    as_of = pd.Timestamp("2026-03-01 00:00")
    at_limit = Lead.model_validate({"created_at": "2026-01-01T00:00:00Z", "events": [
        {"occurred_at": "2026-02-06T12:00:00Z", "event_type": "page_view"}]})
    past = Lead.model_validate({"created_at": "2026-01-01T00:00:00Z", "events": [
        {"occurred_at": "2026-02-06T11:59:59.999999Z", "event_type": "page_view"}]})
    assert stale_warnings([at_limit], as_of, horizon_days=90) == []
    assert [w.split(";")[0] for w in stale_warnings([at_limit, past], as_of, horizon_days=90)] == [
        "body.1: the newest event is 22 days before as_of 2026-03-01 00:00:00"]
    assert stale_warnings([past], as_of, horizon_days=None) == []  # no horizon: 30 days allowed


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_the_calibration_map_gives_the_calibrators_own_numbers(small_models, method):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    from models.estimators import inner_pipeline
    from models.explain import calibration_map

    pipeline = inner_pipeline(small_models["logistic"].model)
    features = small_models["features"]
    labels = (np.random.default_rng(0).uniform(size=len(features)) < 0.2).astype(int)
    model = CalibratedClassifierCV(FrozenEstimator(pipeline), method=method, ensemble=False).fit(features, labels)
    margins = np.concatenate([pipeline.decision_function(features.iloc[:200]), [-60.0, -3.5, 0.0, 2.25, 60.0]])
    expected = np.clip(model.calibrated_classifiers_[0].calibrators[0].predict(margins), 0, 1)
    np.testing.assert_array_equal(calibration_map(model)(margins), expected)
    np.testing.assert_array_equal(calibration_map(model)(margins[:1]), expected[:1])
