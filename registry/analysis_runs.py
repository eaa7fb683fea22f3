"""Runs that record an analysis, not a model: a backtest, a comparison with the points rules, a monitoring pass.

Each goes to its model's experiment (or the one given) and carries ``kind`` as a tag; nothing in them
holds a lead's personal data (ids of per-lead tables are keyed digests, and only on request).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

import mlflow
import pandas as pd

from registry import DEFAULT_MODEL_NAME
from registry.loading import _registry_version
from registry.runs import log_readings
from registry.store import _param, experiment_name, use_experiment


#: A team secret that keys logged lead-id digests, so runs that share it can be joined; unset,
#: each run draws its own key and stores it nowhere.
ID_KEY_VARIABLE = "LEAD_SCORING_ID_KEY"


def hashed_id(value, key: bytes) -> str:
    """A lead id as a short keyed digest (HMAC-SHA256): rows join across tables logged with the same key.

    Keyed because a plain digest of a sequential or e-mail id is undone by hashing candidates.
    """
    return hmac.new(key, str(value).encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16]


def id_hash_key() -> tuple[bytes, str]:
    """The key for :func:`hashed_id` and a description of it for the run's tags."""
    secret = os.environ.get(ID_KEY_VARIABLE)
    if secret:
        return secret.encode("utf-8"), f"HMAC-SHA256 keyed by {ID_KEY_VARIABLE}"
    return secrets.token_bytes(32), f"HMAC-SHA256 with a key drawn for this run and not stored (set {ID_KEY_VARIABLE} to join runs)"


def log_backtest(result, *, model_name: str = DEFAULT_MODEL_NAME, experiment: str | None = None, params: dict,
                 figure=None) -> str:
    """Log a backtest: per-window figures as stepped metrics, tables, picture and findings. Returns the run id."""
    use_experiment(experiment_name(model_name, experiment))
    table = result.windows
    name = f"backtest {params.get('model', '')} {table['test_from'].iloc[0]}..{table['test_to'].iloc[-1]}"
    with mlflow.start_run(run_name=name, tags={"kind": "backtest", "model_name": model_name}) as run:
        mlflow.log_params({key: _param(value) for key, value in params.items()})
        for step, row in enumerate(table.itertuples(), start=1):
            mlflow.log_metrics({f"backtest_{key}": float(getattr(row, key)) for key in
                                ("roc_auc", "ece", "test_base_rate", "train_base_rate", "max_psi")}, step=step)
        mlflow.log_table(table, "backtest/windows.json")
        mlflow.log_text(table.to_csv(index=False), "backtest/windows.csv")
        mlflow.log_text(result.drift.to_csv(index=False), "backtest/feature_drift.csv")
        mlflow.log_text("\n".join(result.findings) + "\n", "backtest/findings.txt")
        mlflow.set_tag("mlflow.note.content", "\n\n".join(result.findings))
        if figure is not None:
            mlflow.log_figure(figure, "backtest/backtest.png")
    return run.info.run_id


def log_comparison(comparison, *, figures: dict, report_path, experiment: str | None = None,
                   run_name: str = "compare-rules", model_uri: str | None = None, rules=None,
                   log_lead_rows: bool = False) -> str:
    """Log a model-vs-rules comparison: metrics, tables, pictures, rule files. Returns the run id.

    It goes to the compared model's experiment unless ``experiment`` says otherwise. Tables with
    one row per lead stay on disk unless ``log_lead_rows``; then their ids are logged as keyed
    digests (:func:`id_hash_key`). The HTML report lists raw ids and stays on disk; its path is a
    tag. Aggregate tables are always logged.
    """
    compared, version = _registry_version(model_uri) if model_uri else (None, None)
    use_experiment(experiment_name(compared or DEFAULT_MODEL_NAME, experiment))
    with mlflow.start_run(run_name=run_name) as run:
        params = dict(comparison.params)
        if model_uri:
            params["model_uri"] = model_uri
        mlflow.log_params({key: _param(value) for key, value in params.items()})
        mlflow.log_metrics(comparison.metrics)
        key, keyed_by = id_hash_key()
        for name, table in comparison.tables.items():
            if "lead_id" in table.columns:
                if not log_lead_rows:
                    continue
                table = table.assign(lead_id=table["lead_id"].map(lambda value: hashed_id(value, key)))
            mlflow.log_text(table.to_csv(index=False), f"comparison/{name}.csv")
        for name, figure in figures.items():
            mlflow.log_figure(figure, f"comparison/plots/{name}.png")
        # The HTML report lists raw lead ids (they may be e-mails): it stays on disk, always.
        mlflow.set_tag("report_path", str(report_path))
        mlflow.set_tag("lead_rows", f"logged, ids as {keyed_by}" if log_lead_rows else "not logged (--log-lead-rows)")
        if rules is not None:
            mlflow.log_text(rules.to_toml(), "comparison/rules.toml")
        if comparison.scorecard is not None:
            mlflow.log_text(comparison.scorecard.to_toml(), "comparison/learned_points.toml")
        mlflow.set_tag("kind", "comparison")
        if compared:  # the version compared, so the tier planner finds the rules' figures of its model
            mlflow.set_tags({"model_name": compared, "model_version": version})
    return run.info.run_id


def log_monitoring(report, *, report_path=None, model_uri: str | None = None, identity: dict | None = None,
                   experiment: str | None = None, run_name: str | None = None, as_of=None) -> str:
    """Log a drift report as an MLflow run tagged ``kind=monitoring``; returns the run id.

    It goes to the scored model's experiment unless ``experiment`` says otherwise; it is named by
    model, version and the scoring date ("monitoring lead-conversion v3 2026-03-31") unless
    ``run_name`` is given.
    """
    name = (identity or {}).get("model_name") or (_registry_version(model_uri)[0] if model_uri else None)
    use_experiment(experiment_name(name or DEFAULT_MODEL_NAME, experiment))
    if run_name is None:
        version = (identity or {}).get("model_version")
        day = pd.Timestamp(as_of).date() if as_of is not None else pd.Timestamp.now(tz="UTC").date()
        run_name = " ".join(part for part in ("monitoring", name, f"v{version}" if version else None, str(day))
                            if part)
    with mlflow.start_run(run_name=run_name) as run:
        params = {"psi_warning": report.psi_bands[0], "psi_alert": report.psi_bands[1],
                  "unseen_warning": report.unseen_bands[0], "unseen_alert": report.unseen_bands[1]}
        if model_uri:
            params["model_uri"] = model_uri
        for key in ("model_name", "model_version"):
            if identity and identity.get(key):
                params[key] = identity[key]
        mlflow.log_params({key: _param(value) for key, value in params.items()})
        mlflow.log_metrics(report.metrics())
        mlflow.log_text(report.features.to_csv(index=False), "monitoring/feature_drift.csv")
        mlflow.log_text(report.tiers.to_csv(index=False), "monitoring/tier_mix.csv")
        mlflow.log_text(report.score_bins.to_csv(index=False), "monitoring/score_bins.csv")
        if report_path is not None:
            mlflow.log_artifact(str(report_path), "monitoring")
        mlflow.set_tags({"kind": "monitoring", "monitoring_status": report.status})
        log_readings()
    return run.info.run_id
