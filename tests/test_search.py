"""Time-budgeted hyperparameter search: defaults first, the budget respected, the best validation trial kept."""

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.spec import FeatureSpec
from training.pipeline import TrainingConfig, train_on_table
from training.search import DEFAULTS, search_lightgbm

SPEC = FeatureSpec(categorical_columns=("Source",), numeric_columns=("Visits", "Pages"), job_title_column=None,
                   email_column=None, event_log=False, lead_age=False)


def table(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    visits, pages = rng.gamma(2.0, 5.0, n), rng.gamma(1.5, 3.0, n)
    source = rng.choice(["web", "ads", "referral"], size=n)
    logit = -1.0 + 0.15 * (visits - 10) + 0.8 * (source == "referral") - 0.02 * (pages - 4) ** 2
    won = rng.random(n) < 1 / (1 + np.exp(-logit))
    leads = pd.DataFrame({"lead_id": [f"L{i}" for i in range(n)], "Source": source, "Visits": visits, "Pages": pages})
    return leads, pd.Series(won.astype(float))


def test_search_tries_the_defaults_first_and_keeps_the_best_validation_trial():
    leads, labels = table()
    from features.build import build_features
    X = build_features(pd.DataFrame({"lead_id": leads["lead_id"], "as_of": pd.NaT}), leads, None, SPEC)
    y = labels.to_numpy(dtype=int)
    train, validation = np.arange(len(y)) < 1000, np.arange(len(y)) >= 1000
    started = time.monotonic()
    model, params, trials = search_lightgbm(SPEC, X[train], y[train], X[validation], y[validation], seconds=4,
                                            log=lambda line: None)
    elapsed = time.monotonic() - started
    assert elapsed < 4 + 3  # the deadline holds, give or take one trial's scoring
    first = trials.iloc[0]
    assert {key: first[key] for key in DEFAULTS} == pytest.approx(DEFAULTS)
    complete = trials[trials["state"] == "COMPLETE"]
    assert len(complete) >= 1
    best = complete["validation_roc_auc"].max()
    assert roc_auc_score(y[validation], model.predict_proba(X[validation])[:, 1]) == pytest.approx(best)
    assert params == {key: complete.loc[complete["validation_roc_auc"].idxmax(), key] for key in DEFAULTS}
    with pytest.raises(ValueError, match="'seconds' parameter of search_lightgbm must be positive"):
        search_lightgbm(SPEC, X[train], y[train], X[validation], y[validation], seconds=0)


def test_training_with_a_search_logs_its_trials():
    leads, labels = table()
    lines = []
    result = train_on_table(leads, labels, spec=SPEC, config=TrainingConfig(search_seconds=3), log=lines.append)
    trials = result.tables["search_trials"]
    assert result.metrics["search_trials"] == (trials["state"] == "COMPLETE").sum() >= 1
    assert set(result.params["searched_lightgbm"]) == set(DEFAULTS)
    assert result.metrics["validation_roc_auc_lightgbm"] == pytest.approx(trials["validation_roc_auc"].max())
    assert any(line.startswith("hyperparameter search: ") for line in lines)


def test_search_trials_fit_with_the_training_weights():
    """With per-lead weights, the searched defaults are the weighted default model, not the unweighted one."""
    from features.build import build_features
    from models.estimators import make_lightgbm

    leads, labels = table()
    X = build_features(pd.DataFrame({"lead_id": leads["lead_id"], "as_of": pd.NaT}), leads, None, SPEC)
    y = labels.to_numpy(dtype=int)
    train, validation = np.arange(len(y)) < 1000, np.arange(len(y)) >= 1000
    weight = np.where(np.arange(1000) % 3 == 0, 2.5, 0.25)
    searched, _, _ = search_lightgbm(SPEC, X[train], y[train], X[validation], y[validation], seconds=60,
                                     max_trials=1, sample_weight=weight, log=lambda line: None)
    reference = make_lightgbm(SPEC, random_state=0, n_jobs=1).fit(X[train], y[train], classifier__sample_weight=weight)
    unweighted = make_lightgbm(SPEC, random_state=0, n_jobs=1).fit(X[train], y[train])
    got = searched.predict_proba(X[validation])[:, 1]
    assert np.allclose(got, reference.predict_proba(X[validation])[:, 1], rtol=0, atol=1e-12)
    assert not np.allclose(got, unweighted.predict_proba(X[validation])[:, 1], rtol=0, atol=1e-6)


def test_on_small_data_every_trial_can_split_its_trees():
    """326 training rows: a leaf minimum above a quarter of them (81) would leave every tree one leaf."""
    from features.build import build_features

    leads, labels = table(n=500, seed=1)
    X = build_features(pd.DataFrame({"lead_id": leads["lead_id"], "as_of": pd.NaT}), leads, None, SPEC)
    y = labels.to_numpy(dtype=int)
    train, validation = np.arange(len(y)) < 326, np.arange(len(y)) >= 326
    model, params, trials = search_lightgbm(SPEC, X[train], y[train], X[validation], y[validation], seconds=60,
                                            max_trials=6, n_jobs=1, log=lambda line: None)
    assert trials["min_child_samples"].max() <= 326 // 4 and trials["min_child_samples"].min() >= 1
    assert trials.iloc[0]["min_child_samples"] == 81  # the defaults first, their 200 capped as training caps it
    booster = model.named_steps["classifier"].booster_
    assert booster.dump_model()["tree_info"][0]["num_leaves"] > 1
    assert roc_auc_score(y[validation], model.predict_proba(X[validation])[:, 1]) > 0.6
