"""Contributions are the model's own: with the base value they add up to its raw margin, row by row."""

import numpy as np
import pandas as pd
import pytest

from models.explain import explain, feature_groups, raw_margin, source_columns


@pytest.mark.parametrize("kind", ["logistic", "lightgbm"])
def test_contributions_plus_base_value_equal_the_raw_margin(small_models, kind):
    bundle, features = small_models[kind], small_models["features"].head(300)
    explanation = explain(bundle, features)
    reference = raw_margin(bundle.model, bundle.conform(features))
    total = explanation.base_value + explanation.contributions.to_numpy().sum(axis=1)
    np.testing.assert_allclose(total, reference, rtol=0, atol=1e-9)
    np.testing.assert_allclose(explanation.margin, reference, rtol=0, atol=1e-9)
    # The calibration map applied to that margin is the calibrated model's own probability.
    np.testing.assert_allclose(explanation.probability, bundle.predict_probability(features), rtol=0, atol=1e-12)
    assert list(explanation.contributions.columns) == bundle.spec.feature_names
    assert explanation.contributions.index.equals(features.index)


@pytest.mark.parametrize("kind", ["logistic", "lightgbm"])
def test_sub_scores_are_the_calibrated_base_plus_their_group(small_models, kind):
    bundle, features = small_models[kind], small_models["features"].head(100)
    explanation = explain(bundle, features)
    from models.explain import calibration_map

    to_probability = calibration_map(bundle.model)
    groups = feature_groups(bundle.spec)
    fit = [name for name in bundle.spec.feature_names if groups[name] == "fit"]
    expected = np.rint(100 * to_probability(explanation.base_value + explanation.contributions[fit].sum(axis=1)))
    np.testing.assert_array_equal(explanation.fit_score, expected)
    for scores in (explanation.fit_score, explanation.engagement_score):
        assert scores.dtype == np.int64 and ((scores >= 0) & (scores <= 100)).all()
    assert groups["lead_age_days"] == "engagement" and groups["email_domain_type"] == "fit"


def test_logistic_fit_score_ignores_events(small_models):
    """Additive model: a lead's fit score cannot depend on what it did."""
    bundle, features = small_models["logistic"], small_models["features"].head(50)
    quiet = features.copy()
    engagement = [name for name, group in feature_groups(bundle.spec).items() if group == "engagement"]
    quiet[engagement] = 0.0
    np.testing.assert_array_equal(explain(bundle, quiet).fit_score, explain(bundle, features).fit_score)


def test_one_hot_pieces_and_missing_indicators_belong_to_their_column(small_models):
    preprocess = small_models["logistic"].model.calibrated_classifiers_[0].estimator.estimator[0]
    owners = dict(zip(preprocess.get_feature_names_out(), source_columns(preprocess)))
    assert owners["industry_software"] == "industry"
    assert owners["job_function_marketing"] == "job_function"
    assert owners["missingindicator_days_since_demo_request"] == "days_since_demo_request"
    assert set(owners.values()) == set(small_models["logistic"].spec.feature_names)


def test_lightgbm_codes_match_the_pandas_path(small_models):
    """to_codes is how explain feeds LightGBM; it must match what transform + the pandas path give."""
    bundle, features = small_models["lightgbm"], small_models["features"].head(200)
    pipeline = bundle.model.calibrated_classifiers_[0].estimator.estimator
    codes = pipeline[0].to_codes(features)
    via_pandas = pipeline[-1].predict(pipeline[0].transform(bundle.conform(features)), raw_score=True)
    np.testing.assert_allclose(pipeline[-1].booster_.predict(codes, raw_score=True), via_pandas, atol=1e-12)
    unseen = features.head(1).assign(industry="underwater basket weaving")
    assert np.isnan(pipeline[0].to_codes(unseen)[0, list(features.columns).index("industry")])


def test_score_with_reasons_agrees_with_score(small_models):
    bundle, features = small_models["lightgbm"], small_models["features"].head(100)
    scores, reasons = bundle.score_with_reasons(features)
    plain = bundle.score(features)
    pd.testing.assert_frame_equal(scores[["probability", "score", "tier"]], plain, check_exact=False, atol=1e-12)
    assert len(reasons) == len(features)


@pytest.mark.parametrize("kind", ["logistic", "lightgbm"])
def test_no_rows_no_reasons(small_models, kind):
    scores, reasons = small_models[kind].score_with_reasons(small_models["features"].head(0))
    assert len(scores) == 0 and reasons == []
    assert list(scores.columns) == ["probability", "score", "tier", "fit_score", "engagement_score"]
