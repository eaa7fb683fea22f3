"""``serve.py http --workers 2`` as a user starts it: connections spread over both workers; a taken port is one line."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import serve

from registry.runs import log_training_run
from registry.store import use_default_store
from training.pipeline import TrainingResult

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def registered(small_models, tmp_path_factory):
    """The small logistic model as version 1 (alias champion) of a throw-away store; the store's environment."""
    folder = tmp_path_factory.mktemp("workers")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}", "PYTHONPATH": str(PROJECT)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
        patch.chdir(folder)
        use_default_store()
        log_training_run(TrainingResult(bundle=small_models["logistic"], params={"model": "logistic"},
                                        metrics={"test_roc_auc": 0.8}, tables={}, test=None))
    use_default_store()
    return folder, env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_kept_alive_connections_opened_together_are_spread_over_both_workers(registered, tmp_path):
    folder, env = registered
    port, log = _free_port(), tmp_path / "server.log"
    with open(log, "wb") as output:
        server = subprocess.Popen([sys.executable, str(PROJECT / "serve.py"), "http", "--port", str(port),
                                   "--workers", "2"], cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while log.read_text().count("worker ") < 2:  # each worker says so once its model is loaded
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        connections = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(32)]
        pids = [_health_pid(sock) for sock in connections]
        for sock in connections:
            sock.close()
    finally:
        server.terminate()
        server.wait(30)
    counts = sorted(pids.count(pid) for pid in set(pids))
    # Hashed over two sockets, fewer than 6 of 32 on one worker has a chance of 1 in 9,000.
    assert len(counts) == 2 and counts[0] >= 6, counts


def test_a_port_already_taken_is_one_line_and_exit_2_before_the_model_loads(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = serve.main(["http", "--model", "models:/no-such-model@champion", "--port", str(port),
                           "--workers", "2"])
    error = capsys.readouterr().err
    assert code == 2 and error == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n", error


def _health_pid(sock) -> int:
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while b"}" not in answer:
        answer += sock.recv(65536)
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])["pid"]
