import os
import shutil

import pytest

from models.threads import sleep_while_waiting

# As the command lines do: OpenMP threads (LightGBM's) sleep at barriers instead of spinning, which on
# a busy 2-core machine made fits many times slower. Must happen before lightgbm is first imported.
sleep_while_waiting()


@pytest.fixture(scope="session")
def new_mlflow_store(tmp_path_factory):
    """A function that makes a real, empty MLflow SQLite store in a folder and returns its URI.

    MLflow builds a new store's tables through its database migrations, about a second of CPU each;
    they run once per session here and each new store is a copy of that empty one, its default
    experiment's artifacts pointed at ``folder/mlruns`` as MLflow itself would have.
    """
    import contextlib
    import sqlite3

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    empty = tmp_path_factory.mktemp("empty-mlflow-store")
    SqlAlchemyStore(f"sqlite:///{empty / 'mlflow.db'}", str(empty / "mlruns")).engine.dispose()

    def make(folder) -> str:
        shutil.copyfile(empty / "mlflow.db", folder / "mlflow.db")
        with contextlib.closing(sqlite3.connect(folder / "mlflow.db")) as con, con:
            con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                        (str(folder / "mlruns" / "0"),))
        return f"sqlite:///{folder / 'mlflow.db'}"

    return make


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch, new_mlflow_store):
    """A throw-away SQLite MLflow store: tests never touch the project's own mlflow.db."""
    uri = new_mlflow_store(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # the default artifact root ./mlruns lands here too
    return uri


@pytest.fixture(scope="session")
def small_models():
    """Both candidate kinds fitted and calibrated on a small synthetic CRM, as ModelBundles.

    Returns ``{"logistic": bundle, "lightgbm": bundle, "crm": crm, "features": frame}``; small
    and shallow so the whole fixture takes about a second.
    """
    import numpy as np
    import pandas as pd
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    from crm.synthetic import generate_crm
    from features.build import build_features
    from features.snapshots import as_of_schedule, build_snapshots
    from features.spec import FeatureSpec
    from models.bundle import ModelBundle
    from models.estimators import make_lightgbm, make_logistic_regression
    from models.tiers import TierThresholds

    spec = FeatureSpec()
    crm = generate_crm(1_500, months=12, seed=5)
    snapshots = build_snapshots(crm.leads, crm.deals, horizon_days=90, data_end=crm.end,
                                as_of_dates=as_of_schedule(crm.leads["created_at"].min() + pd.Timedelta(days=60),
                                                           crm.end - pd.Timedelta(days=90), every_days=60))
    features = build_features(snapshots, crm.leads, crm.events, spec)
    labels = snapshots["label"].to_numpy()
    half = np.arange(len(features)) % 2 == 0
    models = {"crm": crm, "features": features[~half]}
    for name, estimator in (("logistic", make_logistic_regression(spec)),
                            ("lightgbm", make_lightgbm(spec, n_estimators=40, learning_rate=0.15))):
        fitted = estimator.fit(features[half], labels[half])
        # The production shape (one frozen model, one map) without calibrate()'s method search.
        calibrated = CalibratedClassifierCV(FrozenEstimator(fitted), method="sigmoid", ensemble=False).fit(
            features[~half], labels[~half])
        models[name] = ModelBundle(spec=spec, model=calibrated, thresholds=TierThresholds(mql=0.05, sql=0.2),
                                   metadata={"params": {"model": name, "as_of_first": "2025-03-02",
                                                        "horizon_days": 90},
                                             "metrics": {"test_roc_auc": 0.8}})
    return models


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server for the test session (from the pgserver wheel, a test dependency); its URL.

    Never a mock and never a skip: a server that cannot start fails the tests that need it.
    Running as root, pgserver starts the server as its own system user ``pgserver``.
    """
    import tempfile
    import warnings

    # Its own folder in /tmp, not under pytest's: the server's user must traverse every parent folder,
    # and pytest keeps its base folder private to root.
    folder = tempfile.mkdtemp(prefix="lead-scoring-postgres-")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' note about XDG_RUNTIME_DIR
        import pgserver

        server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def planned_crm(tmp_path_factory, new_mlflow_store):
    """A small CRM trained, compared with the example rules and scored once, in its own MLflow store.

    The folder holds ``crm/``, ``mlflow.db``, ``scores.parquet`` (the open base as of ``as_of``) and the
    ``as_of`` text; use it through ``planned``, which points MLflow at that store for one test.
    """
    from pathlib import Path

    import pandas as pd

    import models
    from serve import main as serve_main
    from train import main as training_main

    folder = tmp_path_factory.mktemp("planner")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", new_mlflow_store(folder))
        patch.chdir(folder)
        crm = folder / "crm"
        tables = [part for name in ("leads", "events", "deals") for part in (f"--{name}", str(crm / f"{name}.parquet"))]
        assert training_main(["generate", "--leads", "2500", "--months", "15", "--seed", "11", "--out", str(crm)]) == 0
        assert training_main(["train", *tables]) == 0
        rules = Path(models.__file__).with_name("rules_example.toml")
        assert training_main(["compare", "--rules", str(rules), *tables, "--out", str(folder / "compare")]) == 0
        end = pd.read_parquet(crm / "events.parquet", columns=["occurred_at"])["occurred_at"].max()
        as_of = str(pd.Timestamp(end).ceil("D"))
        assert serve_main(["score", *tables, "--as-of", as_of, "--out", str(folder / "scores.parquet"),
                           "--no-monitoring", "--quiet"]) == 0
        (folder / "as_of").write_text(as_of)
    return folder


@pytest.fixture
def planned(planned_crm, monkeypatch):
    """``planned_crm``'s folder, with MLflow pointed at its store and the working folder there for this test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{planned_crm / 'mlflow.db'}")
    monkeypatch.chdir(planned_crm)
    return planned_crm


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    """A local Spark session for one test module (stopped after it); a CLI run in the process picks it up.

    No Java: the tests skip, except in CI (LEAD_SCORING_CI=1), where they fail.
    """
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        message = "no Java runtime for Spark (apt-get install openjdk-17-jre-headless)"
        if os.environ.get("LEAD_SCORING_CI") == "1":
            pytest.fail(f"LEAD_SCORING_CI=1 and {message}")
        pytest.skip(message)
    from scoring.spark import spark_session

    session = spark_session("local[2]", app_name="lead-scoring-tests",
                            config={"spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("warehouse"))})
    yield session
    session.stop()
