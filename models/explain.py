"""Exact per-feature contributions in log-odds space, and the fit and engagement sub-scores built from them.

For LightGBM the contributions are its own TreeSHAP values (``pred_contrib=True``); for the
logistic pipeline they are coefficient x transformed value, summed back to the source column
(one-hot pieces and missing indicators belong to the column they came from). Either way

    base_value + contributions.sum(axis=1) == the model's raw margin (log-odds), row by row,

and the calibrated probability is the calibration map applied to that margin.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from models.estimators import inner_pipeline, single_calibrated

FIT, ENGAGEMENT = "fit", "engagement"
_SMALL_BATCH = 256
#: From this many rows LightGBM's contributions come from per-tree lookup tables (``models.treeshap``):
#: building the tables costs about as much as ``pred_contrib`` on a few thousand rows.
TABLE_MIN_ROWS = 4_096
_tables = weakref.WeakKeyDictionary()


@dataclass
class Explanation:
    """Contributions of each source feature (columns ``spec.feature_names``) to each row's raw margin.

    ``fit_score`` and ``engagement_score`` (0-100) are the calibrated probability, x 100 and
    rounded, of the base value plus only that group's contributions: "the score this lead would
    have if only who they are (fit) / only what they did (engagement) moved it away from an
    average lead". Fit is the lead's attributes; engagement is its event history, lead age and
    the lead columns that summarise behaviour.
    The base value is LightGBM's expected raw score over its training rows, or the logistic
    model's intercept (every standardised number at its training mean, no category level on).
    """

    contributions: pd.DataFrame
    base_value: np.ndarray
    margin: np.ndarray
    probability: np.ndarray
    fit_score: np.ndarray
    engagement_score: np.ndarray


def explain(bundle, features: pd.DataFrame) -> Explanation:
    """Contributions, margin, calibrated probability and sub-scores of each feature row."""
    if len(features) == 0:  # an empty chunk: the estimators refuse zero rows
        none, no_scores = np.zeros(0), np.zeros(0, dtype=np.int64)
        return Explanation(contributions=pd.DataFrame(np.zeros((0, len(bundle.spec.feature_names))),
                                                      index=features.index, columns=bundle.spec.feature_names),
                           base_value=none, margin=none, probability=none, fit_score=no_scores,
                           engagement_score=no_scores)
    if hasattr(bundle.model, "route"):  # a segmented model: each row is explained by the model that scores it
        return _explain_segments(bundle, features)
    contributions, base_value = feature_contributions(bundle, features)
    to_probability = calibration_map(bundle.model)
    values = contributions.to_numpy()
    margin = base_value + values.sum(axis=1)
    partial = [base_value + values[:, mask].sum(axis=1) for mask in _group_masks(bundle.spec)]
    # One call of the calibration map for all three: on one row its per-call overhead dominates.
    probability, fit, engagement = np.split(to_probability(np.concatenate([margin, *partial])), 3)
    return Explanation(contributions=contributions, base_value=base_value, margin=margin,
                       probability=probability, fit_score=_percent(fit), engagement_score=_percent(engagement))


def _explain_segments(bundle, features: pd.DataFrame) -> Explanation:
    from dataclasses import replace

    routes = bundle.model.route(features)
    parts = {segment: explain(replace(bundle, model=bundle.model.model_for(segment)), features.iloc[rows])
             for segment, rows in routes.items()}
    order = np.concatenate(list(routes.values()))
    back = np.argsort(order, kind="stable")

    def joined(name):
        return np.concatenate([getattr(part, name) for part in parts.values()])[back]

    contributions = pd.concat([part.contributions for part in parts.values()]).iloc[back]
    return Explanation(contributions=contributions, base_value=joined("base_value"), margin=joined("margin"),
                       probability=joined("probability"), fit_score=joined("fit_score"),
                       engagement_score=joined("engagement_score"))


def feature_contributions(bundle, features: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """``(contributions, base_value)``: log-odds per source feature and row, and the per-row base."""
    pipeline = inner_pipeline(bundle.model)
    names = bundle.spec.feature_names
    classifier = pipeline[-1]
    if hasattr(classifier, "booster_"):
        encoder = pipeline[0]
        codes = encoder.to_codes(features)
        tables = tree_tables(classifier.booster_) if len(codes) >= TABLE_MIN_ROWS else None
        if tables is not None:
            raw = tables.contributions(codes)
        else:
            # OpenMP threads cost more than they save on a few rows, and stall when the cores are busy.
            threads = {"num_threads": 1} if len(codes) < _SMALL_BATCH else {}
            raw = classifier.booster_.predict(codes, pred_contrib=True, **threads)
        return pd.DataFrame(raw[:, :-1], index=features.index, columns=names), raw[:, -1].copy()
    if hasattr(classifier, "coef_"):
        base = np.full(len(features), float(classifier.intercept_[0]))
        if len(features) < _SMALL_BATCH:
            # A few rows: per-column tables read off this pipeline (see models.linear_contributions);
            # scikit-learn's per-call overhead would otherwise be most of a single lead's time.
            from models.linear_contributions import linear_contributions

            try:
                values = linear_contributions(bundle, _linear_batch).contributions(features)
            except (TypeError, ValueError):  # values the tables cannot take: the batch path decides
                values = _linear_batch(bundle, features)
            return pd.DataFrame(values, index=features.index, columns=names), base
        return pd.DataFrame(_linear_batch(bundle, features), index=features.index, columns=names), base
    raise TypeError(f"Cannot explain a {type(classifier).__name__}: expected a LightGBM classifier "
                    "or a linear model with coef_.")


def calibrated_probability(bundle, features: pd.DataFrame) -> np.ndarray:
    """What ``bundle.predict_probability`` gives, from the LightGBM trees walked by the lookup tables on large
    batches: the same raw scores bit for bit (``TreeTables.raw_margin``) at about an eighth of LightGBM's
    ``predict`` CPU here, through the same calibration map. Other models, and small batches, predict as usual.
    """
    if len(features) >= TABLE_MIN_ROWS and not hasattr(bundle.model, "route"):
        pipeline = inner_pipeline(bundle.model)
        classifier = pipeline[-1]
        tables = tree_tables(classifier.booster_) if hasattr(classifier, "booster_") else None
        if tables is not None:
            return calibration_map(bundle.model)(tables.raw_margin(pipeline[0].to_codes(features)))
    return bundle.predict_probability(features)


def tree_tables(booster):
    """The booster's TreeSHAP lookup tables, built on first use and kept as long as the booster lives;
    None when its trees are too deep for tables (then ``pred_contrib`` it is)."""
    from models.treeshap import TreeTables, supports

    if booster not in _tables:
        _tables[booster] = TreeTables(booster) if supports(booster) else None
    return _tables[booster]


def saved_tree_tables(model) -> dict | None:
    """The TreeSHAP tables of a calibrated LightGBM model as plain arrays, to save beside it; None for other models.

    A loaded bundle then reads them (``use_saved_tree_tables``) instead of building them at first use.
    """
    booster = _single_booster(model)
    tables = tree_tables(booster) if booster is not None else None
    return tables.arrays() if tables is not None else None


def use_saved_tree_tables(model, saved) -> None:
    """Let ``tree_tables`` give the tables saved with ``model`` (``saved_tree_tables``) for its booster.

    Tables that do not fit the booster (another layout, another shape) are left out: built at first use, as
    for a bundle saved without them.
    """
    from models.treeshap import TreeTables

    booster = _single_booster(model) if saved is not None else None
    if booster is not None and booster not in _tables:
        tables = TreeTables.from_arrays(saved, booster)
        if tables is not None:
            _tables[booster] = tables


def _single_booster(model):
    """The LightGBM booster of a calibrated model with one calibrator; None for any other model (or a segmented one)."""
    if hasattr(model, "route") or len(getattr(model, "calibrated_classifiers_", None) or ()) != 1:
        return None
    pipeline = inner_pipeline(model)
    return getattr(pipeline[-1] if hasattr(pipeline, "steps") else pipeline, "booster_", None)


def use_threads(model, threads: int) -> None:
    """Let the calibrated model's LightGBM predict on ``threads`` threads (a loaded model keeps its training count)."""
    classifier = inner_pipeline(model)[-1]
    if hasattr(classifier, "booster_"):
        classifier.set_params(n_jobs=int(threads))


