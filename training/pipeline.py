"""Training: snapshots or one lead table -> split -> leakage and data guards -> fit -> calibrate -> evaluate."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from features.build import build_features
from features.contract import event_relation
from features.snapshots import as_of_schedule, build_snapshots
from features.spec import FeatureSpec
from features.timing import duration, duration_days
from features.vocabulary import EventVocabulary
from models.bundle import ModelBundle
from models.estimators import make_candidates
from models.monitoring import build_reference, open_lead_reference
from models.score_bins import probability_bins
from models.threads import blas_threads, blas_threads_for, resolve_threads
from models.tiers import POLICIES, CapacityPolicy, policy_from_dict, tier_cutoffs
from training.calibrate import calibrate
from training.drift import check_newest_window
from training.refit import compare_champion, refit_registered
from training.evaluate import decile_table, evaluate_probabilities, tier_table
from training.guards import NoSignalWarning, check_minimum_data, count_converted_leads, has_signal, warn_small_splits
from training.leakage import apply_leakage_guard, suspicious_columns
from training.search import search_lightgbm
from training.selection import select_candidate
from training.segments import fit_segment_models, segment_feature, segment_table
from training.split import SPLIT_KINDS, stratified_split, suggestion_text, temporal_split, time_ordered_split
from training.weights import fit_weighted, lead_weights


@dataclass
class TrainingConfig:
    """How snapshots are taken and split, and how tiers are chosen.

    The four spans are durations in days; ``"6h"``, ``"2d"`` and ``"90d"`` are read as such.
    """

    horizon_days: float = 90
    # Twice a month: more as_of dates let the model see each lead at more stages of its journey.
    snapshot_every_days: float = 15
    test_days: float = 90
    calibration_days: float = 60
    lead_shares: tuple = (0.6, 0.2, 0.2)
    # "lead_share": each lead in one split, by lead_shares; "time": time alone separates the splits, as
    # production spends leads (training.split.temporal_split).
    split_by: str = "lead_share"
    # After evaluation, register the chosen settings refit on every snapshot whose outcome is known at the
    # data's end (training.refit) instead of the model fitted on the training split.
    refit: bool = False
    tier_policy: object = field(default_factory=CapacityPolicy)
    seed: int = 0
    min_positives: int = 40
    min_negatives: int = 40
    min_split_positives: int = 20
    leakage_max_auc: float = 0.95
    post_outcome_columns: tuple = ()
    keep_columns: tuple = ()
    # Kept but flagged, and never promoted automatically: realistic leaks score 0.8-0.92 alone.
    leakage_suspicious_auc: float = 0.80
    # Snapshots repeat leads: the guards also count distinct converting leads.
    min_converted_leads: int = 20
    min_split_converted_leads: int = 10
    # A validation AUC at or below this is noise: not promoted, tiers reported as uninformative.
    min_validation_auc: float = 0.55
    # One model per value of this categorical lead column with enough data, a global model for the rest.
    segment_by: str | None = None
    # Wall-clock seconds for the LightGBM hyperparameter search on train -> calibration; 0 turns it off.
    search_seconds: float = 0.0
    #: LightGBM's threads (BLAS gets one for small fits); None: LEAD_SCORING_THREADS or the cores available.
    threads: int | None = None
    # Candidates fitted with each lead weighing one, shared by its snapshots, so long-open leads do not
    # dominate: LightGBM gained 0.003-0.004 test AUC on the demo (three seeds, two LightGBM seeds) and
    # nothing on a real log; the logistic model lost 0.001-0.005 validation AUC on both. Calibration
    # and evaluation stay per row.
    per_lead_candidates: tuple = ("lightgbm",)
    # Rolling-origin windows before the test window on which candidates and calibration maps are compared
    # (training.selection); 0 picks by the one calibration split's ROC AUC, as before.
    selection_windows: int = 3

    def __post_init__(self):
        for name in _SPANS:
            days = duration_days(getattr(self, name), name=f"The {name!r} parameter of TrainingConfig")
            setattr(self, name, int(days) if days.is_integer() else days)  # 90, not 90.0, in logged params
        listed = self.per_lead_candidates
        if isinstance(listed, str) or not isinstance(listed, (list, tuple)) or not all(
                isinstance(name, str) for name in listed):
            raise ValueError("The 'per_lead_candidates' parameter of TrainingConfig must be a list of candidate names "
                             f"such as ['lightgbm'] (or empty). Got {listed!r} instead.")
        self.per_lead_candidates = tuple(listed)
        if self.split_by not in SPLIT_KINDS:
            raise ValueError(f"The 'split_by' parameter of TrainingConfig must be one of {list(SPLIT_KINDS)}. "
                             f"Got {self.split_by!r} instead.")

    def as_params(self) -> dict:
        params = asdict(self)
        params["tier_policy"] = {"kind": type(self.tier_policy).__name__, **asdict(self.tier_policy)}
        return params


_SPANS = ("horizon_days", "snapshot_every_days", "test_days", "calibration_days")


@dataclass
class TrainingResult:
    """What a training run produced: the bundle to register and everything to log beside it."""

    bundle: ModelBundle
    params: dict
    metrics: dict
    tables: dict
    test: pd.DataFrame  # lead_id, as_of, label, probability, tier of the test snapshots
    example: pd.DataFrame | None = None  # one real test row of features: the logged model's input example
    datasets: dict = field(default_factory=dict)  # split name -> (features, labels), for lineage (digests, counts)
    test_features: pd.DataFrame | None = None  # their feature rows (for reports: factor importance)


def train_model(leads: pd.DataFrame, events, deals: pd.DataFrame, *, spec: FeatureSpec | None = None,
                config: TrainingConfig | None = None, data_end=None, oracle=None, champion: ModelBundle | None = None,
                event_vocabulary: EventVocabulary | None = None, log=print, ceiling=None) -> TrainingResult:
    """Train, calibrate and evaluate a conversion model on validated CRM tables.

    ``event_vocabulary``, when given, replaces the spec's event types with the log's own most
    frequent types, counted on events before the test window opens.

    ``oracle``, when given, maps snapshots to their true probability (synthetic data) and adds
    ``test_oracle_roc_auc``; ``ceiling`` likewise maps them to the best probability a model could
    reach from the lead's events (the synthetic truth's filter) and adds ``test_observable_ceiling_roc_auc``.
    ``champion``, when given, is scored on the same test snapshots with
    its own feature spec, so the caller can decide on promotion with like-for-like figures.
    """
    spec = spec or FeatureSpec()
    config = config or TrainingConfig()
    started_at = pd.Timestamp.now(tz="UTC")
    data_end = pd.Timestamp(data_end) if data_end is not None else latest_timestamp(leads, events, deals)
    snapshots, windows, as_of_dates = split_snapshots(leads, deals, config=config, data_end=data_end)
    log(f"snapshots: {len(snapshots):,} over {snapshots['as_of'].nunique()} as_of dates; "
        + ", ".join(f"{name} {count:,}" for name, count in snapshots["split"].value_counts().items()))
    if event_vocabulary is not None and events is not None:
        spec, counts = event_vocabulary.learned_spec(spec, events, before=windows.test_first)
        types, rest = spec.event_types, counts.loc[~counts["column"]]
        log(f"event types: {len(types)} of {len(counts)} get columns of their own ({', '.join(types)})"
            + (f"; {len(rest)} rarer count as other ({_listed(rest['event_type'])})" if len(rest) else ""))

    features = build_features(snapshots, leads, events, spec)
    # A snapshot's label is known a horizon after its as_of: selection windows fit only on known ones.
    declared = spec  # before the leakage guard drops columns: what this data's contract declares
    spec, features, fitted = _guard_fit_and_evaluate(features, snapshots["label"], snapshots["split"], spec,
                                                     config, groups=snapshots["lead_id"], log=log,
                                                     times=snapshots["as_of"],
                                                     known_at=snapshots["as_of"] + duration(config.horizon_days))
    metrics, thresholds, probability = fitted["metrics"], fitted["thresholds"], fitted["probability"]
    y_test = fitted["y_test"]
    test = snapshots.loc[snapshots["split"].eq("test"), ["lead_id", "as_of", "label"]].assign(
        probability=probability, tier=thresholds.assign(probability))
    if oracle is not None:
        metrics["test_oracle_roc_auc"] = float(roc_auc_score(y_test, oracle(test)))
    if ceiling is not None:
        metrics["test_observable_ceiling_roc_auc"] = float(roc_auc_score(y_test, ceiling(test)))
    if champion is not None:
        compare_champion(champion, test, leads, events, fitted, spec=declared,
                         label=f"won within {config.horizon_days} days of as_of", log=log)
    refit = refit_registered(features, snapshots, fitted, spec=spec, config=config, data_end=data_end, log=log)
    # Monitoring compares a scored base with the leads open at the end of the data, as this model scores them.
    fitted["reference"] = open_lead_reference(fitted["model"], spec, fitted["thresholds"], leads, events, deals,
                                              as_of=data_end) or fitted["reference"]

    params = {
        **config.as_params(),
        **fitted["params"],
        "split": "temporal",
        "data_end": str(data_end),
        "as_of_first": _moment(as_of_dates[0]),
        "as_of_last": _moment(as_of_dates[-1]),
        **{f"window_{key}": value for key, value in windows.as_dict().items()},
        "leads": int(len(leads)),
        "training_started_at": started_at.isoformat(),
        **_won_amount(deals),
        **refit,
    }
    return _result(spec, fitted, params, test)


def train_on_table(leads: pd.DataFrame, labels: pd.Series, *, spec: FeatureSpec, config: TrainingConfig | None = None,
                   champion: ModelBundle | None = None, log=print) -> TrainingResult:
    """Train on one lead table whose outcome is a column: no event log, no snapshots.

    ``leads`` has ``lead_id`` and the spec's attribute columns (engagement already summarised
    in columns); ``labels`` is 1 / 0 per lead, missing for open leads, which are left out.
    With a ``created_at`` column the split is by creation time (oldest train, newest test);
    without one it is a seeded stratified split, and the run says so.
    """
    config = config or TrainingConfig()
    started_at = pd.Timestamp.now(tz="UTC")
    if spec.event_log or spec.lead_age:
        raise ValueError("train_on_table trains on a lead table alone: the spec must have event_log=False and "
                         f"lead_age=False. Got event_log={spec.event_log} and lead_age={spec.lead_age}.")
    labelled = labels.notna().to_numpy()
    if not labelled.all():
        log(f"{int((~labelled).sum()):,} leads without an outcome are left out of training")
    leads = leads.loc[labelled].reset_index(drop=True)
    y = pd.Series(labels[labelled].astype(int).to_numpy())
    if "created_at" in leads.columns:
        split_kind = "time"
        split = time_ordered_split(leads["created_at"], shares=config.lead_shares)
        log("split: by creation date (oldest leads train, newest test)")
    else:
        split_kind = "stratified"
        split = stratified_split(y, shares=config.lead_shares, seed=config.seed)
        log(f"split: no dates in the lead table, so no temporal split; seeded stratified split "
            f"(seed {config.seed}, shares {tuple(config.lead_shares)})")
    rows = pd.DataFrame({"lead_id": leads["lead_id"], "as_of": pd.NaT, "label": y, "split": split})
    log(", ".join(f"{name} {count:,}" for name, count in rows["split"].value_counts().items()) + " leads")
    features = build_features(rows, leads, None, spec)
    declared = spec
    spec, features, fitted = _guard_fit_and_evaluate(features, rows["label"], rows["split"], spec, config,
                                                     groups=rows["lead_id"], log=log,
                                                     times=leads["created_at"] if split_kind == "time" else None)
    test = rows.loc[rows["split"].eq("test"), ["lead_id", "label"]].assign(
        probability=fitted["probability"], tier=fitted["thresholds"].assign(fitted["probability"]))
    if champion is not None:
        compare_champion(champion, rows.loc[test.index], leads, None, fitted, spec=declared,
                         label="converted (label column)", log=log)
    params = {**config.as_params(), **fitted["params"], "split": split_kind, "leads": int(len(leads)),
              "training_started_at": started_at.isoformat()}
    return _result(spec, fitted, params, test)


def _guard_fit_and_evaluate(features: pd.DataFrame, labels: pd.Series, split: pd.Series, spec: FeatureSpec,
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

    metrics, fitted, per_lead = {}, {}, {}
    threads = resolve_threads(config.threads)
    candidates = make_candidates(spec, random_state=config.seed, n_jobs=threads)
    search = None
    with blas_threads(blas_threads_for(*X_train.shape, threads)):
        for name, candidate in candidates.items():
            per_lead[name] = train_weight is not None and name in config.per_lead_candidates
            if name == "lightgbm" and config.search_seconds > 0:
                fitted[name], searched, search = search_lightgbm(spec, X_train, y_train, X_cal, y_cal,
                                                                 seconds=config.search_seconds, seed=config.seed,
                                                                 n_jobs=threads, log=log,
                                                                 sample_weight=train_weight if per_lead[name] else None)
                candidates[name] = clone(fitted[name])  # the tuned parameters, unfitted: segment models start there
                metrics["search_trials"] = float((search["state"] == "COMPLETE").sum())
            else:
                fitted[name] = fit_weighted(clone(candidate), X_train, y_train,
                                            train_weight if per_lead[name] else None)
            auc = roc_auc_score(y_cal, fitted[name].predict_proba(X_cal)[:, 1])
            metrics[f"validation_roc_auc_{name}"] = float(auc)
            log(f"candidate {name}{' (each lead weighing one)' if per_lead[name] else ''}: "
                f"validation ROC AUC {auc:.4f}")
        selection = select_candidate(features, labels, times, known_at=known_at, pool=in_split["train"] | in_split[
            "calibration"], groups=groups, candidates={name: (candidates[name], per_lead[name]) for name in fitted},
            config=config, log=log)
        if selection is None:
            best = max(fitted, key=lambda name: metrics[f"validation_roc_auc_{name}"])
        else:
            best = selection.model
        validation_auc = metrics[f"validation_roc_auc_{best}"]
        # The map is chosen on the calibration split itself, not on the windows: its size decides whether
        # isotonic pays (the fines log's windows of 28-35k rows favoured isotonic, its 3.5k-row split
        # sigmoid; the windows' choice cost test ECE 0.0143 -> 0.0167 and PR AUC 0.2045 -> 0.2022).
        calibrated, log_losses = calibrate(fitted[best], X_cal, y_cal, seed=config.seed)
    method = min(log_losses, key=log_losses.get)
    metrics.update({f"calibration_log_loss_{name}": value for name, value in log_losses.items()})
    segments = None
    if config.segment_by:
        global_model = calibrated
        calibrated = fit_segment_models(candidates[best], global_model,
                                        feature=segment_feature(spec, config.segment_by), X_train=X_train,
                                        y_train=y_train, train_weight=train_weight if per_lead.get(best) else None,
                                        X_cal=X_cal, y_cal=y_cal,
                                        min_positives=config.min_positives,
                                        min_calibration_positives=config.min_split_positives, seed=config.seed,
                                        log=log)
    calibration_probability = calibrated.predict_proba(X_cal)[:, 1]
    if config.segment_by:  # the routed model is what gets used: judge its ranking (its maps saw these rows)
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
                                    leads_newest=len(pd.unique(groups[in_split["test"]])))
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
                    "selection": None if selection is None or selection.windows.empty else selection.windows}
    return spec, features, {"model": calibrated, "thresholds": thresholds, "probability": probability,
                            "y_test": y_test, "X_test": X_test, "metrics": metrics, "params": params,
                            "leakage": leakage, "reference": reference,
                            **fitted_extra}


def _typical_engaged_row(probability: np.ndarray) -> int:
    """The test row at the 90th percentile of probability: a real, plausible lead worth showing as an example
    (not the single most extreme one, and not an all-zero row no lead ever has)."""
    target = np.quantile(probability, 0.9)
    return int(np.argmin(np.abs(probability - target)))


def _result(spec: FeatureSpec, fitted: dict, params: dict, test: pd.DataFrame) -> TrainingResult:
    bundle = ModelBundle(spec=spec, model=fitted["model"], thresholds=fitted["thresholds"],
                         metadata={"params": params, "metrics": fitted["metrics"]}, reference=fitted["reference"])
    y_test, probability = fitted["y_test"], fitted["probability"]
    tables = {
        "test_tiers": tier_table(y_test, probability, test["tier"]),
        "test_deciles": decile_table(y_test, probability),
        # The tier planner's view of the test leads: counts per probability bin, no lead rows.
        "test_probability_bins": probability_bins(probability, converted=y_test),
        "leakage_report": fitted["leakage"],
        "calibration_tier_cutoffs": fitted["cutoffs"],
        **({"test_segments": fitted["segments"]} if fitted.get("segments") is not None else {}),
        **({"search_trials": fitted["search"]} if fitted.get("search") is not None else {}),
        **({"selection_windows": fitted["selection"]} if fitted.get("selection") is not None else {}),
    }
    return TrainingResult(bundle=bundle, params=params, metrics=fitted["metrics"], tables=tables, test=test,
                          example=fitted["example"], datasets=fitted["datasets"],
                          test_features=fitted["X_test"].reset_index(drop=True))


def _won_amount(deals: pd.DataFrame) -> dict:
    """``won_amount_median``: what a won deal is typically worth, for revenue plans (absent without amounts)."""
    if "amount" not in deals.columns:
        return {}
    amounts = pd.to_numeric(deals.loc[deals["outcome"].eq("won"), "amount"], errors="coerce").dropna()
    return {"won_amount_median": float(amounts.median())} if len(amounts) else {}


def split_snapshots(leads: pd.DataFrame, deals: pd.DataFrame, *, config: TrainingConfig, data_end):
    """Labelled snapshots with their ``split`` column, the split windows and the ``as_of`` dates.

    The one place the snapshot schedule and temporal split are made, so a comparison or a
    scorecard fitted later sees exactly the training run's test snapshots.
    """
    snapshots, as_of_dates = labelled_snapshots(leads, deals, config=config, data_end=data_end)
    split, windows = temporal_split(snapshots, horizon_days=config.horizon_days, test_days=config.test_days,
                                    calibration_days=config.calibration_days, lead_shares=config.lead_shares,
                                    by=config.split_by,
                                    seed=config.seed)
    snapshots = snapshots.assign(split=split).dropna(subset=["split"]).reset_index(drop=True)
    return snapshots, windows, as_of_dates


def labelled_snapshots(leads: pd.DataFrame, deals: pd.DataFrame, *, config: TrainingConfig, data_end):
    """Every labelled snapshot on the run's schedule (no split) and the ``as_of`` dates: what a backtest rolls over."""
    data_end = pd.Timestamp(data_end)
    every, horizon = duration(config.snapshot_every_days), duration(config.horizon_days)
    as_of_dates = as_of_schedule(leads["created_at"].min() + every, data_end - horizon,
                                 every_days=config.snapshot_every_days)
    if len(as_of_dates) < 3:
        raise ValueError(
            f"The snapshot schedule (every {config.snapshot_every_days} days, horizon {config.horizon_days} days) "
            f"gives {len(as_of_dates)} snapshot times between the first lead ({leads['created_at'].min()}) and "
            f"the end of the data ({data_end}); training needs 3 or more. "
            + suggestion_text(data_end - leads["created_at"].min()))
    snapshots = build_snapshots(leads, deals, as_of_dates=as_of_dates, horizon_days=config.horizon_days,
                                data_end=data_end)
    return snapshots, as_of_dates


