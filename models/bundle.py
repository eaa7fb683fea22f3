"""ModelBundle: everything scoring needs in one object: feature spec, calibrated model, tier thresholds."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from features.spec import FeatureSpec
from models.tiers import TierThresholds

OUTPUT_COLUMNS = ("probability", "score", "tier")


@dataclass
class ModelBundle:
    """A calibrated conversion model with the feature spec it was trained on and its tier thresholds.

    ``metadata`` holds plain values only (training window, horizon, metrics): it is shown by
    ``serve.py`` and logged with the model. ``reference`` is the training reference that drift
    monitoring compares a scored base with (:func:`models.monitoring.build_reference`): binned
    shares only, no lead rows; None for a bundle saved before monitoring existed.
    """

    spec: FeatureSpec
    model: object
    thresholds: TierThresholds
    metadata: dict = field(default_factory=dict)
    reference: dict | None = None

    def predict_probability(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of converting within the horizon, one per feature row."""
        if len(features) == 0:  # an empty chunk: the estimators refuse zero rows
            return np.empty(0)
        return self.model.predict_proba(self.conform(features))[:, 1]

    def score(self, features: pd.DataFrame, *, thresholds: TierThresholds | None = None) -> pd.DataFrame:
        """``probability``, ``score`` (0-100) and ``tier`` for each feature row, on the same index.

        The probability is ``predict_probability``'s; a large batch of a LightGBM model gets it from
        the trees walked by lookup tables (``models.explain.calibrated_probability``: same raw scores).
        """
        from models.explain import calibrated_probability

        return self._scores(calibrated_probability(self, features), thresholds, features.index)

    def score_with_reasons(self, features: pd.DataFrame, *, thresholds: TierThresholds | None = None,
                           n_reasons: int = 3) -> tuple[pd.DataFrame, list]:
        """``score`` plus ``fit_score`` and ``engagement_score``, and each row's (positive, negative) reasons.

        The probability comes from the exact contributions' margin through the calibration map:
        the same number ``predict_probability`` gives, in one pass with the explanation.
        """
        from models.explain import explain
        from models.reasons import top_reasons

        explanation = explain(self, features)
        scores = self._scores(explanation.probability, thresholds, features.index,
                              fit_score=explanation.fit_score, engagement_score=explanation.engagement_score)
        return scores, top_reasons(explanation.contributions, features, self.spec, n=n_reasons)

    def score_with_reason_columns(self, features: pd.DataFrame, *, thresholds: TierThresholds | None = None,
                                  n_reasons: int = 3, timings: dict | None = None) -> tuple[pd.DataFrame, dict]:
        """``score_with_reasons`` for batch output: reasons as flat text columns, built vectorised.

        Same values as ``reason_columns(score_with_reasons(...)[1])``, without a Python object per reason.
        ``timings``, when given, gets the seconds of ``contributions`` and ``reasons`` added to it.
        """
        from time import perf_counter

        from models.explain import explain
        from models.reasons import top_reason_columns

        started = perf_counter()
        explanation = explain(self, features)
        scores = self._scores(explanation.probability, thresholds, features.index,
                              fit_score=explanation.fit_score, engagement_score=explanation.engagement_score)
        explained = perf_counter()
        columns = top_reason_columns(explanation.contributions, features, self.spec, n=n_reasons)
        if timings is not None:
            timings["contributions"] = timings.get("contributions", 0.0) + explained - started
            timings["reasons"] = timings.get("reasons", 0.0) + perf_counter() - explained
        return scores, columns

    def _scores(self, probability: np.ndarray, thresholds: TierThresholds | None, index, **more) -> pd.DataFrame:
        thresholds = thresholds or self.thresholds
        return pd.DataFrame(
            {
                "probability": probability,
                "score": np.rint(probability * 100).astype(np.int64),
                "tier": thresholds.assign(probability),
                **more,
            },
            index=index,
        )

    def conform(self, features: pd.DataFrame) -> pd.DataFrame:
        """The model's columns in its order, categories as strings, numbers as float.

        Attribute features absent from ``features`` are treated as missing, with a warning (an
        export may drop an optional column); absent event-history or lead-age features are an
        error, since the feature builder always makes them.
        """
        absent = [name for name in self.spec.feature_names if name not in features.columns]
        optional = set(self.spec.fit_feature_names)
        required = [name for name in absent if name not in optional]
        if required:
            raise ValueError(f"Feature rows lack {len(required)} required column(s) the model needs, "
                             f"e.g. {required[:5]}.")
        if absent:
            warnings.warn(f"Feature rows lack column(s) {absent}; they are treated as missing values.",
                          UserWarning, stacklevel=2)
            features = features.assign(**{name: np.nan for name in absent})
        categorical = self.spec.categorical_feature_names
        numeric = [name for name in self.spec.feature_names if name not in set(categorical)]
        # Two blocks, not one Series per feature: on a single HTTP lead the per-column route costs
        # milliseconds. Columns that are not numbers yet fall back to per-column coercion.
        try:
            numbers = features[numeric].to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError):
            numbers = np.column_stack([pd.to_numeric(features[name], errors="coerce").to_numpy(dtype=float,
                                                                                              na_value=np.nan)
                                       for name in numeric]) if numeric else np.empty((len(features), 0))
        labels = np.array(features[categorical], dtype=object)  # a writable copy
        labels[pd.isna(labels)] = None
        conformed = pd.concat([pd.DataFrame(labels, index=features.index, columns=categorical, dtype=object),
                               pd.DataFrame(numbers, index=features.index, columns=numeric)], axis=1)
        names = self.spec.feature_names
        return conformed if list(conformed.columns) == names else conformed[names]

    def save(self, path) -> Path:
        """Write the bundle (joblib). A LightGBM model's TreeSHAP tables go with it as plain arrays
        (``tree_tables``, about 2 MB for 600 trees), so loading skips building them; a reader that does
        not know the key ignores it, and a bundle without it builds them at first use."""
        from models.explain import saved_tree_tables

        path = Path(path)
        joblib.dump(
            {"spec": self.spec.as_dict(), "model": self.model, "thresholds": self.thresholds.as_dict(),
             "metadata": self.metadata, "reference": self.reference, "tree_tables": saved_tree_tables(self.model)},
            path,
        )
        return path

    @classmethod
    def load(cls, path) -> ModelBundle:
        from models.explain import use_saved_tree_tables

        payload = joblib.load(path)
        use_saved_tree_tables(payload["model"], payload.get("tree_tables"))
        return cls(
            spec=FeatureSpec.from_dict(payload["spec"]),
            model=payload["model"],
            thresholds=TierThresholds(**payload["thresholds"]),
            metadata=payload["metadata"],
            reference=payload.get("reference"),
        )
