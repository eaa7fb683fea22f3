"""The logged MLflow model: feature rows or raw lead rows with nested events in, the project's code inside it."""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.contract import DataContractError
from training.pipeline import TrainingResult
from registry.runs import log_training_run
from registry.store import use_default_store

AS_OF = pd.Timestamp("2025-10-01")


def nest_events(leads: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Each lead's events as a list of {occurred_at, event_type} records, in the leads' order."""
    grouped = {lead_id: group[["occurred_at", "event_type"]].to_dict("records")
               for lead_id, group in events.groupby("lead_id", sort=False)}
    return pd.Series([grouped.get(lead_id, []) for lead_id in leads["lead_id"]], index=leads.index, dtype=object)


@pytest.fixture(scope="module")
def logged(small_models, tmp_path_factory, new_mlflow_store):
    """The LightGBM bundle logged once into a throw-away store, loaded back as MLflow's pyfunc."""
    folder = tmp_path_factory.mktemp("store")
    bundle = small_models["lightgbm"]
    result = TrainingResult(bundle=bundle, params={"model": "lightgbm"}, metrics={"test_roc_auc": 0.8}, tables={},
                            test=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", new_mlflow_store(folder))
        patch.chdir(folder)
        use_default_store()  # from the variable: an earlier test may have set another store in this process
        uri = log_training_run(result, model_name="self-contained")["model_uri"]
        local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(folder / "model")))
    return mlflow.pyfunc.load_model(str(local)), bundle, small_models["crm"], local


def open_leads_at(crm, as_of, n=200):
    leads = crm.leads[crm.leads["created_at"] < as_of].head(n)
    return leads


def test_lead_rows_with_nested_events_score_like_the_builder(logged):
    model, bundle, crm, _ = logged
    leads = open_leads_at(crm, AS_OF)
    rows = leads.assign(events=nest_events(leads, crm.events))
    expected = bundle.score(build_features(pd.DataFrame({"lead_id": leads["lead_id"], "as_of": AS_OF}),
                                           crm.leads, crm.events, bundle.spec))
    predicted = model.predict(rows, params={"as_of": str(AS_OF)})
    assert list(predicted.columns) == ["probability", "score", "tier"]
    np.testing.assert_allclose(predicted["probability"], expected["probability"], rtol=0, atol=1e-12)
    assert predicted["tier"].tolist() == expected["tier"].tolist()
    # A per-row as_of column does the same; so does a time-zoned parameter naming the same instant.
    per_row = model.predict(rows.assign(as_of=AS_OF))
    np.testing.assert_array_equal(per_row["probability"], predicted["probability"])
    zoned = model.predict(rows, params={"as_of": "2025-10-01T02:00:00+02:00"})
    np.testing.assert_array_equal(zoned["probability"], predicted["probability"])
    # Feature rows still work, and give the same numbers.
    features = build_features(pd.DataFrame({"lead_id": leads["lead_id"], "as_of": AS_OF}), crm.leads, crm.events,
                              bundle.spec)
    np.testing.assert_array_equal(model.predict(features)["probability"], predicted["probability"])


def test_events_at_or_after_as_of_change_nothing(logged):
    model, _, crm, _ = logged
    leads = open_leads_at(crm, AS_OF, n=20)
    rows = leads.assign(events=nest_events(leads, crm.events[crm.events["occurred_at"] < AS_OF]))
    later = rows.copy()
    later["events"] = [list(cell) + [{"occurred_at": AS_OF, "event_type": "demo_request"},
                                     {"occurred_at": AS_OF + pd.Timedelta(days=3), "event_type": "free_trial_start"}]
                       for cell in rows["events"]]
    before = model.predict(rows, params={"as_of": str(AS_OF)})
    after = model.predict(later, params={"as_of": str(AS_OF)})
    np.testing.assert_array_equal(before["probability"], after["probability"])
    # ...while the same demo request a day earlier does move the scores.
    earlier = rows.copy()
    earlier["events"] = [list(cell) + [{"occurred_at": AS_OF - pd.Timedelta(days=1), "event_type": "demo_request"}]
                         for cell in rows["events"]]
    moved = model.predict(earlier, params={"as_of": str(AS_OF)})
    assert (moved["probability"].to_numpy() != before["probability"].to_numpy()).any()


