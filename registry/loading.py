"""Load a logged model back: the bundle behind a URI and its identity, an alias pinned to its version, a Spark UDF.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import warnings
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from models.bundle import ModelBundle
from registry import DEFAULT_MODEL_NAME, MLFLOW_ADVICE
from registry.aliases import CHAMPION, champion_version
from registry.legacy import expose_legacy_names
from registry.store import _sqlite_path


_LOGGED_MODEL_ID = re.compile(r"m-[0-9a-f]{32}/?")


class ModelNotFoundError(ValueError):
    """A model URI that names no model: the message lists the models the store has."""


@contextlib.contextmanager
def quiet_model_code():
    """Drop MLflow's advice on how a model was logged while its code runs (unless MLflow logs at INFO, ``-v``).

    Models logged before ``predict`` was typed make MLflow warn "Add type hints ..." with raw colour
    codes each time their class is defined; MLflow turns its own warnings back on inside that call
    (``simplefilter("once")``), so a warnings filter cannot stop it: the display is wrapped instead.
    """
    if os.environ.get("MLFLOW_LOGGING_LEVEL", "").upper() in ("DEBUG", "INFO"):
        yield
        return
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if not any(re.match(pattern, str(message)) for pattern in MLFLOW_ADVICE):
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def load_bundle(model_uri: str) -> tuple[ModelBundle, dict]:
    """Load the bundle behind a model URI (``models:/name@champion``, ``runs:/...``) and its identity.

    Raises :class:`ModelNotFoundError` naming the models the store has, without creating a store
    where there is none. A model read from a local folder says so on stderr: a model file is code.
    An alias (``@champion``) is resolved once, then that version is loaded and reported
    (``identity["pinned_uri"]``): an alias that moves meanwhile never mislabels what was loaded.
    A model that cannot be loaded for any reason (a broken bundle, missing code) is one
    :class:`ModelNotFoundError`.
    """
    registry = model_uri.startswith(("models:/", "runs:/"))
    pinned = model_uri
    if registry:
        _require_store(model_uri)
        # MLflow 3 also names a logged model (registered or not) models:/m-<id>: loading says if it is wrong.
        if model_uri.startswith("models:/") and not _LOGGED_MODEL_ID.fullmatch(model_uri[len("models:/"):]):
            _require_registered(model_uri)
            pinned = pinned_model_uri(model_uri)
    elif "://" not in model_uri or model_uri.startswith("file://"):
        local = Path(model_uri.removeprefix("file://"))
        if not local.exists():
            raise ModelNotFoundError(f"--model {model_uri}: no such model folder, and not a models:/ or runs:/ URI. "
                                     f"{_known_models()}")
        print(f"loading the model from the local folder {local.resolve()}: a model file is code that runs on "
              "loading; use only models from a trusted registry", file=sys.stderr)
    expose_legacy_names()
    try:
        with quiet_model_code():
            model = mlflow.pyfunc.load_model(pinned)
    except (mlflow.exceptions.MlflowException, OSError) as error:
        raise ModelNotFoundError(f"--model {model_uri}: could not load it ({_first_line(error)}). "
                                 f"{_known_models() if registry else ''}".strip()) from None
    except Exception as error:  # noqa: BLE001 - a broken bundle fails in joblib, pickle or the model's own code
        raise ModelNotFoundError(f"--model {model_uri}{'' if pinned == model_uri else f' ({pinned})'}: could not "
                                 f"load it, the model files are damaged or incomplete ({type(error).__name__}: "
                                 f"{_first_line(error)}).") from None
    python_model = model.unwrap_python_model() if hasattr(model, "unwrap_python_model") else None
    if not isinstance(getattr(python_model, "bundle", None), ModelBundle):
        raise ModelNotFoundError(f"--model {model_uri}: not a lead-conversion model (no model bundle inside).")
    bundle = python_model.bundle
    identity = {"model_uri": model_uri, "pinned_uri": pinned, "run_id": model.metadata.run_id}
    name, version_label = _registry_version(pinned)
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


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


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


def spark_model_udf(spark, model_uri: str, *, params: dict | None = None):
    """The logged model as a Spark UDF returning a struct of ``probability``, ``score`` and ``tier``.

    Workers load the model with their own Python (``env_manager="local"``): they need the model's
    requirements installed, not the project, since the model carries its code.
    """
    return mlflow.pyfunc.spark_udf(spark, model_uri, env_manager="local", params=params,
                                   result_type="probability double, score long, tier string")
