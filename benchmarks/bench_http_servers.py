"""The servers ``make bench-http`` measures, started on 127.0.0.1 as subprocesses and waited for."""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench_http_clients import HOST

PROJECT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def http_server(workers: int, model_uri: str, scratch: Path, env: dict):
    """``serve.py http --workers N`` started and ready; yields ``(port, pid)``, stops it after."""
    port = free_port()
    log_path = scratch / f"workers{workers}-{port}.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, str(PROJECT / "serve.py"), "http", "--model", model_uri,
                                   "--host", HOST, "--port", str(port), "--workers", str(workers)], cwd=scratch,
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.perf_counter() + 120
            while log_path.read_text(errors="replace").count("worker ") < workers:
                if server.poll() is not None or time.perf_counter() > deadline:
                    raise SystemExit(f"serve.py http --workers {workers} did not start:\n"
                                     f"{log_path.read_text(errors='replace')[-2000:]}")
                time.sleep(0.2)
            wait_ready(server, port, "/health", log_path)
            yield port, server.pid
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()




def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_ready(server: subprocess.Popen, port: int, path: str, log: Path, timeout: float = 120.0) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server on port {port} exited:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server on port {port} not ready after {timeout:.0f} s")
