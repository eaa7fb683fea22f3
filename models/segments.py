"""Segment models: one calibrated model per value of a lead column, a global model for every other lead."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The leading CRM tools allow up to ten segment models per tenant; more than that rarely has the data.
MAX_SEGMENTS = 10


class SegmentedModel:
    """Routes each row by its ``segment_feature`` value to that segment's model, else to ``global_model``.

    Every model is a fitted, calibrated classifier taking the same feature frame, so probabilities
    from different segments are on one scale and one set of tier thresholds applies to all.
    """

    def __init__(self, *, segment_feature: str, segment_models: dict, global_model):
        self.segment_feature = segment_feature
        self.segment_models = segment_models
        self.global_model = global_model

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    def segment_of(self, features: pd.DataFrame) -> np.ndarray:
        """Each row's segment name, or ``"(global)"`` for rows the global model scores."""
        values = features[self.segment_feature].astype(object).where(features[self.segment_feature].notna(), None)
        names = np.array([value if value in self.segment_models else GLOBAL for value in values], dtype=object)
        return names

    def route(self, features: pd.DataFrame) -> dict:
        """``{model: positions}`` for every model that scores at least one row (the global one under ``None``)."""
        names = self.segment_of(features)
        return {(None if name == GLOBAL else name): np.flatnonzero(names == name) for name in pd.unique(names)}

    def model_for(self, segment):
        return self.global_model if segment is None else self.segment_models[segment]

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        probability = np.empty((len(features), 2))
        for segment, rows in self.route(features).items():
            probability[rows] = self.model_for(segment).predict_proba(features.iloc[rows])
        return probability


GLOBAL = "(global)"
