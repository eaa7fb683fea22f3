"""``serve.py http --workers 2`` as a user starts it: connections spread over both workers; a taken port is one line."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

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
    with _two_workers(registered, tmp_path) as (server, log, port):
        connections = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(32)]
        pids = [_health_pid(sock) for sock in connections]
        for sock in connections:
            sock.close()
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


def test_a_worker_that_cannot_build_its_app_stops_the_server_with_one_line_and_exit_2(registered, tmp_path):
    # Before: uvicorn restarted such a worker forever and the parent never exited. Here the saved tier policy
    # was edited by hand into text (the parent loads the model fine; each worker reads the policy as it builds).
    folder, env = registered
    copy = tmp_path / "store"
    shutil.copytree(folder, copy)
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{copy / 'mlflow.db'}"}
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    for key in ("sql", "mql"):
        client.set_model_version_tag("lead-conversion", "1", f"tier_policy_{key}", "not a number")
    server = subprocess.run([sys.executable, str(PROJECT / "serve.py"), "http", "--port", str(_free_port()),
                             "--workers", "2"], cwd=copy, env=env, capture_output=True, text=True, timeout=240)
    errors = [line for line in server.stderr.splitlines() if line.startswith("error: ")]
    assert server.returncode == 2 and "Traceback" not in server.stderr, server.stderr[-3000:]
    assert errors == ["error: a worker could not start: could not convert string to float: 'not a number'"], \
        server.stderr[-3000:]


def test_a_worker_that_dies_while_serving_is_replaced(registered, tmp_path):
    with _two_workers(registered, tmp_path) as (server, log, port):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            killed = _health_pid(sock)
        os.kill(killed, signal.SIGKILL)  # a worker of the server this test started
        _wait_for_workers(server, log, 3)  # its replacement loaded the model and said so
        pids = set()
        for _ in range(8):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                pids.add(_health_pid(sock))
        assert killed not in pids and server.poll() is None


@contextlib.contextmanager
def _two_workers(registered, tmp_path):
    """``serve.py http --workers 2`` on a free port, both workers loaded: ``(server, log, port)``; stopped after."""
    folder, env = registered
    port, log = _free_port(), tmp_path / "server.log"
    with open(log, "wb") as output:
        server = subprocess.Popen([sys.executable, str(PROJECT / "serve.py"), "http", "--port", str(port),
                                   "--workers", "2"], cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_for_workers(server, log, 2)
        yield server, log, port
    finally:
        server.terminate()
        server.wait(30)


def _wait_for_workers(server, log, count: int) -> None:
    deadline = time.monotonic() + 180
    while log.read_text().count("worker ") < count:  # each worker says so once its model is loaded
        assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.2)
