"""Training: snapshots or one lead table -> split -> leakage and data guards -> fit -> calibrate -> evaluate."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from sklearn.metrics import roc_auc_score

from features.build import build_features
from features.spec import FeatureSpec
from features.timing import duration
from features.vocabulary import EventVocabulary
from models.bundle import ModelBundle
from models.monitoring import open_lead_reference
from models.score_bins import probability_bins
from training.config import TrainingConfig, config_from_params
from training.evaluate import decile_table, tier_table
from training.fit_evaluate import guard_fit_and_evaluate
from training.refit import compare_champion, refit_registered
from training.snapshot_split import labelled_snapshots, latest_timestamp, split_snapshots
from training.split import stratified_split, time_ordered_split

# Callers import the run's settings and snapshot helpers from here, as before the split into modules.
__all__ = ["TrainingConfig", "TrainingResult", "config_from_params", "labelled_snapshots", "latest_timestamp",
           "split_snapshots", "train_model", "train_on_table"]


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
    # The refit fits on every labelled snapshot, also those the split leaves out (a training lead's later ones).
    labelled, windows, as_of_dates = split_snapshots(leads, deals, config=config, data_end=data_end,
                                                     unassigned=config.refit)
    assigned = labelled["split"].notna().to_numpy()
    run_split = {"data_end": str(data_end), **{f"window_{key}": value for key, value in windows.as_dict().items()}}
    snapshots = labelled.loc[assigned].reset_index(drop=True)
    log(f"snapshots: {len(snapshots):,} over {snapshots['as_of'].nunique()} as_of dates; "
        + ", ".join(f"{name} {count:,}" for name, count in snapshots["split"].value_counts().items()))
    if event_vocabulary is not None and events is not None:
        spec, counts = event_vocabulary.learned_spec(spec, events, before=windows.test_first)
        types, rest = spec.event_types, counts.loc[~counts["column"]]
        log(f"event types: {len(types)} of {len(counts)} get columns of their own ({', '.join(types)})"
            + (f"; {len(rest)} rarer count as other ({_listed(rest['event_type'])})" if len(rest) else ""))

    every_feature = build_features(labelled, leads, events, spec)
    features = every_feature.loc[assigned].reset_index(drop=True)
    # A snapshot's label is known a horizon after its as_of: selection windows fit only on known ones.
    declared = spec  # before the leakage guard drops columns: what this data's contract declares
    spec, features, fitted = guard_fit_and_evaluate(features, snapshots["label"], snapshots["split"], spec,
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
                         label=f"won within {config.horizon_days} days of as_of", log=log,
                         split={**config.as_params(), **run_split})
    refit = refit_registered(every_feature[spec.feature_names], labelled, fitted, spec=spec, config=config,
                             data_end=data_end, log=log)
    # Monitoring compares a scored base with the leads open at the end of the data, as this model scores them.
    fitted["reference"] = open_lead_reference(fitted["model"], spec, fitted["thresholds"], leads, events, deals,
                                              as_of=data_end) or fitted["reference"]

    params = {
        **config.as_params(),
        **fitted["params"],
        "split": "temporal",
        "as_of_first": _moment(as_of_dates[0]),
        "as_of_last": _moment(as_of_dates[-1]),
        **run_split,
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
    spec, features, fitted = guard_fit_and_evaluate(features, rows["label"], rows["split"], spec, config,
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


def _listed(names, limit: int = 12) -> str:
    """Names for a console line: all of them, or the first ``limit`` and how many more."""
    names = [str(name) for name in names]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _moment(moment: pd.Timestamp) -> str:
    """A date, or a date and time when the schedule is below a day."""
    return str(moment.date()) if moment == moment.normalize() else str(moment)
