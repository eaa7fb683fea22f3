"""`python -m training compare` end to end: HTML with every picture, CSV tables, learned points, MLflow run."""

import re

import mlflow
import pandas as pd

from analysis.report import FIGURES
from models.rules import load_rules
from train import main as training_main


def test_compare_writes_report_tables_and_run(tmp_path, mlflow_store, capsys):
    data = tmp_path / "crm"
    assert training_main(["generate", "--leads", "3000", "--months", "15", "--seed", "5", "--out", str(data)]) == 0
    tables = [f"--{name}" for name in ("leads", "events", "deals")]
    files = [str(data / f"{name}.parquet") for name in ("leads", "events", "deals")]
    assert training_main(["train", *[x for pair in zip(tables, files) for x in pair]]) == 0
    out, learned = tmp_path / "report", tmp_path / "learned.toml"
    code = training_main(["compare", *[x for pair in zip(tables, files) for x in pair], "--out", str(out),
                          "--scorecard-out", str(learned)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert re.search(r"ROC AUC: model 0\.\d+, rules 0\.\d+, learned points table 0\.\d+", printed)
    assert "SQL conversion at equal volume" in printed

    html = (out / "report.html").read_text()
    pictures = re.findall(r'<img alt="(\w+)" src="data:image/png;base64,([A-Za-z0-9+/=]{1000,})"', html)
    assert sorted(name for name, _ in pictures) == sorted(FIGURES)
    assert not re.search(r"""src=["']?http""", html) and "<link" not in html  # self-contained
    for name in ("auc", "lift", "tiers", "crosstab", "crosstab_equal_volume", "disagreements", "forecast"):
        assert (out / f"{name}.csv").exists(), name
    tiers = pd.read_csv(out / "tiers.csv").set_index(["scorer", "tier"])
    assert tiers.loc[("rules", "SQL"), "leads"] == tiers.loc[("model at equal volume", "SQL"), "leads"]
    disagreements = pd.read_csv(out / "disagreements.csv")
    assert disagreements["rule_reasons"].notna().all() and disagreements["model_reasons"].notna().all()

    assert load_rules(learned).sql > load_rules(learned).mql

    client = mlflow.MlflowClient()
    runs = mlflow.search_runs(experiment_names=["lead-conversion"], filter_string="tags.kind = 'comparison'")
    assert len(runs) == 1
    run_id = runs.loc[0, "run_id"]
    assert {"model_roc_auc", "rules_roc_auc", "learned_points_roc_auc",
            "model_at_equal_volume_sql_conversion"} <= set(client.get_run(run_id).data.metrics)
    logged = {item.path for item in client.list_artifacts(run_id, "comparison")}
    assert {"comparison/tiers.csv", "comparison/rules.toml", "comparison/learned_points.toml",
            "comparison/plots"} <= logged
    # Per-lead rows (the disagreements table, the report that lists them) stay on disk by default.
    assert "comparison/disagreements.csv" not in logged and "comparison/report.html" not in logged
    assert client.get_run(run_id).data.tags["lead_rows"].startswith("not logged")


    bad = tmp_path / "bad.toml"
    bad.write_text("[thresholds]\nmql = 80\nsql = 50\n")
    assert training_main(["compare", "--rules", str(bad), *[x for pair in zip(tables, files) for x in pair],
                          "--out", str(tmp_path / "bad")]) == 2
    assert "bad.toml: [thresholds] sql must be above mql" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
