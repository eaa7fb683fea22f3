import pytest

from models.threads import sleep_while_waiting

# As the command lines do: OpenMP threads (LightGBM's) sleep at barriers instead of spinning, which on
# a busy 2-core machine made fits many times slower. Must happen before lightgbm is first imported.
sleep_while_waiting()


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A throw-away SQLite MLflow store: tests never touch the project's own mlflow.db."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
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
    import shutil
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
