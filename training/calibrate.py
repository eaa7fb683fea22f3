"""Calibrate a fitted classifier on the calibration split, choosing sigmoid or isotonic by held-out log loss."""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from models.centred_isotonic import CentredIsotonicRegression

CALIBRATION_METHODS = ("sigmoid", "isotonic")


def calibrate(model, X_calibration, y_calibration, *, methods=CALIBRATION_METHODS, n_folds: int = 5,
              seed: int = 0, with_probability: bool = False):
    """Return ``(calibrated_model, log_losses)``, and with ``with_probability`` the calibrated model's probability
    on the calibration rows third (``calibrated_model.predict_proba(X_calibration)[:, 1]`` from the scores already
    computed: the model is not run on them twice).

    The fitted ``model`` is frozen: only the calibration map is learned. Each method is scored
    by out-of-fold log loss on the calibration split (fitting and scoring a map on the same rows
    would always favour isotonic), then the winner is refitted on the whole split. One map and
    one model means prediction costs one model call, not five.

    The frozen model's raw scores on the calibration split are computed once and reused by every
    fold of every method and by the final map (scikit-learn's own route predicts the split again
    in each fold: eleven times for two methods and five folds). The result is the
    ``CalibratedClassifierCV(FrozenEstimator(model), ensemble=False)`` scikit-learn would fit, with
    the same sigmoid maps; isotonic maps are centred (:class:`CentredIsotonicRegression`, in the
    folds too), so they keep the scores' ranking. The tests check both against references.
    """
    y_calibration = np.asarray(y_calibration, dtype=int)
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fit_map = _centred(_calibrator_fitter())
    if fit_map is None:  # a scikit-learn without the calibrator helper: its own, slower route
        calibrated, log_losses = _calibrate_by_refitting(model, X_calibration, y_calibration, methods=methods,
                                                         folds=folds)
        if with_probability:
            return calibrated, log_losses, calibrated.predict_proba(X_calibration)[:, 1]
        return calibrated, log_losses
    scores = frozen_scores(model, X_calibration)
    classes = np.unique(y_calibration)
    replay = _Replay().fit(scores.reshape(-1, 1), y_calibration)
    log_losses = {}
    for method in methods:
        held_out = np.empty(len(y_calibration))
        # StratifiedKFold's folds depend on the labels and the row count only: the same folds
        # cross_val_predict draws from the feature rows.
        for train, test in folds.split(np.zeros((len(y_calibration), 1)), y_calibration):
            fold_map = fit_map(replay, scores[train].reshape(-1, 1), y_calibration[train], classes, method)
            held_out[test] = fold_map.predict_proba(scores[test].reshape(-1, 1))[:, 1]
        log_losses[method] = float(log_loss(y_calibration, held_out, labels=[0, 1]))
    best = min(log_losses, key=log_losses.get)
    calibrated = _calibrator(model, best)
    frozen = calibrated.estimator
    calibrated.classes_ = classes
    calibrated.calibrated_classifiers_ = [fit_map(frozen, scores.reshape(-1, 1), y_calibration, classes, best)]
    for attribute in ("n_features_in_", "feature_names_in_"):
        if hasattr(frozen, attribute):
            setattr(calibrated, attribute, getattr(frozen, attribute))
    if with_probability:  # what CalibratedClassifierCV.predict_proba gives for a binary map, on the cached scores
        probability = np.asarray(calibrated.calibrated_classifiers_[0].calibrators[0].predict(scores), dtype=float)
        probability[(probability > 1.0) & (probability <= 1.0 + 1e-5)] = 1.0
        return calibrated, log_losses, probability
    return calibrated, log_losses


def frozen_scores(model, X) -> np.ndarray:
    """The scores scikit-learn calibrates: ``decision_function`` when the model has one, else P(positive)."""
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(X), dtype=float)
    return np.asarray(model.predict_proba(X)[:, 1], dtype=float)


def _calibrate_by_refitting(model, X_calibration, y_calibration, *, methods, folds):
    log_losses = {}
    for method in methods:
        candidate = _calibrator(model, method)
        held_out = cross_val_predict(candidate, X_calibration, y_calibration, cv=folds, method="predict_proba")
        log_losses[method] = float(log_loss(y_calibration, held_out[:, 1], labels=[0, 1]))
    best = min(log_losses, key=log_losses.get)
    calibrated = _calibrator(model, best).fit(X_calibration, y_calibration)
    if best == "isotonic":  # scored as scikit-learn's plain map above; the map kept is centred all the same
        fitted = calibrated.calibrated_classifiers_[0]
        fitted.calibrators = [CentredIsotonicRegression(out_of_bounds="clip").fit(
            frozen_scores(model, X_calibration), (y_calibration == calibrated.classes_[-1]).astype(float))]
    return calibrated, log_losses


def _calibrator(model, method: str) -> CalibratedClassifierCV:
    return CalibratedClassifierCV(FrozenEstimator(model), method=method, ensemble=False)


def _centred(fit_map):
    """``fit_map`` with its isotonic maps centred (:class:`CentredIsotonicRegression`): no flat steps, so
    the calibrated model ranks leads as its scores do (plain isotonic cost 0.003 test ROC AUC on
    the synthetic demo's seed 1, which it won). Sigmoid maps are scikit-learn's own."""
    if fit_map is None:
        return None

    def fit(clf, predictions, y, classes, method):
        fitted = fit_map(clf, predictions, y, classes, method)
        if method == "isotonic":
            positive = (np.asarray(y) == classes[-1]).astype(float)
            fitted.calibrators = [CentredIsotonicRegression(out_of_bounds="clip").fit(predictions[:, 0], positive)]
        return fitted

    return fit


def _calibrator_fitter():
    """scikit-learn's own map fitting (``sklearn.calibration._fit_calibrator``) on given scores, or None.

    Private, so looked up defensively: the signature gained an array-namespace argument in 1.7.
    """
    try:
        from sklearn.calibration import _fit_calibrator
    except ImportError:
        return None
    parameters = inspect.signature(_fit_calibrator).parameters
    if list(parameters)[:5] != ["clf", "predictions", "y", "classes", "method"]:
        return None
    if "xp" in parameters:
        return lambda clf, predictions, y, classes, method: _fit_calibrator(clf, predictions, y, classes, method,
                                                                             xp=np)
    return lambda clf, predictions, y, classes, method: _fit_calibrator(clf, predictions, y, classes, method)


class _Replay(ClassifierMixin, BaseEstimator):
    """Stands in for the frozen model inside a fold: its "decision function" is the cached score itself."""

    def fit(self, scores, y):
        self.classes_ = np.unique(y)
        return self

    def decision_function(self, scores):
        return np.asarray(scores)[:, 0]
