"""Candidate estimators: a logistic-regression baseline and LightGBM, both taking the raw feature frame."""

from __future__ import annotations

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from features.spec import FeatureSpec
from models.encoding import CategoryEncoder

#: "Never happened" is further back than any real recency: recency columns fill with this many days.
NEVER_DAYS = 3650.0


def make_candidates(spec: FeatureSpec, *, random_state=0, n_jobs: int | None = None) -> dict:
    """Unfitted candidates by name; each is a Pipeline taking the frame ``build_features`` makes.

    ``n_jobs``: LightGBM's threads; default: ``models.threads.resolve_threads()`` (the cores this
    process may use, or the LEAD_SCORING_THREADS override).
    """
    return {
        "logistic": make_logistic_regression(spec),
        "lightgbm": make_lightgbm(spec, random_state=random_state, n_jobs=n_jobs),
    }


def make_logistic_regression(spec: FeatureSpec, *, C=0.5) -> Pipeline:
    """One-hot categories, signed-log numbers with missing indicators, standardised; L2 logistic."""
    categorical = spec.categorical_feature_names
    numeric = [name for name in spec.feature_names if name not in categorical]
    recency = [name for name in numeric if name.startswith("days_since_")]
    other = [name for name in numeric if name not in recency]
    preprocess = ColumnTransformer(
        [
            ("categories", make_pipeline(
                SimpleImputer(strategy="constant", fill_value="missing"),
                OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20, sparse_output=False),
            ), categorical),
            ("recency", make_pipeline(
                SimpleImputer(strategy="constant", fill_value=NEVER_DAYS, add_indicator=True, keep_empty_features=True),
                FunctionTransformer(np.log1p, feature_names_out="one-to-one"),
                StandardScaler(),
            ), recency),
            ("numbers", make_pipeline(
                FunctionTransformer(_signed_log1p, feature_names_out="one-to-one"),
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                StandardScaler(),
            ), other),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline([("preprocess", preprocess), ("classifier", LogisticRegression(C=C, max_iter=3000))])


def make_lightgbm(spec: FeatureSpec, *, random_state=0, n_estimators=600, learning_rate=0.03,
                  n_jobs: int | None = None) -> Pipeline:
    """Gradient boosting with native categories and NaN handling; exact per-feature contributions."""
    from lightgbm import LGBMClassifier

    from models.threads import resolve_threads

    classifier = LGBMClassifier(
        n_estimators=n_estimators,
        learning_rate=learning_rate,
        # Small trees: a few thousand positives support shallow interactions, not deep ones
        # (31 leaves lost 0.005-0.01 AUC to 7 on the synthetic CRM at 20,000 leads).
        num_leaves=7,
        # Large leaves and half the columns per tree: most of the ~100 engagement columns are
        # correlated views of the same few behaviours (+0.002-0.003 AUC on three synthetic seeds).
        min_child_samples=200,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.5,
        reg_lambda=1.0,
        min_data_per_group=50,
        cat_smooth=20,
        random_state=random_state,
        # Sized to the cores this process may use, not hard-coded: on a shared machine two threads
        # beside busy processes made a 1.5 s fit take 44.7 s (see models/threads.py).
        n_jobs=resolve_threads(n_jobs),
        verbose=-1,
    )
    encoder = CategoryEncoder(categorical_columns=tuple(spec.categorical_feature_names))
    return Pipeline([("encode", encoder), ("classifier", classifier)])


def _signed_log1p(values):
    """Counts and amounts are heavy-tailed; the trend in [-1, 1] keeps its sign."""
    values = np.asarray(values, dtype=float)
    return np.sign(values) * np.log1p(np.abs(values))


def single_calibrated(model):
    """The one calibrated classifier of a ``CalibratedClassifierCV(FrozenEstimator(pipeline), ensemble=False)``."""
    calibrated = getattr(model, "calibrated_classifiers_", None)
    if not calibrated or len(calibrated) != 1:
        raise TypeError("Explanations need a CalibratedClassifierCV(FrozenEstimator(pipeline), ensemble=False) "
                        f"with one calibrated classifier. Got {type(model).__name__} instead.")
    return calibrated[0]


def inner_pipeline(model):
    """The fitted preprocessing + classifier pipeline inside a calibrated model (frozen, one calibrator)."""
    frozen = single_calibrated(model).estimator
    return getattr(frozen, "estimator", frozen)
