"""The registry never mislabels: a loaded alias is pinned to one version, a lost promotion race is recorded as kept."""

import subprocess
import sys
import textwrap

import mlflow
import numpy as np
import pandas as pd
import pytest

import serve
from registry.aliases import set_champion
from registry.loading import ModelNotFoundError, load_bundle
from registry.runs import log_training_run
from registry.store import use_default_store
from training.pipeline import TrainingResult
from training.promotion import decide_promotion

NAME = "churned"


@pytest.fixture(scope="module")
def two_versions(small_models, tmp_path_factory, new_mlflow_store):
    """Version 1 (logistic) and 2 (LightGBM) of one registered model in a throw-away store, a CSV export."""
    folder = tmp_path_factory.mktemp("registry")
    crm = small_models["crm"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", new_mlflow_store(folder))
        patch.chdir(folder)
        use_default_store()
        for kind in ("logistic", "lightgbm"):
            result = TrainingResult(bundle=small_models[kind], params={"model": kind},
                                    metrics={"test_roc_auc": 0.8}, tables={}, test=None)
            log_training_run(result, model_name=NAME)
        leads = crm.leads[crm.leads["created_at"] < pd.Timestamp("2025-10-01")].head(300)
        leads.to_csv(folder / "leads.csv", index=False)
        crm.events[crm.events["lead_id"].isin(leads["lead_id"])].to_csv(folder / "events.csv", index=False)
        expected = {}
        for version in ("1", "2"):  # each version's probabilities, scored pinned with no churn
            out = folder / f"pinned_{version}.csv"
            assert serve.main(_score_args(f"models:/{NAME}/{version}", out)) == 0
            expected[version] = pd.read_csv(out, dtype={"lead_id": str}).set_index("lead_id")["probability"]
    assert not np.allclose(expected["1"], expected["2"].loc[expected["1"].index])  # the versions tell apart
    return {"folder": folder, "expected": expected}


def _score_args(model, out):
    return ["score", "-q", "--model", model, "--leads", "leads.csv", "--events", "events.csv", "--as-of",
            "2025-10-01", "--out", str(out), "--no-reasons", "--no-monitoring", "--allow-stale"]


@pytest.fixture
def store(two_versions, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{two_versions['folder'] / 'mlflow.db'}")
    monkeypatch.chdir(two_versions["folder"])
    use_default_store()
    return two_versions


def test_under_alias_churn_every_scored_file_names_the_version_that_produced_it(store):
    # Another process moves @champion between versions 1 and 2 as fast as it can while we score.
    churn = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import itertools, time
        from mlflow.tracking import MlflowClient
        client = MlflowClient()
        print("moving", flush=True)
        for version in itertools.cycle("12"):
            client.set_registered_model_alias({NAME!r}, "champion", version)
            time.sleep(0.005)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert churn.stdout.readline().strip() == "moving"
        seen = []
        for run in range(4):
            out = store["folder"] / f"churn_{run}.csv"
            assert serve.main(_score_args(f"models:/{NAME}@champion", out)) == 0
            scores = pd.read_csv(out, dtype={"lead_id": str, "model_version": str})
            versions = set(scores["model_version"])
            assert len(versions) == 1
            version = versions.pop()
            np.testing.assert_allclose(scores.set_index("lead_id")["probability"],
                                       store["expected"][version].loc[scores["lead_id"]], rtol=0, atol=1e-12)
            seen.append(version)
        for _ in range(12):  # and each load reports the version whose bundle it returned
            bundle, identity = load_bundle(f"models:/{NAME}@champion")
            assert identity["pinned_uri"] == f"models:/{NAME}/{identity['model_version']}"
            assert bundle.metadata["params"]["model"] == {"1": "logistic", "2": "lightgbm"}[identity["model_version"]]
    finally:
        churn.kill()
        churn.wait()


def test_a_lost_promotion_race_is_recorded_as_kept(store, small_models):
    set_champion(NAME, "1", reason="baseline")
    # This run decided against version 1 ... but another run made version 2 champion meanwhile.
    decision = decide_promotion(challenger_auc=0.82, champion_auc=0.8, has_champion=True, champion_version="1")
    assert decision.promote
    set_champion(NAME, "2", reason="the other run")
    result = TrainingResult(bundle=small_models["logistic"], params={"model": "logistic"},
                            metrics={"test_roc_auc": 0.82}, tables={}, test=None)
    logged = log_training_run(result, model_name=NAME, decision=decision, expected_champion="1")
    assert not logged["champion"] and logged["champion_now"] == "2"
    assert logged["decision"].outcome == "kept champion" and not logged["decision"].promote
    client = mlflow.MlflowClient()
    version = client.get_model_version(NAME, logged["version"])
    assert version.tags["promotion_decision"] == "kept champion"
    assert version.tags["promotion_reason"].startswith("lost the promotion race: version 2 became champion")
    assert "Promotion: kept champion (lost the promotion race" in version.description
    assert "Promotion: promoted" not in version.description
    run = client.get_run(logged["run_id"])
    assert run.data.tags["promotion_decision"] == "kept champion"
    assert run.data.tags["promoted_to_champion"] == "false"
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"


def test_a_broken_model_bundle_is_one_line(store, tmp_path, capsys):
    # The registered version's bundle file cut short: loading must say so, not raise from joblib.
    path = mlflow.artifacts.download_artifacts(f"models:/{NAME}/1", dst_path=str(tmp_path / "model"))
    bundle = next(p for p in __import__("pathlib").Path(path).rglob("bundle.joblib"))
    bundle.write_bytes(bundle.read_bytes()[:200])
    with pytest.raises(ModelNotFoundError, match=r"could not load it"):
        load_bundle(str(path))
    capsys.readouterr()
    assert serve.main(_score_args(str(path), tmp_path / "out.csv")) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err and "could not load it" in errors[0], err
    assert not (tmp_path / "out.csv").exists()
