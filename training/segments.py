"""Fit segment models: per value of a lead column with enough data, the best candidate kind fitted and calibrated
on that segment's training and calibration rows; the global model scores everyone else."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from models.segments import GLOBAL, MAX_SEGMENTS, SegmentedModel
from training.calibrate import calibrate
from training.weights import fit_weighted


def segment_feature(spec, column: str) -> str:
    """The categorical feature made from lead column ``column``; an error naming the choices otherwise."""
    by_column = {source: feature for feature, source in spec.source_columns.items()
                 if feature in set(spec.categorical_feature_names)}
    if column not in by_column:
        raise ValueError(f"segment_by must name a categorical lead column used by the model. Got {column!r}; "
                         f"categorical columns: {sorted(by_column)}.")
    return by_column[column]


def fit_segment_models(candidate, global_model, *, feature: str, X_train, y_train, X_cal, y_cal,
                       min_positives: int = 40, min_calibration_positives: int = 20, max_segments: int = MAX_SEGMENTS,
                       seed: int = 0, train_weight=None, log=print) -> SegmentedModel:
    """A :class:`SegmentedModel` with a model for each value (largest first, at most ``max_segments``) that has
    ``min_positives`` conversions in training and ``min_calibration_positives`` in calibration, both outcomes.

    ``train_weight``: the training rows' sample weights (the global model's), or None for equal rows."""
    train_values = X_train[feature].astype(object)
    cal_values = X_cal[feature].astype(object)
    counts = pd.Series(y_train).groupby(train_values.to_numpy()).agg(["sum", "size"]).sort_values("size",
                                                                                                 ascending=False)
    models = {}
    for value, row in counts.iterrows():
        if len(models) == max_segments:
            log(f"segments: at most {max_segments} segment models; the rest use the global model")
            break
        in_train, in_cal = (train_values == value).to_numpy(), (cal_values == value).to_numpy()
        cal_positives = int(y_cal[in_cal].sum())
        enough = (row["sum"] >= min_positives and row["size"] > row["sum"]
                  and cal_positives >= min_calibration_positives and in_cal.sum() > cal_positives)
        if not enough:
            log(f"segment {value!r}: {int(row['sum'])} converted in training, {cal_positives} in calibration: too few, "
                "scored by the global model")
            continue
        weight = None if train_weight is None else np.asarray(train_weight)[in_train]
        fitted = fit_weighted(clone(candidate), X_train[in_train], y_train[in_train], weight)
        models[value], _ = calibrate(fitted, X_cal[in_cal], y_cal[in_cal], seed=seed)
        log(f"segment {value!r}: own model on {int(in_train.sum()):,} training rows ({int(row['sum'])} converted)")
    return SegmentedModel(segment_feature=feature, segment_models=models, global_model=global_model)


def segment_table(model: SegmentedModel, X_test, y_test, *, global_probability) -> pd.DataFrame:
    """Per segment on the test split: rows, conversions, and ROC AUC of the routed model and of the global model."""
    names = model.segment_of(X_test)
    routed = model.predict_proba(X_test)[:, 1]
    rows = []
    for name in [*model.segment_models, GLOBAL]:
        members = names == name
        y = y_test[members]
        both = members.any() and 0 < y.sum() < y.size
        rows.append({"segment": name, "model": "global" if name == GLOBAL else "segment",
                     "test_rows": int(members.sum()), "conversions": int(y.sum()),
                     "roc_auc": float(roc_auc_score(y, routed[members])) if both else np.nan,
                     "global_model_roc_auc": float(roc_auc_score(y, global_probability[members])) if both else np.nan})
    return pd.DataFrame(rows)
