"""Score, sub-scores and reasons of a few leads held as plain arrays: the HTTP service's single-lead route.

``ModelBundle.score_with_reasons`` takes a DataFrame and gives one: on one lead its pandas calls
(selecting columns, building frames) were most of a request's time. ``LeadScorer`` works once
per model what those calls looked up every time (the logistic model's per-column contribution
tables, LightGBM's category codes and feature positions, the calibration map, the fit and
engagement columns) and then scores rows given as the two blocks ``features.single_lead.few_lead_rows``
makes: the categorical labels and the float numbers. Same arithmetic as the batch path
(``models.explain``, ``models.reasons``), so the same probabilities, sub-scores and reason texts;
a test compares them on many leads of both model kinds. LightGBM's contributions come from the
TreeSHAP tables (``models.treeshap``, which batch scoring uses for large chunks), equal to
``pred_contrib``'s to about 1e-14.
"""

from __future__ import annotations

import numpy as np

from models.estimators import inner_pipeline
from models.explain import (
    _SMALL_BATCH,
    _group_masks,
    _linear_batch,
    calibration_map,
    tree_tables,
)
from models.reasons import ranked_reasons


class LeadScorer:
    """Scores feature rows given as ``(labels, numbers)`` blocks for one bundle.

    Build with :func:`lead_scorer`, which returns None for a model this route does not cover
    (a segmented model, an estimator other than our logistic and LightGBM pipelines); the caller
    then uses ``bundle.score_with_reasons``. Tables are read off the fitted model in the
    constructor; attributes ending in ``_`` are those learned tables.
    """

    def __init__(self, bundle):
        self.bundle = bundle
        spec = bundle.spec
        self.names_ = tuple(spec.feature_names)
        self.categorical_ = list(spec.categorical_feature_names)
        self.numeric_ = list(self.names_[len(self.categorical_):])
        if list(self.names_[:len(self.categorical_)]) != self.categorical_:
            raise ValueError("LeadScorer needs the spec's categorical features listed first.")
        self.position_ = {name: i for i, name in enumerate(self.names_)}
        self.fit_mask_, self.engagement_mask_ = _group_masks(spec)
        self.to_probability_ = calibration_map(bundle.model)
        pipeline = inner_pipeline(bundle.model)
        classifier = pipeline[-1]
        if hasattr(classifier, "booster_"):
            encoder = pipeline[0]
            if list(getattr(encoder, "feature_names_in_", ())) != list(self.names_):
                raise ValueError("LeadScorer needs the LightGBM encoder's columns in the spec's order.")
            self.booster_ = classifier.booster_
            # TreeSHAP by table lookup (models.treeshap), built once here (about a second for 600 trees): on one
            # row its compiled walk took a tenth of pred_contrib's CPU, the same values to 1e-14.
            self.tables_ = tree_tables(self.booster_)
            if set(encoder.categories_) != set(self.categorical_):
                raise ValueError("LeadScorer needs the LightGBM encoder to encode exactly the spec's categories.")
            # The encoder's categories as codes once, not a dict per column per call (CategoryEncoder.to_codes).
            self.codes_ = [{category: float(i) for i, category in enumerate(encoder.categories_[name])}
                           for name in self.categorical_]
            self.linear_ = None
        elif hasattr(classifier, "coef_"):
            from models.linear_contributions import linear_contributions

            self.linear_ = linear_contributions(bundle, _linear_batch)
            self.intercept_ = float(classifier.intercept_[0])
        else:
            raise ValueError(f"LeadScorer cannot explain a {type(classifier).__name__}.")

    def encoded(self, labels: list, numbers: np.ndarray) -> np.ndarray:
        """The LightGBM model's input: category positions (NaN when missing or unknown) then the numbers."""
        codes = np.empty((len(numbers), len(self.names_)))
        for i, row in enumerate(labels):
            for j, (code, value) in enumerate(zip(self.codes_, row)):
                codes[i, j] = code.get(value, np.nan)
        codes[:, len(self.categorical_):] = numbers
        return codes

    def contributions(self, labels: list, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(contributions, base_value)`` as ``models.explain.feature_contributions`` gives them, as arrays."""
        if self.linear_ is not None:
            return self.linear_.block_contributions(labels, numbers), np.full(len(numbers), self.intercept_)
        codes = self.encoded(labels, numbers)
        if self.tables_ is not None:
            raw = self.tables_.contributions(codes)
        else:
            threads = {"num_threads": 1} if len(codes) < _SMALL_BATCH else {}
            raw = self.booster_.predict(codes, pred_contrib=True, **threads)
        return raw[:, :-1], raw[:, -1].copy()

    def outcomes(self, values: np.ndarray, base_value: np.ndarray) -> dict:
        """Probability, score, tier and the fit and engagement sub-scores of rows of contributions."""
        n = len(values)
        margin = base_value + values.sum(axis=1)
        partial = [base_value + values[:, mask].sum(axis=1) for mask in (self.fit_mask_, self.engagement_mask_)]
        # One call of the calibration map and one rounding for all three, then plain Python: on a few rows
        # numpy's per-call overhead (np.split, np.where per tier) was most of this step.
        calibrated = self.to_probability_(np.concatenate([margin, *partial]))
        percent = np.rint(calibrated * 100).astype(np.int64).tolist()
        probability = calibrated[:n].tolist()
        sql, mql = self.bundle.thresholds.sql, self.bundle.thresholds.mql
        # TierThresholds.assign's rule: at or above a threshold; NaN is below both.
        tiers = ["SQL" if p >= sql else "MQL" if p >= mql else "nurture" for p in probability]
        return {"probability": probability, "score": percent[:n], "tier": tiers, "fit_score": percent[n:2 * n],
                "engagement_score": percent[2 * n:]}

    def reasons(self, values: np.ndarray, labels: list, numbers: np.ndarray, *, n_reasons: int = 3) -> list:
        """``(positive, negative)`` reasons per row, as ``models.reasons.ranked_reasons`` gives them."""
        position = self.position_
        rows = [list(row) + plain for row, plain in zip(labels, numbers.tolist())]

        def row_values(i):
            row = rows[i]
            return lambda name: row[position[name]]

        return ranked_reasons(values, self.names_, row_values, self.bundle.spec, n=n_reasons)

    def score(self, labels: list, numbers: np.ndarray, *, n_reasons: int = 3) -> list[dict]:
        """One dict per row: probability, score, tier, fit_score, engagement_score and reasons (positive, negative)."""
        values, base_value = self.contributions(labels, numbers)
        outcomes = self.outcomes(values, base_value)
        reasons = self.reasons(values, labels, numbers, n_reasons=n_reasons)
        return [{"probability": outcomes["probability"][i], "score": outcomes["score"][i], "tier": outcomes["tier"][i],
                 "fit_score": outcomes["fit_score"][i], "engagement_score": outcomes["engagement_score"][i],
                 "reasons": reasons[i]} for i in range(len(numbers))]


def lead_scorer(bundle) -> LeadScorer | None:
    """The single-lead scorer of ``bundle``, or None when its model is not one this route covers."""
    if hasattr(bundle.model, "route"):  # a segmented model: each row has its own model
        return None
    try:
        return LeadScorer(bundle)
    except (TypeError, ValueError, AttributeError):
        return None