def _listed(names, limit: int = 12) -> str:
    """Names for a console line: all of them, or the first ``limit`` and how many more."""
    names = [str(name) for name in names]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _moment(moment: pd.Timestamp) -> str:
    """A date, or a date and time when the schedule is below a day."""
    return str(moment.date()) if moment == moment.normalize() else str(moment)


def config_from_params(params: dict) -> TrainingConfig:
    """The TrainingConfig a run logged in its bundle's ``metadata["params"]`` (tier policy included)."""
    names = {"horizon_days", "snapshot_every_days", "test_days", "calibration_days", "lead_shares", "seed",
             "split_by"}
    values = {key: params[key] for key in names if key in params}
    if "lead_shares" in values:
        values["lead_shares"] = tuple(values["lead_shares"])
    if isinstance(params.get("tier_policy"), dict):
        policy = dict(params["tier_policy"])
        kind = {cls.__name__: name for name, cls in POLICIES.items()}.get(policy.pop("kind", None), "capacity")
        values["tier_policy"] = policy_from_dict({"kind": kind, **policy})
    return TrainingConfig(**values)


def latest_timestamp(leads: pd.DataFrame, events, deals: pd.DataFrame) -> pd.Timestamp:
    """The end of the data window: the latest timestamp in any of the three tables."""
    import duckdb

    latest_event = None
    if events is not None:  # a dated lead table with deals but no event log
        with duckdb.connect() as con:
            latest_event, = event_relation(con, events).aggregate(
                "max(CAST(occurred_at AS TIMESTAMP))").fetchall()[0]
    candidates = [leads["created_at"].max(), deals["closed_at"].max() if len(deals) else None, latest_event]
    return max(pd.Timestamp(value) for value in candidates if value is not None and not pd.isna(value))

