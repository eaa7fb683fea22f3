"""Concurrent runs: one promotion wins, stopped scoring leaves no temp file, killed runs' temp files are swept."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from scoring.score_file import remove_stale_temporaries
from registry.aliases import champion_version, promote_champion

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_racing_promotions_have_one_winner_and_the_others_know(mlflow_store, tmp_path):
    mlflow.set_tracking_uri(mlflow_store)
    client = mlflow.MlflowClient()
    client.create_registered_model("race")
    versions = [str(client.create_model_version("race", source=f"file://{tmp_path}/m").version) for _ in range(3)]
    start = tmp_path / "go"
    racers = [run_python(f"""
        import os, time
        import mlflow
        mlflow.set_tracking_uri({mlflow_store!r})
        from mlflow.tracking import MlflowClient
        from registry.aliases import promote_champion
        # Widen the window between reading the champion and moving it, as a slow store would:
        # without the lock every racer reads "no champion" and moves the alias.
        move = MlflowClient.set_registered_model_alias
        MlflowClient.set_registered_model_alias = lambda self, *a: (time.sleep(0.5), move(self, *a))[1]
        while not os.path.exists({str(start)!r}):
            time.sleep(0.001)
        print(*promote_champion("race", {version!r}, expected_champion=None))
        """) for version in versions]
    time.sleep(3)  # let every racer import and wait at the start line
    start.touch()
    results = [racer.communicate(timeout=120) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), results
    outcomes = [out.split() for out, _ in results]
    winners = [version for (won, _), version in zip(outcomes, versions) if won == "True"]
    assert len(winners) == 1
    assert champion_version("race") == winners[0]
    assert all(now == winners[0] for _, now in outcomes)  # the losers learn which version won


def test_a_promotion_against_a_moved_champion_loses(mlflow_store, tmp_path):
    mlflow.set_tracking_uri(mlflow_store)
    client = mlflow.MlflowClient()
    client.create_registered_model("m")
    first, second, third = (str(client.create_model_version("m", source=f"file://{tmp_path}/m").version)
                            for _ in range(3))
    assert promote_champion("m", first, expected_champion=None) == (True, first)
    assert promote_champion("m", second, expected_champion=None) == (False, first)
    assert promote_champion("m", third, expected_champion=first) == (True, third)
    assert champion_version("m") == third


WRITER = """
    import signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if started in the background
    from pathlib import Path
    import pandas as pd
    from scoring.score_file import AtomicScoreFile
    with AtomicScoreFile(Path(sys.argv[1])) as writer:
        writer.write(pd.DataFrame({"lead_id": ["a", "b"], "score": [1, 2]}))
        print(writer.temporary, flush=True)
        time.sleep(60)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_scoring_run_removes_its_temp_file(tmp_path, signum):
    out = tmp_path / "scores.csv"
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), str(out)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    temporary = Path(writer.stdout.readline().strip())
    assert temporary.exists() and temporary.name.startswith(f".scores.csv.{writer.pid}.")
    writer.send_signal(signum)
    writer.wait(timeout=120)  # a loaded machine is slow to unwind, not wrong
    assert writer.returncode != 0
    assert not temporary.exists() and not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_temp_files_of_killed_runs_are_removed_by_the_next_run_at_the_same_path(tmp_path):
    out = tmp_path / "scores.csv"
    killed = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), str(out)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    left = Path(killed.stdout.readline().strip())
    killed.send_signal(signal.SIGKILL)  # nothing can clean up after SIGKILL
    killed.wait(timeout=30)
    assert left.exists()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = tmp_path / f".scores.csv.{running.pid}.x1.tmp"  # a live run's file is not touched
        other = tmp_path / f".other.csv.{killed.pid}.x2.tmp"  # nor another output's
        busy.touch()
        other.touch()
        from scoring.score_file import AtomicScoreFile

        with AtomicScoreFile(out) as writer:
            writer.write(pd.DataFrame({"lead_id": ["a"], "score": [1]}))
        assert not left.exists() and busy.exists() and other.exists() and out.exists()
        assert remove_stale_temporaries(out) == []
    finally:
        running.kill()
        running.wait()
    assert remove_stale_temporaries(out) == [busy]
    os.unlink(other)


def test_the_spool_of_a_database_write_killed_by_sigkill_is_removed_by_the_next_write(tmp_path, monkeypatch):
    # Before: a run killed while spooling its output table left its local Parquet spool in the temp folder for good.
    import tempfile

    from crm.database import connect

    spools, database = tmp_path / "tmp", tmp_path / "out.duckdb"
    spools.mkdir()
    killed = run_python(f"""
        import os, signal
        import pandas as pd
        from crm.database import connect
        with connect({str(database)!r}).write_table_retried("scores") as writer:
            writer.write(pd.DataFrame({{"lead_id": ["a"], "score": [1]}}))
            os.kill(os.getpid(), signal.SIGKILL)
        """, env={**os.environ, "TMPDIR": str(spools)})
    assert killed.wait(timeout=120) == -signal.SIGKILL, killed.stderr.read()
    left = list(spools.glob(".lead-scoring-scores.*.tmp.parquet"))
    assert len(left) == 1 and f".{killed.pid}." in left[0].name
    monkeypatch.setattr(tempfile, "tempdir", str(spools))
    frame = pd.DataFrame({"lead_id": ["b", "c"], "score": [2, 3]})
    with connect(str(database)).write_table_retried("scores") as writer:
        writer.write(frame)
    assert list(spools.iterdir()) == []  # the killed run's spool, and this run's own once written
    pd.testing.assert_frame_equal(connect(str(database)).read(table="scores"), frame, check_dtype=False)
