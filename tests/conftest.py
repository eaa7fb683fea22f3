import pytest


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A throw-away SQLite MLflow store: tests never touch the project's own mlflow.db."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # the default artifact root ./mlruns lands here too
    return uri
