"""The README's command examples run as written, on small data made here (a user copies them first)."""

import re
import shlex
from pathlib import Path

import pandas as pd
from own_export import make_export, write_quirky_csv

import serve
from crm.synthetic import generate_crm
from train import main as training_main

ROOT = Path(__file__).resolve().parent.parent
#: Examples that need what a test cannot have: the public X Education file outside the project, an
#: editor, a server that runs until stopped, a browser UI, make itself.
NOT_RUN = ("../shared/", "examples/x_education", "examples/road_traffic_fines", "$EDITOR", " http ", "mlflow ui",
           "make ",
           # a company's database server and files named as placeholders (tests/test_database.py runs these
           # commands against a real PostgreSQL and DuckDB file; tests/test_history.py the history ones)
           "db.internal", "postgresql://...", "crm.duckdb", "score ... --out", "score_history",
           # Spark's examples need microsecond Parquet, a cluster or a JVM: tests/test_spark.py runs spark-score.
           "spark-score", "spark-submit", "zip -r")


def readme_commands() -> list[str]:
    """Every command line in the README's bash blocks, continuation lines joined, comments dropped."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def readme_rules() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"### The rules file \(TOML\)\n\n```toml\n(.*?)```", text, flags=re.S).group(1)


def test_readme_examples_run_as_written(tmp_path, monkeypatch, mlflow_store, capsys):
    monkeypatch.chdir(tmp_path)
    # Data that ends now, as a user's export does: scoring "as of now" (the README's command) refuses stale data.
    start = (pd.Timestamp.now().normalize() - pd.DateOffset(months=15) - pd.Timedelta(days=2)).strftime("%Y-%m-%d")
    crm = generate_crm(2500, start=start, months=15, seed=2)
    crm.leads.to_csv("leads.csv", index=False)
    crm.events.to_parquet("events.parquet")
    crm.deals.to_csv("deals.csv", index=False)
    write_quirky_csv(make_export(1000, seed=4), tmp_path / "export.csv")
    make_export(40, seed=9).drop(columns=["Deal Won"]).to_csv("new_leads.csv", index=False)
    Path("my_rules.toml").write_text(readme_rules())

    commands = readme_commands()
    ran = []
    for command in commands:
        if any(marker in f" {command} " for marker in NOT_RUN):
            continue
        command = command.replace(".venv/bin/python -m training", ".venv/bin/lead-train")
        command = command.replace(".venv/bin/python serve.py", ".venv/bin/lead-serve")
        parts = shlex.split(command.replace("<model_name>", "export-conversion"))
        program, argv = parts[0], parts[1:]
        main = {".venv/bin/lead-train": training_main, ".venv/bin/lead-serve": serve.main}[program]
        code = main(argv)
        assert code == 0, f"{command}\n{capsys.readouterr().err}"
        ran.append(argv[0])
    # Every kind of example ran: contract and config training, scoring both ways, the comparison.
    assert sorted(ran) == ["backtest", "compare", "init-config", "promote", "revert", "score", "score", "train",
                           "train", "train"], ran
    assert len(pd.read_parquet("scores.parquet")) > 0 and len(pd.read_csv("scores.csv")) == 40
    assert Path("reports/compare/report.html").exists() and Path("learned_points.toml").exists()
    assert Path("reports/training/training_report.html").exists()
