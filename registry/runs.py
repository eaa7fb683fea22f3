"""Log a training run to MLflow with its registered model (the other runs: :mod:`registry.analysis_runs`).

The logged model is a pyfunc (models-from-code, ``registry/lead_model.py``) holding a joblib
:class:`ModelBundle`, so nothing depends on MLflow trusting scikit-learn internals; it carries the
``features`` and ``models`` packages, so it loads from its own requirements where the project is not
installed. Runs are named after the model and the data window and tagged ``kind=training``; every
registered version carries its test figures, window, label and the promotion decision as tags and in its
description.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

import features
import models
from features.column_types import readings
from models.bundle import ModelBundle
from registry import DEFAULT_MODEL_NAME
from registry.aliases import ANY_CHAMPION, set_champion
from registry.store import _param, experiment_name, use_experiment

_REQUIREMENTS = ("mlflow", "scikit-learn", "lightgbm", "pandas", "numpy", "joblib", "duckdb", "pyarrow", "numba")
#: The pyfunc model, logged as code (models-from-code) with every model.
MODEL_CODE = Path(__file__).with_name("lead_model.py")


@contextlib.contextmanager
def training_run(*, model_name: str = DEFAULT_MODEL_NAME, experiment: str | None = None):
    """A run that spans the training itself, not only its logging: ``with training_run(...): train, log``.

    Named provisionally after the model; :func:`log_training_run` renames it once the model and the
    data window are known.
    """
    use_experiment(experiment_name(model_name, experiment))
    with mlflow.start_run(run_name=f"training {model_name}", tags={"kind": "training", "model_name": model_name}) \
            as run:
        yield run


def log_training_run(result, *, model_name: str = DEFAULT_MODEL_NAME, experiment: str | None = None,
                     figures: dict | None = None, promote: bool | None = None, decision=None,
                     run_name: str | None = None, report_path=None, report_tables: dict | None = None,
                     extra_metrics: dict | None = None, expected_champion=ANY_CHAMPION) -> dict:
    """Log params, metrics, tables, figures, datasets and the model; register it; move ``champion`` if promoted.

    Logs into the active run (see :func:`training_run`) or a new one. ``decision`` is a
    :class:`training.promotion.PromotionDecision`; its outcome, reason and both figures become the
    version's tags and description. ``report_path`` (the training report's HTML) is logged under
    ``report/``, with ``report_tables`` as CSV beside it and ``extra_metrics`` (e.g. ``test_ks``)
    with the metrics. ``expected_champion`` is the champion version the decision was made against
    (None: there was none); the alias then moves only if it is still that one (see
    :func:`promote_champion`). Returns ``{"run_id", "model_uri", "version", "champion", "champion_now"}``.
    """
    promote = decision.promote if decision is not None else (True if promote is None else promote)
    with contextlib.ExitStack() as stack:
        if mlflow.active_run() is None:
            stack.enter_context(training_run(model_name=model_name, experiment=experiment))
        run = mlflow.active_run()
        scratch = stack.enter_context(tempfile.TemporaryDirectory())
        MlflowClient().update_run(run.info.run_id, name=run_name or training_run_name(result))
        bundle = result.bundle
        mlflow.log_params({key: _param(value) for key, value in result.params.items()})
        mlflow.log_params({f"spec_{key}": _param(value) for key, value in bundle.spec.as_dict().items()})
        mlflow.log_metrics(result.metrics)
        mlflow.set_tags({"data_window": data_window(result.params), "label": label_definition(result.params)})
        log_readings()
        suspicious = result.params.get("suspicious_columns") or []
        if suspicious:
            mlflow.set_tag("suspicious_columns", ", ".join(suspicious))
        datasets = log_datasets(getattr(result, "datasets", {}) or {})
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
        example = getattr(result, "example", None)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE),
            artifacts={"bundle": str(bundle_path)},
            code_paths=_model_code_paths(Path(scratch) / "code"),
            signature=_signature(bundle),
            input_example=_input_example(bundle, example),
            pip_requirements=_pinned_requirements(),  # inferring them costs ~5 s per run
            registered_model_name=model_name,
        )
        registered = str(info.registered_model_version)
        if "test" in datasets and info.model_id:
            # The test figures linked to the version's logged model and to the split they were measured on:
            # the model's page lists that dataset (name, digest, rows) beside its metrics.
            mlflow.log_metrics({key: value for key, value in result.metrics.items() if key.startswith("test_")},
                               model_id=info.model_id, dataset=datasets["test"])
        client = MlflowClient()
        if not client.get_registered_model(model_name).description:  # a team's own description is kept
            client.update_registered_model(model_name, description=model_description(result))
        _record_decision(client, model_name, registered, result, decision)
        current = registered
        if promote:
            moved = set_champion(model_name, registered, decided_by="training run",
                                 reason=decision.reason if decision is not None else "promoted",
                                 expected_champion=expected_champion)
            promote, current = moved["promoted"], moved["champion"]
            if not promote and decision is not None:
                # Another run moved the alias first: this version is recorded as kept, as it happened.
                decision = lost_race(decision, current)
                _record_decision(client, model_name, registered, result, decision)
        mlflow.set_tag("promoted_to_champion", str(promote).lower())
    return {"run_id": run.info.run_id, "model_uri": info.model_uri, "version": registered, "champion": promote,
            "champion_now": current, "decision": decision}


def lost_race(decision, champion_now):
    """The decision of a run whose promotion another run pre-empted: ``kept champion``, saying which version won."""
    compared = decision.champion_version or "none"
    return dataclasses.replace(decision, outcome="kept champion", reason=(
        f"lost the promotion race: version {champion_now} became champion while this run trained (it was compared "
        f"with version {compared}); re-run to compare with it. The figures alone would have promoted it: "
        f"{decision.reason}"))


def _record_decision(client, model_name: str, version: str, result, decision) -> None:
    for key, value in version_tags(result, decision).items():
        client.set_model_version_tag(model_name, version, key, value)
    client.update_model_version(model_name, version, description=version_description(result, decision))
    if decision is not None:
        mlflow.set_tags({"promotion_decision": decision.outcome, "promotion_reason": decision.reason})


def log_readings() -> None:
    """How this process read its inputs' dates and numbers (calendar digits, epoch time, a decimal comma):
    the lines the console printed once, as ``readings.txt`` and the tag ``input_readings``."""
    taken = readings()
    if taken:
        text = "\n".join(f"{what} {how}" for what, how in taken.items())
        mlflow.log_text(text, "readings.txt")
        mlflow.set_tag("input_readings", text if len(text) <= 4000 else text[:3990] + " [...]")


def training_run_name(result) -> str:
    """``lightgbm 2024-07-01..2025-03-31`` (snapshots), ``logistic 9,240 leads, stratified`` (a lead table)."""
    return f"{result.params.get('model', 'model')} {data_window(result.params)}"


def data_window(params: dict) -> str:
    if params.get("split") == "temporal":
        return f"{params.get('as_of_first')}..{params.get('window_test_last', params.get('as_of_last'))}"
    return f"{params.get('leads', 0):,} leads, {params.get('split', 'split')}"


def label_definition(params: dict) -> str:
    if params.get("split") == "temporal":
        return f"won within {params.get('horizon_days')} days of as_of"
    return "converted (label column)"


def version_tags(result, decision=None) -> dict:
    """What a data scientist filters versions by: test AUC, window, label, horizon, model, the decision."""
    params, metrics = result.params, _headline_metrics(result)
    tags = {"test_roc_auc": f"{metrics['test_roc_auc']:.4f}", "test_ece": f"{metrics['test_ece']:.4f}",
            "validation_roc_auc": f"{metrics.get('validation_roc_auc', float('nan')):.4f}",
            "data_window": data_window(params), "label": label_definition(params), "split": str(params.get("split")),
            "model": str(params.get("model")), "has_signal": str(params.get("has_signal", True)).lower()}
    if params.get("split") == "temporal":
        tags.update(horizon_days=str(params.get("horizon_days")),
                    test_window=f"{params.get('window_test_first')}..{params.get('window_test_last')}")
    if params.get("suspicious_columns"):
        tags["suspicious_columns"] = ", ".join(params["suspicious_columns"])
    if params.get("drift") not in (None, "none", "not checked"):  # the newest window moved (training.drift)
        tags["drift"] = str(params["drift"])
    if decision is not None:
        tags.update(promotion_decision=decision.outcome, promotion_reason=decision.reason,
                    challenger_test_roc_auc=f"{decision.challenger_auc:.4f}",
                    champion_test_roc_auc="none" if decision.champion_auc is None else f"{decision.champion_auc:.4f}")
        if decision.champion_version:
            tags["compared_with_version"] = str(decision.champion_version)
    return tags


def model_description(result) -> str:
    """What a registered model is, for the registry's page (set by its first version, kept after)."""
    horizon = result.params.get("horizon_days")
    within = f"within {horizon} days" if horizon is not None else "within the model's horizon"
    return (f"Lead conversion model: the calibrated probability that an open lead converts (a won deal) {within} "
            "of being scored, a 0-100 score, a tier (SQL, MQL, nurture) and the reasons behind it. Trained by "
            "lead-train on closed deals with point-in-time snapshots; each version's description has its test "
            "figures and promotion decision; the alias 'champion' is the version lead-serve scores with.")


