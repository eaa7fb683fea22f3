"""train_model: snapshots -> temporal split -> fit candidates -> calibrate -> evaluate -> tier thresholds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from features.build import build_features
from features.contract import event_relation
from features.spec import FeatureSpec
from models.bundle import ModelBundle
from models.estimators import make_candidates
from models.tiers import CapacityPolicy, policy_from_dict
from training.calibrate import calibrate
from training.evaluate import decile_table, evaluate_probabilities, tier_table
from training.snapshots import as_of_schedule, build_snapshots
from training.split import temporal_split


@dataclass
class TrainingConfig:
    """How snapshots are taken and split, and how tiers are chosen."""

    horizon_days: int = 90
    snapshot_every_days: int = 30
    test_days: int = 90
    calibration_days: int = 60
    lead_shares: tuple = (0.6, 0.2, 0.2)
    tier_policy: object = field(default_factory=CapacityPolicy)
    seed: int = 0

    def as_params(self) -> dict:
        params = asdict(self)
        params["tier_policy"] = {"kind": type(self.tier_policy).__name__, **asdict(self.tier_policy)}
        return params


@dataclass
class TrainingResult:
    """What a training run produced: the bundle to register and everything to log beside it."""

    bundle: ModelBundle
    params: dict
    metrics: dict
    tables: dict
    test: pd.DataFrame  # lead_id, as_of, label, probability, tier of the test snapshots


def train_model(leads: pd.DataFrame, events, deals: pd.DataFrame, *, spec: FeatureSpec | None = None,
                config: TrainingConfig | None = None, data_end=None, oracle=None, champion: ModelBundle | None = None,
                log=print) -> TrainingResult:
    """Train, calibrate and evaluate a conversion model on validated CRM tables.

    ``oracle``, when given, maps snapshots to their true probability (synthetic data) and adds
    ``test_oracle_roc_auc``. ``champion``, when given, is scored on the same test snapshots with
    its own feature spec, so the caller can decide on promotion with like-for-like figures.
    """
    spec = spec or FeatureSpec()
    config = config or TrainingConfig()
    data_end = pd.Timestamp(data_end) if data_end is not None else latest_timestamp(leads, events, deals)
    snapshots, windows, as_of_dates = split_snapshots(leads, deals, config=config, data_end=data_end)
    log(f"snapshots: {len(snapshots):,} over {snapshots['as_of'].nunique()} as_of dates; "
        + ", ".join(f"{name} {count:,}" for name, count in snapshots["split"].value_counts().items()))

    features = build_features(snapshots, leads, events, spec)
    parts = {name: (features[snapshots["split"].eq(name).to_numpy()],
                    snapshots.loc[snapshots["split"].eq(name), "label"].to_numpy())
             for name in ("train", "calibration", "test")}
    X_train, y_train = parts["train"]
    X_cal, y_cal = parts["calibration"]
    X_test, y_test = parts["test"]

    metrics, fitted = {}, {}
    for name, candidate in make_candidates(spec, random_state=config.seed).items():
        fitted[name] = clone(candidate).fit(X_train, y_train)
        auc = roc_auc_score(y_cal, fitted[name].predict_proba(X_cal)[:, 1])
        metrics[f"validation_roc_auc_{name}"] = float(auc)
        log(f"candidate {name}: validation ROC AUC {auc:.4f}")
    best = max(fitted, key=lambda name: metrics[f"validation_roc_auc_{name}"])
    calibrated, log_losses = calibrate(fitted[best], X_cal, y_cal, seed=config.seed)
    method = min(log_losses, key=log_losses.get)
    metrics.update({f"calibration_log_loss_{name}": value for name, value in log_losses.items()})

    thresholds = config.tier_policy.choose(calibrated.predict_proba(X_cal)[:, 1])
    probability = calibrated.predict_proba(X_test)[:, 1]
    metrics.update(evaluate_probabilities(y_test, probability))
    test = snapshots.loc[snapshots["split"].eq("test"), ["lead_id", "as_of", "label"]].assign(
        probability=probability, tier=thresholds.assign(probability))
    if oracle is not None:
        metrics["test_oracle_roc_auc"] = float(roc_auc_score(y_test, oracle(test)))
    if champion is not None:
        champion_features = build_features(test, leads, events, champion.spec)
        metrics["champion_test_roc_auc"] = float(
            roc_auc_score(y_test, champion.predict_probability(champion_features)))

    params = {
        **config.as_params(),
        "model": best,
        "calibration": method,
        "data_end": str(data_end),
        "as_of_first": str(as_of_dates[0].date()),
        "as_of_last": str(as_of_dates[-1].date()),
        **{f"window_{key}": value for key, value in windows.as_dict().items()},
        **{f"rows_{name}": int(len(parts[name][1])) for name in parts},
        **{f"positives_{name}": int(parts[name][1].sum()) for name in parts},
        "leads": int(len(leads)),
        "features": len(spec.feature_names),
    }
    bundle = ModelBundle(spec=spec, model=calibrated, thresholds=thresholds,
                         metadata={"params": params, "metrics": metrics})
    tables = {
        "test_tiers": tier_table(y_test, probability, test["tier"]),
        "test_deciles": decile_table(y_test, probability),
    }
    return TrainingResult(bundle=bundle, params=params, metrics=metrics, tables=tables, test=test)


def split_snapshots(leads: pd.DataFrame, deals: pd.DataFrame, *, config: TrainingConfig, data_end):
    """Labelled snapshots with their ``split`` column, the split windows and the ``as_of`` dates.

    The one place the snapshot schedule and temporal split are made, so a comparison or a
    scorecard fitted later sees exactly the training run's test snapshots.
    """
    data_end = pd.Timestamp(data_end)
    as_of_dates = as_of_schedule(leads["created_at"].min() + pd.Timedelta(days=config.snapshot_every_days),
                                 data_end - pd.Timedelta(days=config.horizon_days),
                                 every_days=config.snapshot_every_days)
    snapshots = build_snapshots(leads, deals, as_of_dates=as_of_dates, horizon_days=config.horizon_days,
                                data_end=data_end)
    split, windows = temporal_split(snapshots, horizon_days=config.horizon_days, test_days=config.test_days,
                                    calibration_days=config.calibration_days, lead_shares=config.lead_shares,
                                    seed=config.seed)
    snapshots = snapshots.assign(split=split).dropna(subset=["split"]).reset_index(drop=True)
    _check_classes(snapshots)
    return snapshots, windows, as_of_dates


def config_from_params(params: dict) -> TrainingConfig:
    """The TrainingConfig a run logged in its bundle's ``metadata["params"]`` (tier policy included)."""
    names = {"horizon_days", "snapshot_every_days", "test_days", "calibration_days", "lead_shares", "seed"}
    values = {key: params[key] for key in names if key in params}
    if "lead_shares" in values:
        values["lead_shares"] = tuple(values["lead_shares"])
    if isinstance(params.get("tier_policy"), dict):
        policy = dict(params["tier_policy"])
        kind = {"CapacityPolicy": "capacity", "PrecisionPolicy": "precision"}.get(policy.pop("kind", None), "capacity")
        values["tier_policy"] = policy_from_dict({"kind": kind, **policy})
    return TrainingConfig(**values)


def latest_timestamp(leads: pd.DataFrame, events, deals: pd.DataFrame) -> pd.Timestamp:
    """The end of the data window: the latest timestamp in any of the three tables."""
    import duckdb

    with duckdb.connect() as con:
        latest_event, = event_relation(con, events).aggregate("max(CAST(occurred_at AS TIMESTAMP))").fetchall()[0]
    candidates = [leads["created_at"].max(), deals["closed_at"].max() if len(deals) else None, latest_event]
    return max(pd.Timestamp(value) for value in candidates if value is not None and not pd.isna(value))


def _check_classes(snapshots: pd.DataFrame) -> None:
    for name, group in snapshots.groupby("split"):
        counts = np.bincount(group["label"].to_numpy(), minlength=2)
        if counts.min() == 0:
            raise ValueError(f"The {name} split has {counts[1]} converted and {counts[0]} non-converted "
                             "snapshots; it needs both. Provide more closed deals or a longer data window.")
