"""Time-budgeted hyperparameter search for the LightGBM candidate: fit on the training split, score on calibration.

Optuna rather than scikit-learn's successive halving: a wall-clock ``timeout`` is built in (halving
has none, and on a shared 2-core machine one fit takes 1.5 s or 200 s), its TPE sampler learns from
the few trials a small budget allows, and the defaults are tried first, so a search never picks
something worse on validation than the untuned model. A fit still running at the deadline is
stopped by a LightGBM callback and its trial discarded.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from models.estimators import make_lightgbm
from training.weights import fit_weighted, leaf_minimum_cap

#: The defaults of :func:`models.estimators.make_lightgbm`, tried first.
DEFAULTS = {"learning_rate": 0.03, "n_estimators": 600, "num_leaves": 7, "min_child_samples": 200,
            "colsample_bytree": 0.5, "subsample": 0.8, "reg_lambda": 1.0}


def search_lightgbm(spec, X_train, y_train, X_validation, y_validation, *, seconds: float, seed: int = 0,
                    max_trials: int | None = None, n_jobs: int = 1, sample_weight=None, log=print):
    """Return ``(best_pipeline, best_params, trials)``: the fitted best pipeline, its parameters, a table of trials.

    ``seconds`` bounds the wall-clock time of the whole search; ``max_trials`` (optional) bounds the count.
    ``n_jobs`` is LightGBM's threads per trial (training passes ``models.threads``' count); one by
    default: beside busy processes on 2 cores, one fit of the demo took 10 s with one thread and
    233 s with two spinning OpenMP threads.
    When not even the defaults finish in time, they are fitted without the deadline, and the run says so.
    ``sample_weight`` (training's per-lead weights) weighs the training rows of every trial.
    """
    import lightgbm
    import optuna

    if not seconds > 0:
        raise ValueError(f"The 'seconds' parameter of search_lightgbm must be positive. Got {seconds!r} instead.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A leaf needs min_child_samples rows: above a quarter of the training rows no tree could split at all.
    leaf_cap = leaf_minimum_cap(len(X_train))
    deadline = time.monotonic() + seconds
    best = {"auc": -np.inf, "model": None}
    weighted = {} if sample_weight is None else {"classifier__sample_weight": np.asarray(sample_weight, dtype=float)}

    def stop_at_deadline(env):
        if time.monotonic() > deadline:
            raise lightgbm.callback.EarlyStopException(env.iteration, env.evaluation_result_list or [])

    def objective(trial):
        params = {
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.1, log=True),
            "n_estimators": trial.suggest_int("n_estimators", 150, 1200, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 31, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", min(30, leaf_cap), min(600, leaf_cap),
                                                   log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.2, 1.0),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        }
        pipeline = make_lightgbm(spec, random_state=seed, **{key: params[key] for key in ("n_estimators",
                                                                                           "learning_rate")})
        pipeline.set_params(classifier__n_jobs=n_jobs, **{f"classifier__{key}": value for key, value in params.items()
                                                          if key not in ("n_estimators", "learning_rate")})
        pipeline.fit(X_train, y_train, classifier__callbacks=[stop_at_deadline], **weighted)
        if time.monotonic() > deadline:  # cut short: its figure would not be this parameter set's
            raise optuna.TrialPruned()
        auc = float(roc_auc_score(y_validation, pipeline.predict_proba(X_validation)[:, 1]))
        if auc > best["auc"]:
            best.update(auc=auc, model=pipeline, params=params)
        return auc

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    # The defaults' leaf minimum capped as training's fit caps it (training.weights): the same untuned model.
    study.enqueue_trial({**DEFAULTS, "min_child_samples": min(DEFAULTS["min_child_samples"], leaf_cap)})
    started = time.monotonic()
    study.optimize(objective, timeout=seconds, n_trials=max_trials, catch=())
    trials = pd.DataFrame([{"trial": trial.number, "state": trial.state.name, "validation_roc_auc": trial.value,
                            "seconds": trial.duration.total_seconds() if trial.duration else np.nan, **trial.params}
                           for trial in study.trials])
    if best["model"] is None:
        log(f"hyperparameter search: no trial finished within {seconds:.0f} s; fitting the default parameters")
        pipeline = fit_weighted(make_lightgbm(spec, random_state=seed), X_train, y_train, sample_weight)
        return pipeline, {**DEFAULTS, "min_child_samples": min(DEFAULTS["min_child_samples"], leaf_cap)}, trials
    log(f"hyperparameter search: {int((trials['state'] == 'COMPLETE').sum())} trials in "
        f"{time.monotonic() - started:.0f} s (budget {seconds:.0f} s); best validation ROC AUC {best['auc']:.4f} "
        f"(defaults {trials['validation_roc_auc'].iloc[0]:.4f})")
    return best["model"], best["params"], trials
