"""The MLflow store: where it is, quiet on the console, one experiment per model, a lock across processes.

Everything MLflow lives in this room (``registry/``): training and scoring both import it, neither the other.
Browsing: one experiment per model name (``MLFLOW_EXPERIMENT_NAME`` or an explicit name wins), marked as
model development so the UI opens on runs, not GenAI traces.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from registry import DEFAULT_MODEL_NAME

_LOCK_DEPTH = 0


#: MLflow 3's UI opens an experiment in its GenAI view unless told it holds classical models.
_EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def check_model_name(name: str) -> str:
    """Refuse a registered-model name MLflow would refuse at registration (after a whole training), or that
    breaks ``models:/name@alias`` URIs; one line saying why."""
    from mlflow.utils.validation import _validate_model_name  # MLflow's own rule, not a copy of it

    problem = None
    try:
        _validate_model_name(name)
    except mlflow.exceptions.MlflowException as error:
        problem = error.message
    if problem is None and "@" in name:
        problem = "Names cannot contain '@' (models:/name@alias would not find it)."
    if problem is not None:
        raise ValueError(f"--model-name {name!r} cannot be registered in MLflow: {problem.splitlines()[0]} "
                         "Nothing was trained.")
    return name


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


def experiment_name(model_name: str = DEFAULT_MODEL_NAME, experiment: str | None = None) -> str:
    """A model's experiment: ``experiment`` if given, else ``MLFLOW_EXPERIMENT_NAME``, else the model name."""
    return experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or model_name


def use_experiment(name: str) -> str:
    """Create or select an experiment marked as classical model development; returns its id."""
    with store_lock():  # two first runs on a new store would both create the experiment
        experiment = mlflow.set_experiment(name)
        if experiment.tags.get("mlflow.experimentKind") != _EXPERIMENT_KIND["mlflow.experimentKind"]:
            for key, value in _EXPERIMENT_KIND.items():
                MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


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


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def _param(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]
