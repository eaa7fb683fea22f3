"""The whole path on a small synthetic CRM: generate, train, register, load by alias, score."""

import mlflow
import numpy as np
import pandas as pd
import pytest

import serve
from analysis.training_report import FIGURES as TRAINING_FIGURES
from scoring.batch import SCORE_COLUMNS
from train import main as training_main


@pytest.fixture(scope="module")
def crm_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crm")
    assert training_main(["generate", "--leads", "4000", "--months", "15", "--seed", "3", "--out", str(folder)]) == 0
    return folder


def test_train_register_load_and_score(crm_folder, mlflow_store, tmp_path, capsys):
    code = training_main(["train", "--leads", str(crm_folder / "leads.parquet"),
                          "--events", str(crm_folder / "events.parquet"),
                          "--deals", str(crm_folder / "deals.parquet"), "--truth", str(crm_folder)])
    report = capsys.readouterr().out
    assert code == 0, report
    assert "test ROC AUC" in report and "oracle" in report and "observable ceiling" in report

    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("lead-conversion", "champion")
    run = client.get_run(version.run_id)
    metrics = run.data.metrics
    for name in ("test_roc_auc", "test_pr_auc", "test_log_loss", "test_brier", "test_ece",
                 "test_top_decile_lift", "test_base_rate", "test_oracle_roc_auc", "test_observable_ceiling_roc_auc",
                 "validation_roc_auc_logistic", "validation_roc_auc_lightgbm"):
        assert name in metrics, name
    # Even on 4,000 leads the model must carry real signal and stay under the oracle's ceiling (+ noise).
    assert 0.7 < metrics["test_roc_auc"] <= metrics["test_oracle_roc_auc"] + 0.02
    # The observable ceiling infers the stage the oracle is told: close below it.
    assert metrics["test_oracle_roc_auc"] - 0.03 < metrics["test_observable_ceiling_roc_auc"] \
        <= metrics["test_oracle_roc_auc"] + 0.005
    assert f"observable ceiling {metrics['test_observable_ceiling_roc_auc']:.4f}" in report
    assert {"horizon_days", "rows_train", "rows_test", "window_test_first", "spec_windows_days"} <= set(run.data.params)
    # Snapshots repeat leads: LightGBM is fitted with each lead weighing one, the logistic model per row.
    assert run.data.params["weighted_per_lead"] == str(run.data.params["model"] == "lightgbm").lower()
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {f"plots/{name}.png" for name in TRAINING_FIGURES}
    reports = {item.path for item in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/training_report.html", "report/factor_importance.csv", "report/confusion_at_tiers.csv"} <= reports
    assert 0 < metrics["test_ks"] < 1 and "training report reports/training/training_report.html" in report

    # The pyfunc model takes feature rows and returns probability, score and tier.
    model = mlflow.pyfunc.load_model("models:/lead-conversion@champion")
    bundle = model.unwrap_python_model().bundle
    leads = pd.read_parquet(crm_folder / "leads.parquet")
    from features.build import build_features
    snapshots = pd.DataFrame({"lead_id": leads["lead_id"].head(50), "as_of": pd.Timestamp("2026-01-01")})
    features = build_features(snapshots, leads,
                              crm_folder / "events.parquet", bundle.spec)
    predicted = model.predict(features)
    assert list(predicted.columns) == ["probability", "score", "tier"]
    assert predicted["probability"].between(0, 1).all()
    np.testing.assert_array_equal(predicted["score"], np.rint(predicted["probability"] * 100))
    assert set(predicted["tier"]) <= {"SQL", "MQL", "nurture"}

    # Batch scoring by alias writes one row per open lead, atomically.
    out = tmp_path / "scores.parquet"
    assert serve.main(["score", "--model", "models:/lead-conversion@champion",
                       "--leads", str(crm_folder / "leads.parquet"), "--events", str(crm_folder / "events.parquet"),
                       "--deals", str(crm_folder / "deals.parquet"), "--as-of", "2026-03-01",
                       "--out", str(out), "--chunk-size", "1000", "--allow-stale"]) == 0
    scores = pd.read_parquet(out)
    deals = pd.read_parquet(crm_folder / "deals.parquet")
    closed_before = set(deals.loc[deals["closed_at"] < "2026-03-01", "lead_id"])
    expected = set(leads.loc[leads["created_at"] < "2026-03-01", "lead_id"]) - closed_before
    assert set(scores["lead_id"]) == {str(lead_id) for lead_id in expected} and len(scores) == len(expected)
    assert list(scores.columns) == list(SCORE_COLUMNS)
    assert (scores["model_version"] == str(version.version)).all()
    assert scores["fit_score"].between(0, 100).all() and scores["engagement_score"].between(0, 100).all()
    # Every lead has at least one reason, and reasons read as words with a signed size.
    has_reason = scores["positive_reason_1"].str.len().gt(0) | scores["negative_reason_1"].str.len().gt(0)
    assert has_reason.all()
    assert scores["positive_reason_1"].str.fullmatch(r"(.+ \(\+\d+\.\d\d\))?").all()
    assert not list(tmp_path.glob(".scores.parquet.*"))  # no temp file left behind
    assert out.stat().st_mode & 0o044  # readable by others under the usual umask, not mkstemp's 0600

    # A time-zoned as_of before any lead exists: zero open leads is an empty file, not a crash.
    empty = tmp_path / "empty.parquet"
    assert serve.main(["score", "--leads", str(crm_folder / "leads.parquet"),
                       "--events", str(crm_folder / "events.parquet"), "--as-of", "2020-01-01T00:00:00+02:00",
                       "--out", str(empty), "--no-reasons"]) == 0
    assert len(pd.read_parquet(empty)) == 0

    # Without explanations: the same scores, no sub-score or reason columns.
    plain = tmp_path / "plain.csv"
    assert serve.main(["score", "--model", "models:/lead-conversion@champion",
                       "--leads", str(crm_folder / "leads.parquet"), "--events", str(crm_folder / "events.parquet"),
                       "--deals", str(crm_folder / "deals.parquet"), "--as-of", "2026-03-01",
                       "--out", str(plain), "--no-reasons", "--allow-stale"]) == 0
    plain = pd.read_csv(plain)
    assert "fit_score" not in plain.columns and "positive_reason_1" not in plain.columns
    np.testing.assert_allclose(plain["probability"], scores["probability"], atol=1e-12)

    _serve_with_two_workers(tmp_path)


def test_scoring_bad_input_writes_nothing(crm_folder, mlflow_store, tmp_path, capsys):
    leads = pd.read_parquet(crm_folder / "leads.parquet")
    broken = tmp_path / "leads.csv"
    pd.concat([leads.head(5), leads.head(1)]).to_csv(broken, index=False)
    out = tmp_path / "scores.parquet"
    code = serve.main(["score", "--leads", str(broken), "--events", str(crm_folder / "events.parquet"),
                       "--out", str(out)])
    assert code == 2
    assert "column 'lead_id' must hold unique values" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".scores*"))


