"""Calibration from scores computed once: the same maps and log losses as scikit-learn's refitting route."""

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from training.calibrate import _calibrate_by_refitting, calibrate


class _CountingLogistic(LogisticRegression):
    """A real logistic regression that counts the rows its decision function scores."""

    rows_predicted = 0

    def decision_function(self, X):
        self.rows_predicted += len(X)
        return super().decision_function(X)


def _fitted(X, y):
    model = _CountingLogistic().fit(X[::2], y[::2])  # fitted on other rows than it is calibrated on
    model.rows_predicted = 0
    return model


@pytest.fixture
def calibration_rows():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3_000, 2))
    y = (rng.random(3_000) < 1 / (1 + np.exp(-(2.5 * X[:, 0] - 1)))).astype(int)
    return X, y


def test_same_sigmoid_map_and_log_loss_as_refitting(calibration_rows):
    X, y = calibration_rows
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    reference, reference_losses = _calibrate_by_refitting(_fitted(X, y), X, y, methods=("sigmoid",), folds=folds)
    calibrated, losses = calibrate(_fitted(X, y), X, y, methods=("sigmoid",))
    assert losses["sigmoid"] == pytest.approx(reference_losses["sigmoid"], abs=1e-12)
    assert calibrated.method == reference.method == "sigmoid"
    probe = np.random.default_rng(5).normal(size=(400, 2)) * 2
    np.testing.assert_allclose(calibrated.predict_proba(probe), reference.predict_proba(probe), rtol=0, atol=1e-12)
    assert calibrated.n_features_in_ == 2


def _centred_isotonic_reference(scores, y):
    """Plain isotonic, then each block's value at the block's mean score, linear in between (numpy only)."""
    levels, block = np.unique(IsotonicRegression(out_of_bounds="clip").fit(scores, y).predict(scores),
                              return_inverse=True)
    centres = np.bincount(block, weights=scores) / np.bincount(block)
    return lambda s: np.interp(s, centres, levels)


def test_isotonic_maps_are_centred_in_the_folds_and_in_the_end(calibration_rows):
    X, y = calibration_rows
    model = _fitted(X, y)
    scores = model.decision_function(X)
    held_out = np.empty(len(y))
    for train, test in StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(X, y):
        held_out[test] = _centred_isotonic_reference(scores[train], y[train])(scores[test])
    calibrated, losses = calibrate(_fitted(X, y), X, y, methods=("isotonic",))
    assert losses["isotonic"] == pytest.approx(log_loss(y, held_out), abs=1e-12)
    probe = np.random.default_rng(5).normal(size=(400, 2)) * 2
    expected = _centred_isotonic_reference(scores, y)(model.decision_function(probe))
    np.testing.assert_allclose(calibrated.predict_proba(probe)[:, 1], expected, rtol=0, atol=1e-12)
    # The calibrated probabilities rank the calibration rows as the scores do (no ties from flat steps).
    assert roc_auc_score(y, calibrated.predict_proba(X)[:, 1]) == pytest.approx(roc_auc_score(y, scores), abs=2e-4)
    plain = IsotonicRegression(out_of_bounds="clip").fit(scores, y).predict(probe_scores := model.decision_function(probe))
    assert len(np.unique(plain)) < 50 < len(np.unique(calibrated.predict_proba(probe)[:, 1]))  # steps it would have
    assert len(np.unique(probe_scores)) == len(probe_scores)


def test_the_refitting_route_keeps_a_centred_isotonic_map_too(calibration_rows):
    X, y = calibration_rows
    model = _fitted(X, y)
    calibrated, _ = _calibrate_by_refitting(model, X, y, methods=("isotonic",),
                                            folds=StratifiedKFold(n_splits=5, shuffle=True, random_state=0))
    probe = np.random.default_rng(6).normal(size=(300, 2))
    expected = _centred_isotonic_reference(model.decision_function(X), y)(model.decision_function(probe))
    np.testing.assert_allclose(calibrated.predict_proba(probe)[:, 1], expected, rtol=0, atol=1e-12)


def test_the_frozen_model_predicts_the_calibration_split_once(calibration_rows):
    X, y = calibration_rows
    model = _fitted(X, y)
    calibrate(model, X, y)
    assert model.rows_predicted == len(X)
    refitted = _fitted(X, y)
    _calibrate_by_refitting(refitted, X, y, methods=("sigmoid", "isotonic"),
                            folds=StratifiedKFold(n_splits=5, shuffle=True, random_state=0))
    assert refitted.rows_predicted == 11 * len(X)  # what scikit-learn's route costs: 2 methods x 5 folds + 1


@pytest.mark.parametrize("methods", [("sigmoid",), ("isotonic",)])
def test_the_calibration_rows_probability_comes_from_the_same_scores(calibration_rows, methods):
    X, y = calibration_rows
    model = _fitted(X, y)
    calibrated, _, probability = calibrate(model, X, y, methods=methods, with_probability=True)
    assert model.rows_predicted == len(X)  # still once: the probability reuses the scores
    np.testing.assert_array_equal(probability, calibrated.predict_proba(X)[:, 1])
