"""Per-lead training weights: each lead weighs one, shared by its snapshots."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from training.weights import fit_weighted, lead_weights


def test_each_lead_weighs_the_same_and_weights_average_one():
    # Lead 7 has three rows, 9 and 5 one each: raw weights 1/3, 1/3, 1, 1/3, 1 sum to 3 over
    # 5 rows, rescaled by 5/3 -> 5/9 for lead 7's rows, 5/3 for the others; each lead sums to 5/3.
    weight = lead_weights(pd.Series([7, 7, 9, 7, 5]))
    np.testing.assert_allclose(weight, [5 / 9, 5 / 9, 5 / 3, 5 / 9, 5 / 3])
    assert weight.mean() == pytest.approx(1.0)


def test_one_row_per_lead_gives_ones():
    np.testing.assert_array_equal(lead_weights(["a", "b", "c"]), [1.0, 1.0, 1.0])


def test_a_row_without_a_lead_is_an_error():
    with pytest.raises(ValueError, match="needs a lead for every row.*1 missing.*rows \\[1\\]"):
        lead_weights(pd.Series([1.0, np.nan, 2.0]))


def test_weights_reach_the_final_step_of_a_pipeline_as_repeated_rows_would():
    # A weight of 2 is the row twice for an L2 logistic regression (the loss is a sum over rows).
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=60), "z": rng.normal(size=60)})
    y = (X["x"] + rng.normal(size=60) > 0).astype(int).to_numpy()
    weight = np.where(np.arange(60) < 20, 2.0, 1.0)

    def make():
        # No scaler fitted on rows: the weighted and the repeated fit must see the same inputs.
        return Pipeline([("classifier", LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000))])

    weighted = fit_weighted(make(), X, y, weight)
    repeated = make().fit(pd.concat([X, X.iloc[:20]], ignore_index=True), np.concatenate([y, y[:20]]))
    np.testing.assert_allclose(weighted[-1].coef_, repeated[-1].coef_, rtol=1e-5)
    unweighted = make().fit(X, y)
    assert not np.allclose(weighted[-1].coef_, unweighted[-1].coef_, rtol=1e-3)


def test_equal_weights_fit_exactly_as_unweighted():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x": rng.normal(size=40)})
    y = (X["x"] > 0.2).astype(int).to_numpy()
    make = lambda: Pipeline([("scale", StandardScaler()), ("classifier", LogisticRegression())])  # noqa: E731
    np.testing.assert_array_equal(fit_weighted(make(), X, y, np.ones(40))[-1].coef_, make().fit(X, y)[-1].coef_)


def test_training_weighs_leads_for_the_listed_candidates_only():
    from crm.synthetic import generate_crm
    from training.pipeline import TrainingConfig, train_model

    crm = generate_crm(3000, months=15, seed=3)
    runs = {}
    for listed in (("lightgbm",), ()):
        runs[listed] = train_model(crm.leads, crm.events, crm.deals, log=lambda _: None,
                                   config=TrainingConfig(per_lead_candidates=listed, threads=1))
    weighted, unweighted = runs[("lightgbm",)].metrics, runs[()].metrics
    # Same rows, same seed: only the weights can move LightGBM; the logistic model is fitted per row in both.
    assert weighted["validation_roc_auc_logistic"] == unweighted["validation_roc_auc_logistic"]
    assert weighted["validation_roc_auc_lightgbm"] != unweighted["validation_roc_auc_lightgbm"]
    chosen = runs[("lightgbm",)].params["model"]
    assert runs[("lightgbm",)].params["weighted_per_lead"] is (chosen == "lightgbm")
    assert runs[()].params["weighted_per_lead"] is False


def test_the_weighted_candidates_are_a_list_of_names():
    from training.pipeline import TrainingConfig

    assert TrainingConfig(per_lead_candidates=["lightgbm"]).per_lead_candidates == ("lightgbm",)
    with pytest.raises(ValueError, match="'per_lead_candidates' parameter of TrainingConfig must be a list"):
        TrainingConfig(per_lead_candidates="lightgbm")


def _few_rows(n_rows, seed=0):
    """``n_rows`` snapshots of n_rows // 3 leads; conversion rises with x (about 20 % converted)."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x": rng.normal(size=n_rows), "z": rng.normal(size=n_rows),
                      "email_domain_type": rng.choice(["business", "free"], size=n_rows)})  # the spec's one category
    y = (X["x"] + rng.normal(size=n_rows) > 1.2).astype(int).to_numpy()
    return X, y, lead_weights(rng.integers(0, n_rows // 3, size=n_rows))


def _lightgbm():
    from features.spec import FeatureSpec
    from models.estimators import make_lightgbm

    return make_lightgbm(FeatureSpec(categorical_columns=(), numeric_columns=(), job_title_column=None),
                         n_estimators=60, n_jobs=1)


def test_lightgbm_splits_on_a_small_export_weighted_or_not():
    # 326 training rows (a 1,500-lead won-only export): with 200 rows required in each leaf no
    # split exists, so every tree was one leaf and the prediction a constant (AUC 0.5), with or
    # without per-lead weights. The leaf minimum is now a quarter of the rows: 81.
    from sklearn.metrics import roc_auc_score

    X, y, weight = _few_rows(326)
    assert weight.min() < 1 < weight.max() and weight.mean() == pytest.approx(1.0)
    for sample_weight in (None, weight):
        model = fit_weighted(_lightgbm(), X, y, sample_weight)
        assert model[-1].booster_.trees_to_dataframe()["split_feature"].notna().any()
        assert roc_auc_score(y, model.predict_proba(X)[:, 1]) > 0.75  # x alone gives about 0.8
        assert model.get_params()["classifier__min_child_samples"] == 326 // 4


def test_the_leaf_minimum_is_kept_where_it_leaves_room_to_split():
    X, y, weight = _few_rows(800)
    assert fit_weighted(_lightgbm(), X, y, weight).get_params()["classifier__min_child_samples"] == 200


def test_lightgbm_splits_do_not_depend_on_the_scale_of_the_weights():
    # Why per-lead weights were not the cause: multiplying every weight by c multiplies each leaf's
    # gradient and hessian sums by c, so without L2 (reg_lambda=0) the gains keep their order and
    # the leaf values -G/H and the weighted mean that starts the boosting are unchanged.
    X, y, weight = _few_rows(326)
    fits = [fit_weighted(_lightgbm().set_params(classifier__reg_lambda=0.0), X, y, weight * scale)
            for scale in (1.0, 1 / 40)]
    np.testing.assert_allclose(fits[0].predict_proba(X), fits[1].predict_proba(X), rtol=1e-6)
