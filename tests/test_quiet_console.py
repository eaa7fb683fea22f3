"""MLflow's advice about how the model was logged stays off the console of a scoring run, unless -v."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry.store import use_default_store
from training.pipeline import TrainingResult

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def logged_store(small_models, tmp_path_factory, new_mlflow_store):
    """The logistic bundle logged and registered in a throw-away store; the small CRM beside it as Parquet."""
    from registry.runs import log_training_run

    folder = tmp_path_factory.mktemp("quiet")
    crm = small_models["crm"]
    for name in ("leads", "events", "deals"):
        getattr(crm, name).to_parquet(folder / f"{name}.parquet")
    result = TrainingResult(bundle=small_models["logistic"], params={"model": "logistic"},
                            metrics={"test_roc_auc": 0.8}, tables={}, test=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", new_mlflow_store(folder))
        patch.chdir(folder)
        use_default_store()
        log_training_run(result, model_name="quiet")
    use_default_store()  # back to this process's own store for later tests
    return folder, crm


def _score(folder, crm, *flags):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
    env.pop("MLFLOW_LOGGING_LEVEL", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "serve.py"), "score", "--model", "models:/quiet@champion",
         *[part for name in ("leads", "events", "deals") for part in (f"--{name}", str(folder / f"{name}.parquet"))],
         "--as-of", str(crm.end), "--out", str(folder / "scores.parquet"), "--no-reasons", "--no-monitoring",
         *flags], cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_score_prints_no_mlflow_advice_and_no_colour_codes(logged_store):
    folder, crm = logged_store
    run = _score(folder, crm, "-q")
    assert run.returncode == 0, run.stderr
    console = run.stdout + run.stderr
    assert "type hints" not in console and "\x1b[" not in console, console
    assert "warning" not in console.lower(), console
    assert "wrote" in run.stdout and (folder / "scores.parquet").exists()


def test_the_registered_model_is_described(logged_store, monkeypatch):
    import mlflow

    folder, _ = logged_store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    use_default_store()
    described = mlflow.MlflowClient().get_registered_model("quiet").description
    assert described.startswith("Lead conversion model: the calibrated probability") and "champion" in described
