"""Model selection over several rolling-origin windows: a candidate wins only by more than the windows' noise.

One validation slice picked LightGBM on a real loan log (test AUC 0.747) where the logistic
candidate reached 0.764 on the same rows: a single window's luck decides too much. Here each
candidate (model kind, lead weighting, the search's tuned parameters) is refitted at several cut-offs
before the test window, on the rows whose outcome was known at the cut-off, and scored on the window
after it by log loss (a proper scoring rule: ranking and calibration together, after a calibration map
cross-fitted on the window) and ROC AUC. Candidates are listed simplest first; a more complex one
replaces the current choice only when its mean log-loss gain, paired window by window, exceeds
``noise_factor`` standard errors of that gain. The table keeps each map's log loss per window, but the
map itself is chosen on the calibration split (``training.calibrate``): its size, not the windows',
decides whether isotonic pays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from training.backtest import rolling_cutoffs
from training.calibrate import CALIBRATION_METHODS, calibrate
from training.weights import fit_weighted, training_weights

#: Selection windows before the test window, and the share of the pre-test time range before the first.
N_WINDOWS = 3
FIRST_SHARE = 0.5
#: A more complex candidate must gain more than this many standard errors of its paired gain.
NOISE_FACTOR = 2.0
#: A window is scored only with this many converted rows to fit on and to validate.
MIN_FIT_POSITIVES = 20
MIN_VALIDATION_POSITIVES = 5


@dataclass(frozen=True)
class Selection:
    """The chosen ``model`` (a candidate name), why, and the per-window table."""

    model: str
    reason: str
    windows: pd.DataFrame  # one row per (window, candidate)
    summary: pd.DataFrame  # one row per candidate: means and spreads over the windows

    def console_table(self) -> str:
        """The per-window table as the console shows it: log loss and AUC per candidate and window."""
        table = self.windows.pivot_table(index=["window", "validate_from", "validate_to", "validation_rows",
                                                "base_rate"], columns="candidate",
                                         values=["log_loss", "roc_auc"], sort=False)
        table.columns = [f"{metric} {name}" for metric, name in table.columns]
        return table.reset_index().to_string(index=False, float_format=lambda v: f"{v:.4f}")


def selection_windows(times, *, pool, n_windows: int = N_WINDOWS, first_share: float = FIRST_SHARE) -> list[tuple]:
    """Consecutive validation windows ``(start, end)`` over the newest ``1 - first_share`` of the pool's times."""
    times = pd.to_datetime(pd.Series(np.asarray(times)))[np.asarray(pool, dtype=bool)]
    if times.nunique() < 2:
        return []
    return rolling_cutoffs(times, n_windows=n_windows, first_share=first_share)


def time_splits(times, *, windows, known_at=None, pool=None) -> list[dict]:
    """Each window's rows: it fits on the ``pool`` rows whose label was known at its start (``known_at <=
    start``; ``known_at`` defaults to ``times``) and validates on the pool rows whose time falls in it.

    A lead's older rows may fit while its newer rows validate, as when a champion scores the open base.
    """
    times = pd.to_datetime(pd.Series(np.asarray(times))).to_numpy()
    known_at = times if known_at is None else pd.to_datetime(pd.Series(np.asarray(known_at))).to_numpy()
    pool = np.ones(times.size, dtype=bool) if pool is None else np.asarray(pool, dtype=bool)
    splits = []
    for start, end in windows:
        start64, end64 = np.datetime64(pd.Timestamp(start)), np.datetime64(pd.Timestamp(end))
        validate = np.flatnonzero(pool & (times >= start64) & (times < end64))
        # Named by the first and last times validated: as_of dates, not the windows' arbitrary edges.
        splits.append({"validate_from": _day(times[validate].min() if validate.size else start),
                       "validate_to": _day(times[validate].max() if validate.size else end),
                       "fit": np.flatnonzero(pool & (known_at <= start64)), "validate": validate})
    return splits


