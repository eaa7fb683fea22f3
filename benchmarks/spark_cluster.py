"""A Spark standalone cluster on this machine, for ``make bench-spark``: a master and workers started as an operator would.

Spark's docs start the daemons with ``sbin/start-master.sh`` and ``sbin/start-worker.sh``; the pip
install of pyspark ships ``bin/spark-class`` only, which those scripts call, so it is used directly:

    spark-class org.apache.spark.deploy.master.Master --host 127.0.0.1 --port 7077
    spark-class org.apache.spark.deploy.worker.Worker --cores 1 --memory 2g spark://127.0.0.1:7077

The processes are this object's own; ``stop()`` ends them by their ids.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from bench_http_servers import free_port


class StandaloneCluster:
    """A master on loopback and workers of ``cores`` cores each, added one at a time."""

    def __init__(self, folder: Path, *, cores: int = 1, memory: str = "2g"):
        self.folder, self.cores, self.memory = Path(folder), cores, memory
        self.processes: list[subprocess.Popen] = []
        self.port, self.ui_port = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"

    def start_master(self) -> "StandaloneCluster":
        self.folder.mkdir(parents=True, exist_ok=True)
        self._launch("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                "--port", str(self.port), "--webui-port", str(self.ui_port)])
        self._wait(lambda status: status is not None, "the master to answer")
        return self

    def add_worker(self) -> int:
        """Start one more worker and wait until the master counts it; the number of live workers."""
        number = len(self.processes)  # the master is process 0
        work = self.folder / f"worker{number}"
        work.mkdir(parents=True, exist_ok=True)
        self._launch(f"worker{number}", ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                         "--cores", str(self.cores), "--memory", self.memory,
                                         "--work-dir", str(work), "--webui-port", str(free_port()), self.url])
        self._wait(lambda status: status is not None and status.get("aliveworkers", 0) >= number,
                   f"{number} worker(s) to register")
        return number

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()

    def _launch(self, name: str, arguments: list[str]) -> None:
        import pyspark

        spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
        environment = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_HOME": str(spark_class.parents[1])}
        log = open(self.folder / f"{name}.log", "wb")
        self.processes.append(subprocess.Popen([str(spark_class), *arguments], stdout=log, stderr=subprocess.STDOUT,
                                               env=environment))

    def _status(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as answer:
                return json.load(answer)
        except OSError:
            return None

    def _wait(self, ready, what: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(process.poll() is not None for process in self.processes):
                raise RuntimeError(f"A Spark daemon stopped while waiting for {what}: see {self.folder}/*.log")
            if ready(self._status()):
                return
            time.sleep(1)
        raise RuntimeError(f"Timed out waiting for {what}: see {self.folder}/*.log")