def _linear_batch(bundle, features: pd.DataFrame) -> np.ndarray:
    """The logistic pipeline's contributions through scikit-learn: coefficient x transformed value, per source."""
    pipeline = inner_pipeline(bundle.model)
    classifier = pipeline[-1]
    transformed = np.asarray(pipeline[:-1].transform(bundle.conform(features)), dtype=float)
    terms = transformed * classifier.coef_[0]
    owner = source_columns(pipeline[0])
    names = bundle.spec.feature_names
    grouped = np.zeros((len(features), len(names)))
    position = {name: i for i, name in enumerate(names)}
    np.add.at(grouped.T, np.array([position[o] for o in owner]), terms.T)
    return grouped


def calibration_map(model):
    """The function from raw margin to calibrated probability, as the calibrated model applies it.

    scikit-learn calibrates on ``decision_function`` when the frozen model has one (both our
    pipelines do: it is the raw margin) and on the positive-class probability otherwise.
    """
    calibrated = single_calibrated(model)
    predict = _calibrator_predict(calibrated.calibrators[0])
    if hasattr(calibrated.estimator, "decision_function"):
        return lambda margin: np.clip(predict(np.asarray(margin, dtype=float)), 0.0, 1.0)
    return lambda margin: np.clip(predict(1.0 / (1.0 + np.exp(-np.asarray(margin, dtype=float)))), 0.0, 1.0)


