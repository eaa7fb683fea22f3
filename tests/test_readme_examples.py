"""Every command the README and the docs show runs as written, on the data of one (smaller) demo run.

How the pages mark their commands is in docs/contributing.md: ```bash and ```python blocks are run, in
the order a reader meets them (README, then the site's navigation); ```sh and ```py blocks are shown only,
and may hold only what a test cannot run here (make, a server until stopped, Spark, a company's database).
"""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from docs_pages import code_blocks, nav_pages
from own_export import make_export, write_quirky_csv

import serve
from train import main as training_main

ROOT = Path(__file__).resolve().parent.parent
#: `make demo`'s data at a tenth of the leads: the same dates (2025-01-01 to 2026-07-01), so the pages'
#: `--as-of 2026-07-01` holds, and docs/batch/history.md's lead 1000023 is open in both.
DEMO = ["demo", "--leads", "2000"]
#: Why a command may stand in a shown-only block: each marker with what a test here cannot have.
SHOWN_ONLY = {
    "make ": "a make target (make test would run itself)",
    "lead-serve http": "a server that runs until stopped",
    "curl ": "requests to that server (tests/test_service.py and the HTTP check below)",
    "mlflow ui": "a browser UI server",
    "db.internal": "a company's database server (tests/test_database.py runs these against PostgreSQL)",
    "spark-score": "Spark needs a JVM and half a minute (tests/test_spark.py runs spark-score)",
    "spark-submit": "a cluster",
    "zip -r": "packing code for a cluster",
    "benchmarks/": "a benchmark of minutes to hours",
}


def pages() -> list[Path]:
    """The README, then the site's pages in navigation order, then any page the navigation misses."""
    listed = [ROOT / "docs" / page for page in nav_pages()]
    rest = sorted(set((ROOT / "docs").rglob("*.md")) - set(listed))
    return [ROOT / "README.md", *listed, *rest]


