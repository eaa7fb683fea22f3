"""Centred isotonic regression: an isotonic calibration map without flat steps, so it keeps the score's ranking."""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression


class CentredIsotonicRegression(IsotonicRegression):
    """Isotonic regression whose constant blocks shrink to one point each (Oron and Flournoy, 2017).

    Plain isotonic regression gives every input of a block the block's mean target: scores the
    model ranks apart leave the map tied, and a calibrated model then ranks worse than its own
    scores (0.003 test ROC AUC on the synthetic demo when isotonic won the calibration). Here each
    block becomes one point, its (weighted) mean input carrying its value, and the map interpolates
    linearly between those points: strictly monotone between the first and the last block's
    centre, so scores there keep their order; flat from the smallest fitted input to the first
    centre and from the last centre to the largest, as plain isotonic is there. The block values,
    hence the calibration on the fitted rows' blocks, are plain isotonic regression's.

    Same parameters and fitted attributes as :class:`sklearn.isotonic.IsotonicRegression`;
    ``X_thresholds_`` and ``y_thresholds_`` hold the centred points (pickling rebuilds the map from
    them, as scikit-learn does).
    """

    def fit(self, X, y, sample_weight=None):
        super().fit(X, y, sample_weight=sample_weight)
        x = np.asarray(X, dtype=float).reshape(-1)
        weight = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        kept = weight > 0  # scikit-learn drops rows of zero weight too
        inputs, position = np.unique(x[kept], return_inverse=True)
        weights = np.bincount(position, weights=weight[kept], minlength=len(inputs))
        # The plain fit at its own inputs: its values there (trimming removed points inside flat runs only).
        fitted = self.f_(inputs) if len(self.y_thresholds_) > 1 else np.repeat(self.y_thresholds_, len(inputs))
        starts = np.flatnonzero(np.r_[True, fitted[1:] != fitted[:-1]])
        centres = np.add.reduceat(weights * inputs, starts) / np.add.reduceat(weights, starts)
        levels = fitted[starts]
        # Keep the fitted range: flat from its ends to the outer centres, as the plain map is.
        if self.X_min_ < centres[0]:
            centres, levels = np.r_[self.X_min_, centres], np.r_[levels[0], levels]
        if self.X_max_ > centres[-1]:
            centres, levels = np.r_[centres, self.X_max_], np.r_[levels, levels[-1]]
        self.X_thresholds_, self.y_thresholds_ = centres, levels
        self._build_f(centres, levels)
        return self

    def __getstate__(self):
        # scikit-learn's own drops the interpolator ``f_`` from the state it gets from BaseEstimator, which
        # for a class outside scikit-learn's modules is the instance's own ``__dict__``: pickling would
        # strip the live object's map. Pickle a copy, keep the map.
        interpolator = self.__dict__.get("f_")
        state = dict(super().__getstate__())
        if interpolator is not None:
            self.f_ = interpolator
        return state
