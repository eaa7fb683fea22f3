"""Calibrate a fitted classifier on the calibration split, choosing sigmoid or isotonic by held-out log loss."""

from __future__ import annotations

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold, cross_val_predict

CALIBRATION_METHODS = ("sigmoid", "isotonic")


def calibrate(model, X_calibration, y_calibration, *, methods=CALIBRATION_METHODS, n_folds: int = 5,
              seed: int = 0):
    """Return ``(calibrated_model, log_losses)``.

    The fitted ``model`` is frozen: only the calibration map is learned. Each method is scored
    by out-of-fold log loss on the calibration split (fitting and scoring a map on the same rows
    would always favour isotonic), then the winner is refitted on the whole split. One map and
    one model means prediction costs one model call, not five.
    """
    y_calibration = np.asarray(y_calibration, dtype=int)
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    log_losses = {}
    for method in methods:
        candidate = _calibrator(model, method)
        held_out = cross_val_predict(candidate, X_calibration, y_calibration, cv=folds, method="predict_proba")
        log_losses[method] = float(log_loss(y_calibration, held_out[:, 1], labels=[0, 1]))
    best = min(log_losses, key=log_losses.get)
    return _calibrator(model, best).fit(X_calibration, y_calibration), log_losses


def _calibrator(model, method: str) -> CalibratedClassifierCV:
    return CalibratedClassifierCV(FrozenEstimator(model), method=method, ensemble=False)