def fold_splits(labels, *, pool=None, n_folds: int = N_WINDOWS, seed: int = 0) -> list[dict]:
    """Seeded stratified folds of the ``pool`` rows, for a table without dates: each validates once."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels, dtype=int)
    rows = np.flatnonzero(np.ones(labels.size, dtype=bool) if pool is None else np.asarray(pool, dtype=bool))
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [{"validate_from": f"fold {number}", "validate_to": f"of {n_folds}", "fit": rows[fit],
             "validate": rows[validate]}
            for number, (fit, validate) in enumerate(folds.split(rows, labels[rows]), start=1)]


def compare_candidates(features: pd.DataFrame, labels, *, candidates: dict, splits, groups=None, times=None,
                       methods=CALIBRATION_METHODS, seed: int = 0, min_fit_positives: int = MIN_FIT_POSITIVES,
                       min_validation_positives: int = MIN_VALIDATION_POSITIVES, log=print) -> pd.DataFrame:
    """Refit each candidate on each split's fitting rows and score it on its validation rows.

    ``candidates`` maps a name to ``(unfitted estimator, per_lead)`` or ``(unfitted estimator, per_lead,
    half_life_days)``, the last weighing each fitting row by its recency (``times``, one per row, needed then:
    ``training.weights.recency_weights``, counted back from the window's newest fitting row); ``splits`` come from
    :func:`time_splits` or :func:`fold_splits`. One row per (window, candidate): ``log_loss_<method>`` is
    the window's out-of-fold log loss after that calibration map (``training.calibrate``), ``log_loss``
    the best of them, ``roc_auc`` the uncalibrated ranking's.
    """
    labels = np.asarray(labels, dtype=int)
    groups = np.arange(labels.size) if groups is None else np.asarray(groups)
    times = None if times is None else pd.to_datetime(pd.Series(np.asarray(times))).to_numpy()
    rows = []
    for number, split in enumerate(splits, start=1):
        fit_rows, validation_rows = split["fit"], split["validate"]
        y_fit, y_validation = labels[fit_rows], labels[validation_rows]
        if (y_fit.sum() < min_fit_positives or y_fit.sum() == y_fit.size
                or y_validation.sum() < min_validation_positives or y_validation.sum() == y_validation.size):
            log(f"selection window {number} from {split['validate_from']}: skipped ({int(y_fit.sum())} converted "
                f"rows to fit, {int(y_validation.sum())} of {y_validation.size} converted to validate)")
            continue
        X_fit, X_validation = features.iloc[fit_rows], features.iloc[validation_rows]
        for name, (estimator, per_lead, *half_life) in candidates.items():
            weight = training_weights(groups[fit_rows], None if times is None else times[fit_rows], per_lead=per_lead,
                                      half_life_days=half_life[0] if half_life else None)
            fitted = fit_weighted(clone(estimator), X_fit, y_fit, weight)
            _, log_losses = calibrate(fitted, X_validation, y_validation, methods=methods, seed=seed)
            rows.append({"window": number, "validate_from": split["validate_from"],
                         "validate_to": split["validate_to"], "fit_rows": int(fit_rows.size),
                         "validation_rows": int(validation_rows.size), "base_rate": float(y_validation.mean()),
                         "candidate": name,
                         "roc_auc": float(roc_auc_score(y_validation, fitted.predict_proba(X_validation)[:, 1])),
                         "log_loss": float(min(log_losses.values())),
                         **{f"log_loss_{method}": float(value) for method, value in log_losses.items()}})
    return pd.DataFrame(rows)


def select_candidate(features, labels, times, *, known_at, pool, groups, candidates, config, log) -> Selection | None:
    """Training's selection: over time windows before the test window, or folds when there is no time; None
    when ``config.selection_windows`` is 0. Logs the per-window table and the reason."""
    if config.selection_windows < 1:
        return None
    if times is None:
        splits, kind = fold_splits(labels, pool=pool, n_folds=max(config.selection_windows, 2),
                                   seed=config.seed), "folds of the training and calibration leads"
    else:
        windows = selection_windows(times, pool=pool, n_windows=config.selection_windows)
        splits = time_splits(times, windows=windows, known_at=known_at, pool=pool)
        kind = "windows before the test window"
    skipped = []  # said window by window when some window is scored, in one line when none is
    table = compare_candidates(features, labels, candidates=candidates, splits=splits, groups=groups, times=times,
                               seed=config.seed, log=skipped.append)
    selection = choose(table, order=list(candidates))
    if table.empty:
        log(no_window_line(splits, labels, kind=kind, fallback=selection.model))
        return selection
    for line in skipped:
        log(line)
    log(f"selection over {table['window'].nunique()} {kind} (log loss after a cross-fitted calibration map; "
        "ROC AUC):\n" + selection.console_table())
    log(f"selected {selection.reason}")
    return selection


def no_window_line(splits, labels, *, kind: str, fallback: str, min_fit_positives: int = MIN_FIT_POSITIVES,
                   min_validation_positives: int = MIN_VALIDATION_POSITIVES) -> str:
    """The one console line of a selection no window could score: what each window had, and the fallback."""
    labels = np.asarray(labels, dtype=int)
    had = "; ".join(f"{split['validate_from']}: {int(labels[split['fit']].sum())} to fit, "
                    f"{int(labels[split['validate']].sum())} to validate" for split in splits)
    return (f"selection: no {kind.replace('windows', 'window').replace('folds', 'fold')} has enough converted rows "
            f"to compare the candidates (each needs {min_fit_positives} to fit and {min_validation_positives} to "
            f"validate{'; ' + had if had else '; none could be made'}); falling back to {fallback}, the simplest "
            "candidate, without a per-window table or a drift check")


def choose(table: pd.DataFrame, *, order, noise_factor: float = NOISE_FACTOR) -> Selection:
    """The simplest candidate no more complex one beats by more than the noise.

    ``order`` lists candidate names simplest first; the first is kept when the table is empty.
    """
    order = [name for name in order if table.empty or name in set(table["candidate"])] or list(order)
    if table.empty:
        return Selection(model=order[0], windows=table, summary=pd.DataFrame(),
                         reason=f"no selection window had enough conversions: {order[0]}, the simplest candidate, "
                                "kept")
    losses = table.pivot(index="window", columns="candidate", values="log_loss")
    chosen, reason = order[0], f"{order[0]}: the simplest candidate"
    for name in order[1:]:
        gain, noise = _paired_gain(losses[chosen], losses[name])
        if gain > noise_factor * noise and gain > 0:
            reason = (f"{name}: log loss lower than {chosen} by {gain:.4f} on average over {len(losses)} windows, "
                      f"more than {noise_factor:g} standard errors ({noise:.4f})")
            chosen = name
        else:
            reason += (f"; {name} gains {gain:.4f} log loss over {len(losses)} windows, not more than "
                       f"{noise_factor:g} standard errors ({noise:.4f})")
    summary = table.groupby("candidate", sort=False).agg(
        windows=("window", "size"), log_loss_mean=("log_loss", "mean"), log_loss_sd=("log_loss", "std"),
        roc_auc_mean=("roc_auc", "mean"), roc_auc_sd=("roc_auc", "std")).reindex(order).reset_index()
    return Selection(model=chosen, reason=reason, windows=table, summary=summary)


def _paired_gain(simpler: pd.Series, other: pd.Series) -> tuple[float, float]:
    """Mean of ``simpler - other`` over the windows and its standard error (infinite with one window)."""
    difference = (simpler - other).dropna().to_numpy(dtype=float)
    if difference.size < 2:
        return (float(difference.mean()) if difference.size else 0.0), float("inf")
    return float(difference.mean()), float(difference.std(ddof=1) / np.sqrt(difference.size))


def _day(moment) -> str:
    moment = pd.Timestamp(moment)
    return str(moment.date()) if moment == moment.normalize() else str(moment.floor("min"))