def version_description(result, decision=None) -> str:
    params, metrics = result.params, _headline_metrics(result)
    text = (f"{params.get('model')} + {params.get('calibration')} calibration; {label_definition(params)}; "
            f"data {data_window(params)}. Test ROC AUC {metrics['test_roc_auc']:.4f}, ECE {metrics['test_ece']:.4f}, "
            f"base rate {metrics['test_base_rate']:.3f} on {metrics['test_rows']:,.0f} rows.")
    if not params.get("has_signal", True):
        text += " No signal: validation AUC at or below the floor; its tiers carry no information."
    if params.get("suspicious_columns"):
        text += f" Suspicious columns: {', '.join(params['suspicious_columns'])}."
    if decision is not None:
        champion = "no champion" if decision.champion_auc is None else f"champion {decision.champion_auc:.4f}"
        text += (f"\n\nPromotion: {decision.outcome} ({decision.reason}); challenger {decision.challenger_auc:.4f}, "
                 f"{champion} on the same test window.")
    return text


def _headline_metrics(result) -> dict:
    """The test figures tags and descriptions quote; a result logged by hand may lack some: they read nan."""
    return {"test_roc_auc": np.nan, "test_ece": np.nan, "test_base_rate": np.nan, "test_rows": 0, **result.metrics}


