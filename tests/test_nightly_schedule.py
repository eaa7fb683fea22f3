"""The example nightly job (deploy/nightly.sh) as a scheduler runs it: load, retrain, score, monitor, evaluate."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from train import main as training_main

ROOT = Path(__file__).resolve().parents[1]


def test_the_nightly_script_runs_every_step_and_exits_0_on_a_stable_base(tmp_path):
    exports = tmp_path / "exports"
    assert training_main(["generate", "--leads", "3000", "--months", "15", "--seed", "4", "--out", str(exports),
                          "-q"]) == 0
    bin_folder = Path(sys.executable).parent  # lead-serve and lead-train of this environment
    env = {**os.environ, "PATH": f"{bin_folder}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "CRM_EXPORT_DIR": str(exports),
           "AS_OF": "2026-04-01", "LEAD_SCORING_DB": f"duckdb:///{tmp_path / 'crm.duckdb'}"}
    run = subprocess.run(["sh", str(ROOT / "deploy" / "nightly.sh")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    steps = [line for line in run.stderr.splitlines() if line.startswith("nightly: ")]
    assert [step.split()[1:3] for step in steps] == [["lead-serve", "load"]] * 3 + [
        ["lead-train", "train"], ["lead-serve", "score"], ["lead-serve", "history"]]
    assert "monitoring: STABLE" in run.stdout and "expected_roc_auc" in run.stdout
    with duckdb.connect(str(tmp_path / "crm.duckdb"), read_only=True) as database:
        tables = {row[0] for row in database.sql("SHOW TABLES").fetchall()}
        assert {"crm_leads", "crm_events", "crm_deals", "lead_scores", "score_history"} <= tables
        (scored,), = database.sql("SELECT count(*) FROM lead_scores").fetchall()
    assert scored > 0 and (tmp_path / "reports" / "monitoring" / "monitoring.html").exists()

    # A missing export stops the run before anything else with status 2, as bad input does.
    (exports / "deals.parquet").unlink()
    stopped = subprocess.run(["sh", str(ROOT / "deploy" / "nightly.sh")], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=300)
    assert stopped.returncode == 2 and "no deals export" in stopped.stderr