def _calibrator_predict(calibrator):
    """``calibrator.predict`` for a 1-d float array, without scikit-learn's input checks on the two
    maps our models use (they cost more than the map itself on one lead); the same arithmetic,
    so the same numbers. Any other calibrator keeps its own ``predict``."""
    from scipy.special import expit
    from sklearn.isotonic import IsotonicRegression

    from models.centred_isotonic import CentredIsotonicRegression

    try:
        from sklearn.calibration import _SigmoidCalibration
    except ImportError:  # a private class: a scikit-learn without it keeps its own predict
        _SigmoidCalibration = None
    if _SigmoidCalibration is not None and type(calibrator) is _SigmoidCalibration:
        a, b = calibrator.a_, calibrator.b_
        return lambda scores: expit(-(a * scores + b))
    if (type(calibrator) in (IsotonicRegression, CentredIsotonicRegression)
            and calibrator.out_of_bounds in ("clip", "nan")
            and calibrator.X_thresholds_.dtype == np.float64 and hasattr(calibrator, "f_")):
        interpolate, clip = calibrator.f_, calibrator.out_of_bounds == "clip"
        low, high = calibrator.X_min_, calibrator.X_max_

        def isotonic(scores):
            if not np.isfinite(scores).all():  # scikit-learn's own error for NaN or infinite input
                return calibrator.predict(scores)
            return interpolate(np.clip(scores, low, high) if clip else scores).astype(np.float64)

        return isotonic
    return calibrator.predict


def raw_margin(model, features: pd.DataFrame) -> np.ndarray:
    """The inner model's raw log-odds as scikit-learn computes it (the reference contributions must sum to)."""
    return inner_pipeline(model).decision_function(features)


def feature_groups(spec) -> dict:
    """Source feature -> ``"fit"`` (who the lead is) or ``"engagement"`` (what they did, lead age).

    Lead columns that summarise behaviour (``spec.engagement_columns``: visits, time on site)
    are engagement, so a single-table export has both sub-scores.
    """
    fit = set(spec.fit_feature_names) - set(spec.summarised_engagement_feature_names)
    return {name: FIT if name in fit else ENGAGEMENT for name in spec.feature_names}


def source_columns(preprocess) -> list[str]:
    """The input column behind each output of a fitted ColumnTransformer.

    ``industry_software`` -> ``industry`` (one-hot), ``missingindicator_days_since_x`` ->
    ``days_since_x``; matched within each transformer's own columns, longest name first, so
    ``job_function_sales`` cannot be taken for a column called ``job``.
    """
    owners = []
    names_out = preprocess.get_feature_names_out()
    for name, _, columns in preprocess.transformers_:
        if name == "remainder":
            continue
        piece = preprocess.output_indices_[name]
        by_length = sorted(columns, key=len, reverse=True)
        for output in names_out[piece]:
            output = output.removeprefix("missingindicator_")
            owner = output if output in columns else next(
                (column for column in by_length if output.startswith(f"{column}_")), None)
            if owner is None:
                raise ValueError(f"Cannot trace output feature {output!r} of transformer {name!r} back to "
                                 f"one of its columns {list(columns)}.")
            owners.append(owner)
    return owners


@lru_cache(maxsize=8)
def _group_masks(spec) -> tuple[np.ndarray, np.ndarray]:
    """Fit and engagement column masks over ``spec.feature_names``; cached, as every request needs them."""
    groups = feature_groups(spec)
    return tuple(np.array([groups[name] == group for name in spec.feature_names]) for group in (FIT, ENGAGEMENT))


def _percent(probability: np.ndarray) -> np.ndarray:
    return np.rint(probability * 100).astype(np.int64)