def log_datasets(datasets: dict) -> dict:
    """Dataset lineage: each split's name, digest, row count and schema (column names); never its rows.

    The splits are feature rows (no PII column is ever a feature). Returns the logged datasets by split.
    """
    logged = {}
    for name, (frame, labels) in datasets.items():
        labels = np.asarray(labels, dtype=int)
        logged[name] = dataset = _SplitDataset(frame, name=f"{name} split", digest=_digest(frame, labels))
        mlflow.log_input(dataset, context=name, tags={"rows": str(len(frame)),
                                                     "converted": str(int(labels.sum()))})
    return logged


class _SplitDataset(PandasDataset):
    """A split's lineage without MLflow inspecting every cell (21 s on 200,000 x 105): the schema comes
    from the first rows, the profile from the frame's shape, the digest from the caller."""

    def __init__(self, frame: pd.DataFrame, *, name: str, digest: str):
        self._shape = frame.shape
        super().__init__(df=frame.head(1000), source=CodeDatasetSource(tags={}), name=name, digest=digest)

    @property
    def profile(self):
        return {"num_rows": int(self._shape[0]), "num_elements": int(self._shape[0] * self._shape[1])}


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


def _input_example(bundle: ModelBundle, example: pd.DataFrame | None) -> pd.DataFrame:
    """A real feature row (no PII column is ever a feature), conformed to the signature's types.

    Training picks a plausible engaged lead from the test split: an all-zero row is a lead that
    cannot exist (every ``days_since_*`` at 0 with every count at 0).
    """
    if example is None:
        categorical = set(bundle.spec.categorical_feature_names)
        example = pd.DataFrame([{name: (None if name in categorical else np.nan)
                                 for name in bundle.spec.feature_names}])
    conformed = bundle.conform(example.head(1)).reset_index(drop=True)
    return conformed


def _digest(features: pd.DataFrame, labels: np.ndarray) -> str:
    """md5 over every row's hash and the labels: vectorised (MLflow's own digest maps ``type`` over each cell)."""
    hashed = pd.util.hash_pandas_object(features, index=False).to_numpy()
    md5 = hashlib.md5(hashed.tobytes())
    md5.update(np.ascontiguousarray(labels).tobytes())
    md5.update("|".join(map(str, features.columns)).encode())
    return md5.hexdigest()[:12]


def _pinned_requirements() -> list[str]:
    pinned = []
    for package in _REQUIREMENTS:
        try:
            pinned.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pinned.append(package)
    return pinned