def _serve_with_two_workers(tmp_path):
    """serve.py http --workers 2 on loopback: two processes, the same pinned model, /health per process.

    Runs against the champion ``test_train_register_load_and_score`` registered (training once for both).
    """
    import http.client
    import json
    import os
    import socket
    import subprocess
    import sys
    import time
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen([sys.executable, str(Path(serve.__file__)), "http", "--workers", "2",
                               "--port", str(port)], cwd=tmp_path, env={**os.environ}, stdout=log,
                              stderr=subprocess.STDOUT)

    def get(path, body=None):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST" if body else "GET", path, body=body,
                           headers={"Content-Type": "application/json"} if body else {})
        response = connection.getresponse()
        payload = json.loads(response.read())
        connection.close()
        return response.status, payload

    try:
        deadline = time.monotonic() + 120
        while (tmp_path / "server.log").read_text().count("worker ") < 2:
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.2)
        lead = {"lead_id": 1, "created_at": "2025-12-01T00:00:00", "attributes": {"industry": "software"},
                "events": [{"occurred_at": "2026-02-20T10:00:00", "event_type": "demo_request"}]}
        body = json.dumps(lead).encode()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: get("/score?as_of=2026-03-01T00:00:00", body), range(64)))
            healths = list(pool.map(lambda _: get("/health"), range(64)))
        assert {status for status, _ in answers} == {200}
        assert len({payload["results"][0]["probability"] for _, payload in answers}) == 1
        pids = {payload["pid"] for _, payload in healths}
        assert len(pids) == 2 and server.pid not in pids  # two workers, neither the supervisor
        assert {payload["model_version"] for _, payload in healths} == {"1"}
        # Each counts only its own requests; together they account for every one.
        latest = {}
        for _, payload in healths:
            latest[payload["pid"]] = max(latest.get(payload["pid"], 0), payload["requests_scored"])
        assert sum(latest.values()) == 64
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