def test_lead_rows_without_their_history_are_refused_clearly(logged):
    model, _, crm, _ = logged
    leads = open_leads_at(crm, AS_OF, n=3)
    with pytest.raises(DataContractError, match="lead rows need an 'events' column"):
        model.predict(leads, params={"as_of": str(AS_OF)})
    bad = leads.assign(events=[[{"occurred_at": "not a time", "event_type": "page_view"}], [], None])
    with pytest.raises(DataContractError, match="'occurred_at' must hold a timestamp"):
        model.predict(bad, params={"as_of": str(AS_OF)})
    with pytest.raises(DataContractError, match=r"events\.0\.0 must have 'occurred_at' and 'event_type'"):
        model.predict(leads.assign(events=[[{"when": "2025-01-01"}], [], []]), params={"as_of": str(AS_OF)})
    with pytest.raises(DataContractError, match="leads created after it"):
        model.predict(leads.assign(events=[[], [], []]), params={"as_of": "2020-01-01"})
    with pytest.raises(ValueError, match="'input' parameter .* must be one of"):
        model.predict(leads, params={"input": "rows"})


def test_the_model_carries_its_code_and_requirements(logged):
    folder = logged[3]
    assert (folder / "code" / "features" / "build.py").is_file()
    assert (folder / "code" / "models" / "model_input.py").is_file()
    assert not list((folder / "code").rglob("__pycache__"))
    requirements = (folder / "requirements.txt").read_text().split()
    names = {line.split("==")[0] for line in requirements}
    assert {"mlflow", "scikit-learn", "lightgbm", "pandas", "duckdb", "pyarrow"} <= names
    assert "lead-conversion" not in names  # the code travels inside the model, not as a package


_FRESH_SCRIPT = """
import sys
import mlflow
import pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
rows = pd.read_parquet(sys.argv[2])
model.predict(rows, params={"as_of": sys.argv[3]}).to_parquet(sys.argv[4])
model.predict(pd.read_parquet(sys.argv[5])).to_parquet(sys.argv[6])
"""


