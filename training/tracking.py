"""MLflow: log a training run, register its model with a champion alias, and load models back.

The only module that imports mlflow (beside ``training/lead_model.py``, the logged model's own
code). The logged model is a pyfunc wrapping a joblib :class:`ModelBundle`, so nothing depends on
MLflow trusting scikit-learn internals; it carries the ``features`` and ``models`` packages, so it
loads from its own requirements where the project is not installed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

import features
import models
from models.bundle import ModelBundle

DEFAULT_MODEL_NAME = "lead-conversion"
DEFAULT_EXPERIMENT = "lead-conversion"
CHAMPION = "champion"
_REQUIREMENTS = ("mlflow", "scikit-learn", "lightgbm", "pandas", "numpy", "joblib", "duckdb", "pyarrow")
#: The pyfunc model, logged as code (models-from-code) with every model.
MODEL_CODE = Path(__file__).with_name("lead_model.py")


class LeadConversionModel(mlflow.pyfunc.PythonModel):
    """pyfunc face of a bundle: feature rows in; ``probability``, ``score`` and ``tier`` out.

    Models logged before ``training/lead_model.py`` pickled this class by reference: kept so they still load.
    """

    def load_context(self, context):
        self.bundle = ModelBundle.load(context.artifacts["bundle"])

    def predict(self, context, model_input, params=None):
        return self.bundle.score(model_input)


def quiet_mlflow(*, verbose: int = 0) -> None:
    """Keep MLflow's own chatter (registration notices, progress bars, pickling advice) off the console.

    With ``verbose`` its log lines and notices show as MLflow writes them. Warnings a user
    can act on still arrive through Python's warnings, which the CLI prints as plain lines.
    """
    from mlflow.utils import logging_utils

    logging_utils.MLFLOW_LOGGING_STREAM.enabled = bool(verbose)
    if not verbose:
        logging.getLogger("mlflow").setLevel(logging.ERROR)


def use_default_store(directory=".") -> str:
    """Point MLflow at a SQLite file in ``directory`` unless MLFLOW_TRACKING_URI says otherwise."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(directory).resolve() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return uri


def log_training_run(result, *, model_name: str = DEFAULT_MODEL_NAME, experiment: str = DEFAULT_EXPERIMENT,
                     figures: dict | None = None, promote: bool = True, run_name: str | None = None,
                     report_path=None, report_tables: dict | None = None, extra_metrics: dict | None = None) -> dict:
    """Log params, metrics, tables, figures and the model; register it; move ``champion`` if ``promote``.

    ``report_path`` (the training report's HTML) is logged under ``report/``, with
    ``report_tables`` as CSV beside it and ``extra_metrics`` (e.g. ``test_ks``) with the metrics.
    Returns ``{"run_id", "model_uri", "version", "champion"}``.
    """
    mlflow.set_experiment(experiment)
    bundle = result.bundle
    with mlflow.start_run(run_name=run_name) as run, tempfile.TemporaryDirectory() as scratch:
        mlflow.log_params({key: _param(value) for key, value in result.params.items()})
        mlflow.log_params({f"spec_{key}": _param(value) for key, value in bundle.spec.as_dict().items()})
        mlflow.log_metrics(result.metrics)
        mlflow.log_dict(bundle.spec.as_dict(), "feature_spec.json")
        mlflow.log_dict(bundle.thresholds.as_dict(), "tier_thresholds.json")
        for name, table in result.tables.items():
            mlflow.log_text(table.to_csv(index=False), f"evaluation/{name}.csv")
        if "leakage_report" in result.tables:
            # Column names and AUCs only, never values: safe to store; browsable as a table in the UI.
            mlflow.log_table(result.tables["leakage_report"], "leakage/leakage_report.json")
        for name, figure in (figures or {}).items():
            mlflow.log_figure(figure, f"plots/{name}.png")
        if extra_metrics:
            mlflow.log_metrics(extra_metrics)
        for name, table in (report_tables or {}).items():
            mlflow.log_text(table.to_csv(index=False), f"report/{name}.csv")
        if report_path is not None:
            mlflow.log_artifact(str(report_path), "report")
        bundle_path = bundle.save(Path(scratch) / "bundle.joblib")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE),
            artifacts={"bundle": str(bundle_path)},
            code_paths=_model_code_paths(Path(scratch) / "code"),
            signature=_signature(bundle),
            input_example=_scrubbed_example(bundle),
            pip_requirements=_pinned_requirements(),  # inferring them costs ~5 s per run
            registered_model_name=model_name,
        )
        registered = info.registered_model_version
        mlflow.set_tag("promoted_to_champion", str(promote).lower())
        if promote:
            MlflowClient().set_registered_model_alias(model_name, CHAMPION, registered)
    return {"run_id": run.info.run_id, "model_uri": info.model_uri, "version": registered,
            "champion": promote}


