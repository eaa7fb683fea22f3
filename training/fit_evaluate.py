"""The part of training both input shapes share: guards, candidates, selection, calibration, evaluation, tiers."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from features.spec import FeatureSpec
from models.estimators import make_candidates
from models.monitoring import build_reference
from models.threads import blas_threads, blas_threads_for, resolve_threads
from models.tiers import tier_cutoffs
from training.calibrate import calibrate
from training.config import TrainingConfig
from training.drift import check_newest_window
from training.evaluate import evaluate_probabilities
from training.guards import NoSignalWarning, check_minimum_data, count_converted_leads, has_signal, warn_small_splits
from training.leakage import apply_leakage_guard, suspicious_columns
from training.search import search_lightgbm
from training.segments import fit_segment_models, segment_feature, segment_table
from training.selection import select_candidate
from training.weights import fit_weighted, lead_weights, training_weights


def guard_fit_and_evaluate(features: pd.DataFrame, labels: pd.Series, split: pd.Series, spec: FeatureSpec,
                           config: TrainingConfig, *, groups: pd.Series, log, times=None, known_at=None) -> tuple:
    """The part both input shapes share: guards, candidates, calibration, evaluation, tier thresholds.

    Returns ``(spec, features, fitted)``: the spec and features after the leakage guard, and a
    dict with the calibrated ``model``, ``thresholds``, test ``probability`` and ``y_test``,
    ``metrics``, ``params`` and the ``leakage`` report. With ``times`` (and ``known_at``, when each
    label became known) the candidates and the calibration map are chosen over rolling-origin windows
    before the test window (``training.selection``); without, by the calibration split's ROC AUC.
    """
    labels, split, groups = labels.to_numpy(), split.to_numpy(), groups.to_numpy()
    check_minimum_data(labels, groups=groups, min_positives=config.min_positives,
                       min_negatives=config.min_negatives, min_converted_leads=config.min_converted_leads)
    in_split = {name: split == name for name in ("train", "calibration", "test")}
    warn_small_splits({name: labels[rows] for name, rows in in_split.items()},
                      groups_by_split={name: groups[rows] for name, rows in in_split.items()},
                      min_positives=config.min_split_positives,
                      min_converted_leads=config.min_split_converted_leads)
    for name, rows in in_split.items():
        counts = np.bincount(labels[rows].astype(int), minlength=2)
        if counts.min() == 0:
            raise ValueError(f"The {name} split has {counts[1]} converted and {counts[0]} non-converted "
                             "examples; it needs both. Provide more closed deals or a longer data window.")
    spec, leakage = apply_leakage_guard(features[in_split["train"]], labels[in_split["train"]], spec,
                                        max_auc=config.leakage_max_auc,
                                        suspicious_auc=config.leakage_suspicious_auc,
                                        post_outcome=config.post_outcome_columns, keep=config.keep_columns,
                                        groups=groups[in_split["train"]], seed=config.seed, log=log)
    features = features[spec.feature_names]
    X_train, y_train = features[in_split["train"]], labels[in_split["train"]]
    X_cal, y_cal = features[in_split["calibration"]], labels[in_split["calibration"]]
    X_test, y_test = features[in_split["test"]], labels[in_split["test"]]
    train_weight = lead_weights(groups[in_split["train"]]) if config.per_lead_candidates else None
    if train_weight is not None and np.ptp(train_weight) == 0:
        train_weight = None  # one row per lead: nothing to weigh

    metrics, fitted, per_lead, weights = {}, {}, {}, {}
    threads = resolve_threads(config.threads)
    candidates = make_candidates(spec, random_state=config.seed, n_jobs=threads)
    recency = recency_candidates(config.recency_half_lives if times is not None else ())
    candidates.update(dict.fromkeys(recency))  # LightGBM's settings (searched, when searched), filled in below
    search = None
    with blas_threads(blas_threads_for(*X_train.shape, threads)):
        for name, candidate in candidates.items():
            per_lead[name] = train_weight is not None and recency.get(name, (name,))[0] in config.per_lead_candidates
            if name in recency:  # LightGBM fitted with recent snapshots weighing more
                candidate = candidates[name] = clone(candidates["lightgbm"])
                weights[name] = training_weights(groups[in_split["train"]], np.asarray(times)[in_split["train"]],
                                                 per_lead=per_lead[name], half_life_days=recency[name][1])
                fitted[name] = fit_weighted(clone(candidate), X_train, y_train, weights[name])
            elif name == "lightgbm" and config.search_seconds > 0:
                fitted[name], searched, search = search_lightgbm(spec, X_train, y_train, X_cal, y_cal,
                                                                 seconds=config.search_seconds, seed=config.seed,
                                                                 n_jobs=threads, log=log,
                                                                 sample_weight=train_weight if per_lead[name] else None)
                candidates[name] = clone(fitted[name])  # the tuned parameters, unfitted: segment models start there
                metrics["search_trials"] = float((search["state"] == "COMPLETE").sum())
            else:
                fitted[name] = fit_weighted(clone(candidate), X_train, y_train,
                                            train_weight if per_lead[name] else None)
            weights.setdefault(name, train_weight if per_lead[name] else None)
            auc = roc_auc_score(y_cal, fitted[name].predict_proba(X_cal)[:, 1])
            metrics[f"validation_roc_auc_{name}"] = float(auc)
            log(f"candidate {name}{' (each lead weighing one)' if per_lead[name] else ''}"
                f"{f' (recent snapshots weighing more: half-life {recency[name][1]:g} days)' if name in recency else ''}"
                f": validation ROC AUC {auc:.4f}")
        selection = select_candidate(features, labels, times, known_at=known_at, pool=in_split["train"] | in_split[
            "calibration"], groups=groups, candidates={name: (candidates[name], per_lead[name],
                                                              recency.get(name, (None, None))[1]) for name in fitted},
            config=config, log=log)
        if selection is None:
            best = max(fitted, key=lambda name: metrics[f"validation_roc_auc_{name}"])
        else:
            best = selection.model
        validation_auc = metrics[f"validation_roc_auc_{best}"]
        # The map is chosen on the calibration split itself, not on the windows: its size decides whether
        # isotonic pays (the fines log's windows of 28-35k rows favoured isotonic, its 3.5k-row split
        # sigmoid; the windows' choice cost test ECE 0.0143 -> 0.0167 and PR AUC 0.2045 -> 0.2022).
        calibrated, log_losses, calibration_probability = calibrate(fitted[best], X_cal, y_cal, seed=config.seed,
                                                                    with_probability=True)
    method = min(log_losses, key=log_losses.get)
    metrics.update({f"calibration_log_loss_{name}": value for name, value in log_losses.items()})
    segments = None
    if config.segment_by:
        global_model = calibrated
        calibrated = fit_segment_models(candidates[best], global_model,
                                        feature=segment_feature(spec, config.segment_by), X_train=X_train,
                                        y_train=y_train, train_weight=weights.get(best),
                                        X_cal=X_cal, y_cal=y_cal,
                                        min_positives=config.min_positives,
                                        min_calibration_positives=config.min_split_positives, seed=config.seed,
                                        log=log)
    if config.segment_by:  # the routed model is what gets used: judge its ranking (its maps saw these rows)
        calibration_probability = calibrated.predict_proba(X_cal)[:, 1]
        metrics["validation_roc_auc_segmented"] = float(roc_auc_score(y_cal, calibration_probability))
        validation_auc = max(validation_auc, metrics["validation_roc_auc_segmented"])
    signal = has_signal(validation_auc, min_auc=config.min_validation_auc)
    if not signal:
        warnings.warn(f"the best model's validation ROC AUC {validation_auc:.4f} does not beat the floor "
                      f"{config.min_validation_auc}: its ranking, and so its SQL / MQL / nurture tiers, carry no "
                      "information; it is not promoted", NoSignalWarning, stacklevel=2)
    thresholds = config.tier_policy.choose(calibration_probability)
    # What drift monitoring compares scored bases with: the calibration split, where the tiers were cut.
    reference = build_reference(X_cal, calibration_probability, thresholds.assign(calibration_probability),
                                categorical=spec.categorical_feature_names)
    probability = calibrated.predict_proba(X_test)[:, 1]
    metrics.update(evaluate_probabilities(y_test, probability))
    metrics["validation_roc_auc"] = float(validation_auc)
    if config.segment_by:
        segments = segment_table(calibrated, X_test, y_test,
                                 global_probability=global_model.predict_proba(X_test)[:, 1])
        for row in segments.itertuples():
            log(f"segment {row.segment!r} ({row.model} model): {row.test_rows:,} test rows, ROC AUC {row.roc_auc:.4f} "
                f"(global model {row.global_model_roc_auc:.4f})")
    excluded = sorted(set(leakage.loc[leakage["excluded"], "column"]))
    drift = None
    if selection is not None and not selection.windows.empty and times is not None:  # folds have no newest
        drift = check_newest_window(selection.windows[selection.windows["candidate"].eq(best)], y_test, probability,
                                    auc_newest=metrics["test_roc_auc"],
                                    leads_newest=len(pd.unique(groups[in_split["test"]])),
                                    calibrated_on=(y_cal, groups[in_split["calibration"]]))
        metrics.update(drift.metrics if drift is not None else {})
        metrics.update({f"selection_{stat}_{row.candidate}": float(getattr(row, stat))
                        for row in selection.summary.itertuples()
                        for stat in ("log_loss_mean", "log_loss_sd", "roc_auc_mean", "roc_auc_sd")})
    params = {
        "model": best,
        "selection": "validation split ROC AUC" if selection is None else selection.reason,
        # The newest labelled window against the older ones: a sentence when it moved (the model is then held).
        "drift": "not checked" if drift is None else drift.line or "none",
        **({"drift_note": "; ".join(drift.notes)} if drift is not None and drift.notes else {}),
        "weighted_per_lead": bool(per_lead.get(best, False)),
        "recency_half_life_days": recency[best][1] if best in recency else None,
        "calibration": method,
        **{f"rows_{name}": int(rows.sum()) for name, rows in in_split.items()},
        **{f"positives_{name}": int(labels[rows].sum()) for name, rows in in_split.items()},
        **{f"converted_leads_{name}": count_converted_leads(labels[rows], groups[rows])
           for name, rows in in_split.items()},
        "features": len(spec.feature_names),
        "excluded_columns": excluded,
        "suspicious_columns": suspicious_columns(leakage),
        "has_signal": signal,
        "segment_by": config.segment_by,
        **({"searched_lightgbm": searched} if search is not None else {}),
        "segments": sorted(map(str, calibrated.segment_models)) if config.segment_by else [],
    }
    example = X_test.iloc[[_typical_engaged_row(probability)]]
    datasets = {"train": (X_train, y_train), "calibration": (X_cal, y_cal), "test": (X_test, y_test)}
    fitted_extra = {"cutoffs": tier_cutoffs(thresholds, calibration_probability), "example": example,
                    "datasets": datasets, "segments": segments, "search": search,
                    "candidate": candidates[best], "per_lead": bool(per_lead.get(best, False)),
                    "half_life_days": recency[best][1] if best in recency else None,
                    "selection": None if selection is None or selection.windows.empty else selection.windows}
    return spec, features, {"model": calibrated, "thresholds": thresholds, "probability": probability,
                            "y_test": y_test, "X_test": X_test, "metrics": metrics, "params": params,
                            "leakage": leakage, "reference": reference,
                            **fitted_extra}


def recency_candidates(half_lives) -> dict:
    """``{name: ("lightgbm", half-life in days)}`` for each of ``[training] recency_half_lives``: LightGBM fitted with
    recent snapshots weighing more, offered to the selection windows beside the plain fit (the more complex, so
    kept only when it beats the plain fit beyond the windows' noise)."""
    return {f"lightgbm_recent_{days:g}d": ("lightgbm", float(days)) for days in half_lives}


def _typical_engaged_row(probability: np.ndarray) -> int:
    """The test row at the 90th percentile of probability: a real, plausible lead worth showing as an example
    (not the single most extreme one, and not an all-zero row no lead ever has)."""
    target = np.quantile(probability, 0.9)
    return int(np.argmin(np.abs(probability - target)))