def test_the_model_predicts_in_a_fresh_environment_built_from_its_own_requirements(logged, tmp_path):
    """What a user's server, a Spark worker or MLflow's container does: a new venv, the model's requirements.txt only.

    Also serves it with ``mlflow models serve --env-manager local`` from that venv and checks that
    ``mlflow models generate-dockerfile`` builds its image from the same requirements.
    """
    _, bundle, crm, folder = logged
    venv = tmp_path / "venv"
    python, scripts = venv / "bin" / "python", venv / "bin"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # --no-compile: byte-compiling every installed module is much of pip's time here; Python compiles
    # the few modules the model imports when it first imports them, as it would on the user's server.
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              "--no-compile", "-r", str(folder / "requirements.txt")], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    print(f"fresh venv from the model's requirements.txt: {time.perf_counter() - started:.0f} s")
    clean = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    clean["PATH"] = f"{scripts}{os.pathsep}{clean.get('PATH', '')}"
    # The project itself is not installed there: only the model's own copy of its code can serve.
    probe = subprocess.run([str(python), "-c", "import models"], cwd=tmp_path, env=clean, capture_output=True)
    assert probe.returncode != 0 and b"No module named 'models'" in probe.stderr

    leads = open_leads_at(crm, AS_OF, n=100)
    # Through Parquet, the nested events come back as Arrow gives them: arrays of dicts, Timestamps inside.
    leads.assign(events=nest_events(leads, crm.events)).to_parquet(tmp_path / "rows.parquet")
    snapshots = pd.DataFrame({"lead_id": leads["lead_id"], "as_of": AS_OF})
    features = build_features(snapshots, crm.leads, crm.events, bundle.spec)
    features.to_parquet(tmp_path / "features.parquet")
    expected = bundle.score(features)
    subprocess.run([str(python), "-c", _FRESH_SCRIPT, str(folder), str(tmp_path / "rows.parquet"), str(AS_OF),
                    str(tmp_path / "from_rows.parquet"), str(tmp_path / "features.parquet"),
                    str(tmp_path / "from_features.parquet")], cwd=tmp_path, env=clean, check=True)
    for name in ("from_rows", "from_features"):
        scored = pd.read_parquet(tmp_path / f"{name}.parquet")
        np.testing.assert_allclose(scored["probability"], expected["probability"], rtol=0, atol=1e-12)
        assert scored["tier"].tolist() == expected["tier"].tolist()

    # mlflow models serve from the fresh venv, lead rows as JSON records with their events.
    port = _free_port()
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen([str(scripts / "mlflow"), "models", "serve", "-m", str(folder), "--env-manager",
                               "local", "-h", "127.0.0.1", "-p", str(port)], cwd=tmp_path, env=clean,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(server, port, tmp_path / "serve.log")
        records = json.loads(leads.head(10).assign(events=nest_events(leads.head(10), crm.events))
                             .to_json(orient="records", date_format="iso"))
        body = json.dumps({"dataframe_records": records, "params": {"as_of": "2025-10-01T00:00:00Z"}})
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200, answer
        served = pd.DataFrame(answer["predictions"])
        np.testing.assert_allclose(served["probability"], expected["probability"].head(10), rtol=0, atol=1e-12)
        assert served["tier"].tolist() == expected["tier"].head(10).tolist()
        # Feature rows as JSON (missing values as null), the shape make bench-http sends.
        split = json.loads(features.head(10).to_json(orient="split", index=False))
        connection.request("POST", "/invocations", json.dumps({"dataframe_split": split}),
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200, answer
        np.testing.assert_allclose(pd.DataFrame(answer["predictions"])["probability"],
                                   expected["probability"].head(10), rtol=0, atol=1e-12)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()

    # MLflow's container build (no Docker engine here, so no image): the Dockerfile copies the model and
    # installs its dependencies with MLflow's own step, which we run in the fresh venv the same way.
    subprocess.run([str(scripts / "mlflow"), "models", "generate-dockerfile", "-m", str(folder),
                    "-d", str(tmp_path / "docker")], cwd=tmp_path, env=clean, check=True, capture_output=True)
    dockerfile = (tmp_path / "docker" / "Dockerfile").read_text()
    assert "COPY model_dir/model /opt/ml/model" in dockerfile
    assert "C._install_pyfunc_deps('/opt/ml/model', install_mlflow=False, env_manager='local')" in dockerfile
    image_model = tmp_path / "docker" / "model_dir" / "model"
    assert (image_model / "code" / "models" / "model_input.py").is_file()
    subprocess.run([str(python), "-c", "import sys; from mlflow.models import container as C; "
                    "C._install_pyfunc_deps(sys.argv[1], install_mlflow=False, env_manager='local')",
                    str(image_model)], cwd=tmp_path, env=clean, check=True, capture_output=True)
    subprocess.run([str(python), "-c", _FRESH_SCRIPT, str(image_model), str(tmp_path / "rows.parquet"), str(AS_OF),
                    str(tmp_path / "image_rows.parquet"), str(tmp_path / "features.parquet"),
                    str(tmp_path / "image_features.parquet")], cwd=tmp_path, env=clean, check=True)
    np.testing.assert_allclose(pd.read_parquet(tmp_path / "image_rows.parquet")["probability"],
                               expected["probability"], rtol=0, atol=1e-12)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_ready(server, port: int, log, timeout: float = 120.0) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"mlflow models serve exited:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"mlflow models serve not ready after {timeout:.0f} s:\n{log.read_text(errors='replace')}")


def test_models_logged_before_models_from_code_still_load(small_models, mlflow_store, tmp_path, monkeypatch):
    """Those pickled ``training.tracking.LeadConversionModel`` by reference; a champion may be one."""
    import registry.legacy
    from registry.legacy import LEGACY_MODULE, LeadConversionModel
    from registry.loading import load_bundle

    use_default_store()
    bundle = small_models["logistic"]
    path = bundle.save(tmp_path / "bundle.joblib")
    mlflow.set_experiment("legacy")  # this store's own: an earlier test may have left another one active
    with monkeypatch.context() as legacy:  # pickled under the old module's name, as those models were
        legacy.setattr(LeadConversionModel, "__module__", LEGACY_MODULE)
        legacy.setitem(sys.modules, LEGACY_MODULE, registry.legacy)
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(name="model", python_model=LeadConversionModel(),
                                           artifacts={"bundle": str(path)}, pip_requirements=["mlflow"])
    monkeypatch.delitem(sys.modules, LEGACY_MODULE, raising=False)  # the old module is gone, as in a fresh process
    loaded, _ = load_bundle(info.model_uri)
    features = small_models["features"].head(50)
    np.testing.assert_array_equal(loaded.predict_probability(features), bundle.predict_probability(features))
