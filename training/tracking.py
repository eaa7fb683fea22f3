"""MLflow: log a training run, register its model with a champion alias, and load models back.

The only module that imports mlflow (beside ``training/lead_model.py``, the logged model's own
code). The logged model is a pyfunc wrapping a joblib :class:`ModelBundle`, so nothing depends on
MLflow trusting scikit-learn internals; it carries the ``features`` and ``models`` packages, so it
loads from its own requirements where the project is not installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import sys
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
#: ``expected_champion`` default: promote whatever the champion is now.
ANY_CHAMPION = object()
_LOCK_DEPTH = 0
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


class ModelNotFoundError(ValueError):
    """A model URI that names no model: the message lists the models the store has."""


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
                     report_path=None, report_tables: dict | None = None, extra_metrics: dict | None = None,
                     expected_champion=ANY_CHAMPION) -> dict:
    """Log params, metrics, tables, figures and the model; register it; move ``champion`` if ``promote``.

    ``report_path`` (the training report's HTML) is logged under ``report/``, with
    ``report_tables`` as CSV beside it and ``extra_metrics`` (e.g. ``test_ks``) with the metrics.
    ``expected_champion`` is the champion version the decision was made against (None: there was
    none); the alias then moves only if it is still that one (see :func:`promote_champion`).
    Returns ``{"run_id", "model_uri", "version", "champion", "champion_now"}``.
    """
    with store_lock():  # two first runs on a new store would both create the experiment
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
        current = None
        if promote:
            promote, current = promote_champion(model_name, registered, expected_champion=expected_champion)
        mlflow.set_tag("promoted_to_champion", str(promote).lower())
    return {"run_id": run.info.run_id, "model_uri": info.model_uri, "version": registered,
            "champion": promote, "champion_now": current if not promote else str(registered)}


def hashed_id(value) -> str:
    """A lead id as a short SHA-256 digest: rows stay joinable across logged tables, the id is not stored."""
    return hashlib.sha256(str(value).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def champion_version(model_name: str = DEFAULT_MODEL_NAME) -> str | None:
    """The version the ``champion`` alias points at, or None when there is none."""
    with store_lock():
        try:
            return str(MlflowClient().get_model_version_by_alias(model_name, CHAMPION).version)
        except mlflow.exceptions.MlflowException:
            return None


def promote_champion(model_name: str, version, *, expected_champion=ANY_CHAMPION) -> tuple[bool, str | None]:
    """Move ``champion`` to ``version`` only if it still points at ``expected_champion``: one writer wins.

    The check and the move happen under an exclusive lock on the store (a lock file beside a
    SQLite store, or in the temp folder for a remote one: runs on one machine). Returns
    ``(promoted, champion version now)``; a run that lost learns which version won instead.
    """
    with store_lock():
        current = champion_version(model_name)
        if expected_champion is not ANY_CHAMPION and current != (None if expected_champion is None
                                                                  else str(expected_champion)):
            return False, current
        MlflowClient().set_registered_model_alias(model_name, CHAMPION, str(version))
        return True, str(version)


@contextlib.contextmanager
def store_lock():
    """An exclusive lock per tracking store, held across processes; re-entrant within one process."""
    global _LOCK_DEPTH
    if _LOCK_DEPTH:
        _LOCK_DEPTH += 1
        try:
            yield
        finally:
            _LOCK_DEPTH -= 1
        return
    uri = mlflow.get_tracking_uri()
    path = _sqlite_path(uri)
    lock = (Path(f"{path}.lock") if path is not None
            else Path(tempfile.gettempdir()) / f"mlflow-store-{hashlib.sha256(uri.encode()).hexdigest()[:16]}.lock")
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _LOCK_DEPTH = 1
        try:
            yield
        finally:
            _LOCK_DEPTH = 0
            fcntl.flock(handle, fcntl.LOCK_UN)


def log_comparison(comparison, *, figures: dict, report_path, experiment: str = DEFAULT_EXPERIMENT,
                   run_name: str = "compare-rules", model_uri: str | None = None, rules=None,
                   log_lead_rows: bool = False) -> str:
    """Log a model-vs-rules comparison: metrics, tables, pictures, rule files. Returns the run id.

    Tables with one row per lead (and the HTML report, which lists some) stay on disk unless
    ``log_lead_rows``; then their ids are logged hashed. Aggregate tables are always logged.
    """
    with store_lock():
        mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name) as run:
        params = dict(comparison.params)
        if model_uri:
            params["model_uri"] = model_uri
        mlflow.log_params({key: _param(value) for key, value in params.items()})
        mlflow.log_metrics(comparison.metrics)
        for name, table in comparison.tables.items():
            if "lead_id" in table.columns:
                if not log_lead_rows:
                    continue
                table = table.assign(lead_id=table["lead_id"].map(hashed_id))
            mlflow.log_text(table.to_csv(index=False), f"comparison/{name}.csv")
        for name, figure in figures.items():
            mlflow.log_figure(figure, f"comparison/plots/{name}.png")
        if log_lead_rows:
            mlflow.log_artifact(str(report_path), "comparison")
        mlflow.set_tag("lead_rows", "logged, ids hashed" if log_lead_rows else "not logged (--log-lead-rows)")
        if rules is not None:
            mlflow.log_text(rules.to_toml(), "comparison/rules.toml")
        if comparison.scorecard is not None:
            mlflow.log_text(comparison.scorecard.to_toml(), "comparison/learned_points.toml")
        mlflow.set_tag("kind", "comparison")
    return run.info.run_id


def load_bundle(model_uri: str) -> tuple[ModelBundle, dict]:
    """Load the bundle behind a model URI (``models:/name@champion``, ``runs:/...``) and its identity.

    Raises :class:`ModelNotFoundError` naming the models the store has, without creating a store
    where there is none. A model read from a local folder says so on stderr: a model file is code.
    """
    registry = model_uri.startswith(("models:/", "runs:/"))
    if registry:
        _require_store(model_uri)
        if model_uri.startswith("models:/"):
            _require_registered(model_uri)
    elif "://" not in model_uri or model_uri.startswith("file://"):
        local = Path(model_uri.removeprefix("file://"))
        if not local.exists():
            raise ModelNotFoundError(f"--model {model_uri}: no such model folder, and not a models:/ or runs:/ URI. "
                                     f"{_known_models()}")
        print(f"loading the model from the local folder {local.resolve()}: a model file is code that runs on "
              "loading; use only models from a trusted registry", file=sys.stderr)
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except (mlflow.exceptions.MlflowException, OSError) as error:
        raise ModelNotFoundError(f"--model {model_uri}: could not load it ({str(error).splitlines()[0][:200]}). "
                                 f"{_known_models() if registry else ''}".strip()) from None
    python_model = model.unwrap_python_model() if hasattr(model, "unwrap_python_model") else None
    if not isinstance(getattr(python_model, "bundle", None), ModelBundle):
        raise ModelNotFoundError(f"--model {model_uri}: not a lead-conversion model (no model bundle inside).")
    bundle = python_model.bundle
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
    if champion_version(model_name) is None:
        return None
    return load_bundle(f"models:/{model_name}@{CHAMPION}")[0]


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def _require_store(model_uri: str) -> None:
    """Reading a model must not create an empty SQLite store where the user ran by mistake."""
    uri = mlflow.get_tracking_uri()
    path = _sqlite_path(uri)
    if path is not None and not path.exists():
        raise ModelNotFoundError(f"--model {model_uri}: no MLflow store at {path} (nothing was trained from this "
                                 "folder); run from the folder you trained in, or set MLFLOW_TRACKING_URI.")


def _require_registered(model_uri: str) -> None:
    reference = model_uri[len("models:/"):].strip("/")
    name, alias, label = reference, None, None
    if "@" in reference:
        name, alias = reference.split("@", 1)
    elif "/" in reference:
        name, label = reference.split("/", 1)
    client = MlflowClient()
    try:
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    except mlflow.exceptions.MlflowException:
        versions = []
    if not versions:
        raise ModelNotFoundError(f"--model {model_uri}: no registered model named {name!r}. {_known_models()}")
    if alias is not None:
        aliases = client.get_registered_model(name).aliases
        if alias not in aliases:
            raise ModelNotFoundError(f"--model {model_uri}: model {name!r} has no alias {alias!r}; aliases: "
                                     f"{_aliases(aliases)}; versions: {_ranges(versions)}.")
    elif label is not None and not (label.isdigit() and int(label) in versions) and label != "latest":
        raise ModelNotFoundError(f"--model {model_uri}: model {name!r} has no version {label!r}; versions: "
                                 f"{_ranges(versions)}.")


def _known_models() -> str:
    try:
        models = MlflowClient().search_registered_models()
    except mlflow.exceptions.MlflowException:
        return ""
    if not models:
        return f"The store {mlflow.get_tracking_uri()} has no registered models."
    listed = "; ".join(f"models:/{m.name} (versions {_ranges(sorted(int(v.version) for v in MlflowClient().search_model_versions(f'name = {chr(39)}{m.name}{chr(39)}')))}, "
                       f"aliases {_aliases(m.aliases)})" for m in models[:10])
    return f"Models in {mlflow.get_tracking_uri()}: {listed}."


def _aliases(aliases: dict) -> str:
    return ", ".join(f"@{alias} -> {version}" for alias, version in sorted(aliases.items())) or "none"


def _ranges(versions: list[int]) -> str:
    if not versions:
        return "none"
    return f"{versions[0]}" if len(versions) == 1 else f"{versions[0]}-{versions[-1]}" \
        if versions == list(range(versions[0], versions[-1] + 1)) else ", ".join(map(str, versions))


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