def log_comparison(comparison, *, figures: dict, report_path, experiment: str = DEFAULT_EXPERIMENT,
                   run_name: str = "compare-rules", model_uri: str | None = None, rules=None) -> str:
    """Log a model-vs-rules comparison: metrics, tables, pictures, the HTML report, rule files. Returns the run id."""
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name) as run:
        params = dict(comparison.params)
        if model_uri:
            params["model_uri"] = model_uri
        mlflow.log_params({key: _param(value) for key, value in params.items()})
        mlflow.log_metrics(comparison.metrics)
        for name, table in comparison.tables.items():
            mlflow.log_text(table.to_csv(index=False), f"comparison/{name}.csv")
        for name, figure in figures.items():
            mlflow.log_figure(figure, f"comparison/plots/{name}.png")
        mlflow.log_artifact(str(report_path), "comparison")
        if rules is not None:
            mlflow.log_text(rules.to_toml(), "comparison/rules.toml")
        if comparison.scorecard is not None:
            mlflow.log_text(comparison.scorecard.to_toml(), "comparison/learned_points.toml")
        mlflow.set_tag("kind", "comparison")
    return run.info.run_id


def log_monitoring(report, *, report_path=None, model_uri: str | None = None, identity: dict | None = None,
                   experiment: str = DEFAULT_EXPERIMENT, run_name: str = "monitoring") -> str:
    """Log a drift report as an MLflow run tagged ``kind=monitoring``; returns the run id."""
    mlflow.set_experiment(experiment)
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
    return run.info.run_id


def load_bundle(model_uri: str) -> tuple[ModelBundle, dict]:
    """Load the bundle behind a model URI (``models:/name@champion``, ``runs:/...``) and its identity."""
    model = mlflow.pyfunc.load_model(model_uri)
    bundle = model.unwrap_python_model().bundle
    identity = {"model_uri": model_uri, "run_id": model.metadata.run_id}
    name, version_label = _registry_version(model_uri)
    if name:
        identity.update(model_name=name, model_version=version_label)
    else:
        identity["model_version"] = f"run:{model.metadata.run_id}"
    return bundle, identity


def pinned_model_uri(model_uri: str) -> str:
    """``models:/name@alias`` as ``models:/name/<version>`` (the version the alias points at now); others as given."""
    name, version = _registry_version(model_uri)
    if name and "@" in model_uri:
        return f"models:/{name}/{version}"
    return model_uri


def load_champion(model_name: str = DEFAULT_MODEL_NAME) -> ModelBundle | None:
    """The current champion's bundle, or None when there is no champion yet."""
    try:
        MlflowClient().get_model_version_by_alias(model_name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None
    return load_bundle(f"models:/{model_name}@{CHAMPION}")[0]


def _registry_version(model_uri: str):
    if not model_uri.startswith("models:/"):
        return None, None
    reference = model_uri[len("models:/"):].strip("/")
    client = MlflowClient()
    if "@" in reference:
        name, alias = reference.split("@", 1)
        return name, str(client.get_model_version_by_alias(name, alias).version)
    name, _, label = reference.partition("/")
    return name, label


def _model_code_paths(folder: Path) -> list[str]:
    """Clean copies of the packages the model runs on (no caches): they travel inside the model."""
    paths = []
    for package in (features, models):
        source = Path(package.__file__).parent
        paths.append(str(shutil.copytree(source, folder / source.name,
                                         ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))))
    return paths


def _signature(bundle: ModelBundle) -> ModelSignature:
    """Outputs and parameters declared; no input schema, because the model takes two input shapes.

    Feature rows or lead rows with a nested ``events`` column (``models/model_input.py`` checks
    both and names what is wrong); an input schema would make MLflow drop the lead columns.
    """
    outputs = Schema([ColSpec("double", "probability"), ColSpec("long", "score"), ColSpec("string", "tier")])
    params = ParamSchema([ParamSpec("input", "string", "auto"), ParamSpec("as_of", "string", None)])
    return ModelSignature(outputs=outputs, params=params)


def _scrubbed_example(bundle: ModelBundle) -> pd.DataFrame:
    """A made-up lead, never a real one: the input example is stored in plain text in MLflow."""
    categorical = set(bundle.spec.categorical_feature_names)
    row = {name: ("unknown" if name in categorical else 0.0) for name in bundle.spec.feature_names}
    return pd.DataFrame([row])


def _pinned_requirements() -> list[str]:
    pinned = []
    for package in _REQUIREMENTS:
        try:
            pinned.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pinned.append(package)
    return pinned


def _param(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]


def spark_model_udf(spark, model_uri: str, *, params: dict | None = None):
    """The logged model as a Spark UDF returning a struct of ``probability``, ``score`` and ``tier``.

    Workers load the model with their own Python (``env_manager="local"``): they need the model's
    requirements installed, not the project, since the model carries its code.
    """
    return mlflow.pyfunc.spark_udf(spark, model_uri, env_manager="local", params=params,
                                   result_type="probability double, score long, tier string")
