"""Exports init-config has to read as they are: won deals only, blank creation dates; trained with no hand edit."""

import re
import tomllib

import mlflow
import pandas as pd
import pytest
from generated_exports import write_export

import serve
from crm.config import load_config
from crm.export import load_tables
from features.timing import duration_days
from train import main as training_main


def init_config(folder, capsys) -> tuple[dict, str]:
    """init-config on the folder's three tables; the config as parsed TOML and the console."""
    capsys.readouterr()
    assert training_main(["init-config", "--leads", str(folder / "leads.csv"), "--events", str(folder / "events.csv"),
                          "--deals", str(folder / "deals.csv"), "--out", str(folder / "config.toml")]) == 0
    return tomllib.loads((folder / "config.toml").read_text()), capsys.readouterr().out


def train(folder, capsys) -> str:
    assert training_main(["train", "--config", str(folder / "config.toml"), "--threads", "1",
                          "--report-out", str(folder / "report")]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_a_won_only_export_trains_from_init_config_as_written(tmp_path, mlflow_store, capsys):
    folder = tmp_path / "acme"
    crm = write_export(folder, won_only=True, seed=1)
    config, console = init_config(folder, capsys)
    # The mostly blank seller note is not the outcome: the table is read as won deals only.
    assert "deals: won deals only" in console and "outcome" not in config["deals"]
    assert config["deals"]["won_only"] is True and config["deals"]["closed_at"] == "Won On"
    # The horizon leaves room to train: at most a quarter of the data's span (rounded up to 5 days).
    span = (crm.end - crm.leads["created_at"].min()) / pd.Timedelta(days=1)
    horizon = duration_days(config["training"]["horizon"])
    assert horizon <= span / 4 + 5
    assert config["training"]["model_name"] == "acme-conversion"  # the project's folder, not "leads.csv"

    # Every lead without a win whose last activity lies lost_after before the data's end counts as lost.
    after = pd.Timedelta(days=duration_days(config["deals"]["lost_after"]))
    last = crm.events.groupby("lead_id")["occurred_at"].max().reindex(crm.leads["lead_id"])
    last = pd.concat([last, crm.leads.set_index("lead_id")["created_at"]], axis=1).max(axis=1)
    end = max(crm.events["occurred_at"].max(), crm.deals["closed_at"].max(), crm.leads["created_at"].max())
    won = crm.deals.loc[crm.deals["outcome"].eq("won"), "lead_id"]
    expected_lost = int(((last + after <= end) & ~last.index.isin(won)).sum())
    assert expected_lost > 0

    console = train(folder, capsys)
    assert f"won deals only (won_only = true); {expected_lost:,} leads without a deal" in console
    version = mlflow.MlflowClient().get_model_version_by_alias("acme-conversion", "champion")
    run = mlflow.MlflowClient().get_run(version.run_id)
    assert run.data.metrics["test_roc_auc"] > 0.65  # the generator's signal, learned from wins alone


def test_an_export_with_blank_creation_dates_trains_without_those_leads(tmp_path, mlflow_store, capsys):
    folder = tmp_path / "globex"
    crm = write_export(folder, blank_created=300, seed=2)
    config, console = init_config(folder, capsys)
    assert "'Created On' is blank in 300 of 1,500 rows" in console
    assert config["columns"]["created_at"] == "Created On" and config["columns"]["undated_leads"] == "leave_out"
    assert config["training"]["model_name"] == "globex-conversion"

    leads, _, _, deals = load_tables(load_config(folder / "config.toml"))
    undated = set(crm.leads["lead_id"].astype(str)) - set(leads["lead_id"].astype(str))  # ids are read as text
    assert len(leads) == 1200 and len(undated) == 300
    assert not deals["lead_id"].astype(str).isin(undated).any()
    assert len(deals) == (~crm.deals["lead_id"].astype(str).isin(undated)).sum()  # everyone else's deals, all of them
    console = train(folder, capsys)
    assert "leads.csv: 300 of 1,500 leads have a blank 'Created On': left out of training and scoring" in console
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("globex-conversion", "champion").version) == "1"
    assert [model.name for model in client.search_registered_models()] == ["globex-conversion"]

    # Scored through its config without --model: the config's own champion, and only the dated leads.
    out = tmp_path / "scores.csv"
    assert serve.main(["score", "--config", str(folder / "config.toml"), "--as-of", str(crm.end), "--out", str(out),
                       "--no-monitoring", "--threads", "1"]) == 0
    assert "(model globex-conversion version 1)" in capsys.readouterr().out
    scored = set(pd.read_csv(out)["lead_id"].astype(str))
    assert scored and not scored & undated


def test_blank_dates_refused_by_choice_are_named_as_the_export_names_them(tmp_path, capsys):
    folder = tmp_path / "initech"
    write_export(folder, n_leads=300, blank_created=20, seed=3)
    init_config(folder, capsys)
    text = (folder / "config.toml").read_text()
    (folder / "config.toml").write_text(re.sub(r'undated_leads = "leave_out".*', 'undated_leads = "refuse"', text))
    assert training_main(["train", "--config", str(folder / "config.toml")]) == 2
    error = capsys.readouterr().err
    assert "column 'Created On' must hold a timestamp in every row; 20 empty values" in error
    assert "Contact ID=" in error and "Created On=" in error
    assert "created_at" not in error and "lead_id" not in error


@pytest.mark.parametrize("table, column, own", [("events", "Timestamp", "Contact"), ("deals", "Closed", "Contact")])
def test_a_blank_event_or_deal_date_is_named_as_the_export_names_it(tmp_path, capsys, table, column, own):
    folder = tmp_path / "hooli"
    write_export(folder, n_leads=300, seed=4)
    init_config(folder, capsys)
    frame = pd.read_csv(folder / f"{table}.csv")
    frame.loc[[3, 7], column] = None
    frame.to_csv(folder / f"{table}.csv", index=False)
    assert training_main(["train", "--config", str(folder / "config.toml")]) == 2
    error = capsys.readouterr().err
    assert f"column {column!r} must hold a timestamp in every row; 2 empty values" in error
    assert f"row 4: {own}=" in error
    assert not re.search(r"\b(lead_id|occurred_at|closed_at|event_type)\b", error)
