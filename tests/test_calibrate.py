"""Calibration from scores computed once: the same maps and log losses as scikit-learn's refitting route."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
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


def test_same_maps_and_log_losses_as_refitting(calibration_rows):
    X, y = calibration_rows
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    reference, reference_losses = _calibrate_by_refitting(_fitted(X, y), X, y, methods=("sigmoid", "isotonic"),
                                                          folds=folds)
    calibrated, losses = calibrate(_fitted(X, y), X, y)
    assert losses.keys() == reference_losses.keys()
    for method in losses:
        assert losses[method] == pytest.approx(reference_losses[method], abs=1e-12)
    assert calibrated.method == reference.method
    probe = np.random.default_rng(5).normal(size=(400, 2)) * 2
    np.testing.assert_allclose(calibrated.predict_proba(probe), reference.predict_proba(probe), rtol=0, atol=1e-12)
    assert calibrated.n_features_in_ == 2


def test_the_frozen_model_predicts_the_calibration_split_once(calibration_rows):
    X, y = calibration_rows
    model = _fitted(X, y)
    calibrate(model, X, y)
    assert model.rows_predicted == len(X)
    refitted = _fitted(X, y)
    _calibrate_by_refitting(refitted, X, y, methods=("sigmoid", "isotonic"),
                            folds=StratifiedKFold(n_splits=5, shuffle=True, random_state=0))
    assert refitted.rows_predicted == 11 * len(X)  # what scikit-learn's route costs: 2 methods x 5 folds + 1