def command_lines(block: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = (re.split(r"(?:^|\s)#", line)[0].strip() for line in joined.splitlines())
    return [" ".join(line.split()) for line in lines if line]


def test_every_command_in_the_readme_and_the_docs_runs_as_written(demo_folder, capsys):
    ran, failed, shown = [], [], 0
    for page in pages():
        name = page.relative_to(ROOT)
        for language, block in code_blocks(page):
            if language == "bash":
                for command in command_lines(block):
                    if command not in ran:  # a command an earlier page ran has done its work
                        failed += _run(command, demo_folder, name, capsys)
                        ran.append(command)
            elif language == "python":
                failed += _run_python(block, demo_folder, name)
                ran.append(f"python block of {name}")
            elif language == "sh":
                for command in command_lines(block):
                    if not any(marker in command for marker in SHOWN_ONLY):
                        failed.append(f"{name}: {command!r} is in a shown-only block but nothing stops a test "
                                      "running it; put it in a ```bash block")
                    shown += 1
            elif language == "py" and "pyspark" not in block:
                failed.append(f"{name}: a shown-only Python block without Spark; make it ```python")
    assert failed == [], "\n\n".join(failed)  # every broken command at once, each with its page and error
    assert shown > 0

    # Every kind of command ran, and did what the pages say.
    subcommands = {command.split()[1] for command in ran if command.startswith(".venv/bin/lead-")}
    assert subcommands >= {"train", "init-config", "promote", "revert", "backtest", "compare", "generate", "score",
                           "history"}, subcommands
    leads = pd.read_parquet("data/demo/leads.parquet")
    deals = pd.read_parquet("data/demo/deals.parquet")
    as_of = pd.Timestamp("2026-07-01")
    closed = leads["lead_id"].isin(deals.loc[deals["closed_at"] < as_of, "lead_id"])
    open_leads = set(leads.loc[(leads["created_at"] < as_of) & ~closed, "lead_id"])
    scored = pd.read_parquet("data/demo/scores_today.parquet")
    assert set(scored["lead_id"]) == open_leads and scored["tier"].isin(["SQL", "MQL", "nurture"]).all()
    assert len(pd.read_csv("data/export_scores.csv")) == 40  # new_leads.csv's leads, each scored once
    assert len(pd.read_csv("data/demo/config_scores.csv")) == len(open_leads)
    assert Path("data/demo/compare/report.html").is_file() and Path("data/demo/learned_points.toml").is_file()
    assert len(list(Path("data/demo/score_history").rglob("*.parquet"))) == 2  # the two nightly runs
    assert Path("data/spark/events.parquet").is_file()


def test_the_documented_rules_file_and_http_request_are_valid(demo_folder):
    """The rules format on docs/analyst/rules.md loads; the lead on docs/app/index.md scores as shown."""
    from fastapi.testclient import TestClient

    from models.rules import load_rules
    from registry.loading import load_bundle
    from scoring.service import create_app

    bundle, identity = load_bundle("models:/lead-conversion@champion")
    page = ROOT / "docs" / "analyst" / "rules.md"
    (rules_toml,) = [block for language, block in code_blocks(page) if language == "toml"]
    Path("documented_rules.toml").write_text(rules_toml)
    rules = load_rules("documented_rules.toml", spec=bundle.spec)
    assert rules.as_dict()["thresholds"] == {"mql": 40, "sql": 75}

    (shown,) = [json.loads(block) for language, block in code_blocks(ROOT / "docs" / "app" / "index.md")
                if language == "json"]
    assert json.loads((ROOT / "docs" / "app" / "lead.json").read_text()) == shown  # the file curl sends
    client = TestClient(create_app(bundle, identity, token="secret"))
    answer = client.post("/score", params={"as_of": "2026-07-01T00:00:00Z"}, json=shown,
                         headers={"Authorization": "Bearer secret"})
    assert answer.status_code == 200, answer.text
    (lead,) = answer.json()["results"]
    assert lead["lead_id"] == "L-1" and lead["tier"] in {"SQL", "MQL", "nurture"} and 0 <= lead["score"] <= 100
    assert any("demo" in reason["text"] for reason in lead["reasons"]["positive"])
    assert client.post("/score", json=shown).status_code == 401  # the token the page sets is required


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    """A folder laid out as the project's after `make demo`, with the files the pages name; the cwd meanwhile."""
    folder = tmp_path_factory.mktemp("readme")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        for shared in ("models", "docs", "examples"):  # the project's files the commands read (rules, lead.json)
            (folder / shared).symlink_to(ROOT / shared)
        assert training_main(DEMO) == 0
        write_quirky_csv(make_export(1000, seed=4), folder / "export.csv")
        make_export(40, seed=9).drop(columns=["Deal Won"]).to_csv("new_leads.csv", index=False)
        yield folder


def _run(command: str, folder: Path, page, capsys) -> list[str]:
    """Run one command line; a one-item list naming the page, the command and its error when it fails."""
    parts = shlex.split(command)
    program, argv = parts[0], parts[1:]
    if program == ".venv/bin/python":
        result = subprocess.run([sys.executable, *argv], cwd=folder, capture_output=True, text=True, timeout=300)
        return [] if result.returncode == 0 else [f"{page}: {command}\n{result.stderr[-2000:]}"]
    main = {".venv/bin/lead-train": training_main, ".venv/bin/lead-serve": serve.main}.get(program)
    if main is None:
        return [f"{page}: {command!r} runs a program the test does not know"]
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_:  # --help and --version end through argparse
        code = exit_.code
    return [] if code == 0 else [f"{page}: {command}\n{capsys.readouterr().err[-2000:]}"]


def _run_python(block: str, folder: Path, page) -> list[str]:
    result = subprocess.run([sys.executable, "-c", block], cwd=folder, capture_output=True, text=True, timeout=300)
    return [] if result.returncode == 0 else [f"{page}: python block\n{result.stderr[-2000:]}"]
