"""CRM tables in and score tables out of a real PostgreSQL server and a DuckDB file."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import serve
from crm.config import load_config
from crm.export import load_tables
from crm.database import connect, load_crm_from_database
from crm.synthetic import generate_crm
from features.contract import DataContractError
from train import main as training_main

SERVE = Path(serve.__file__).resolve()
AS_OF = "2026-03-01"


@pytest.fixture(scope="module")
def crm():
    return generate_crm(3_000, months=15, seed=11)


@pytest.fixture(scope="module")
def crm_files(crm, tmp_path_factory):
    from crm.synthetic import write_crm

    folder = tmp_path_factory.mktemp("crm_files")
    write_crm(crm, folder)
    return folder


def _load(database, crm):
    for name in ("leads", "events", "deals"):
        with database.write_table(f"crm_{name}") as writer:
            frame = getattr(crm, name)
            for start in range(0, len(frame), 20_000):  # in chunks, as a large export would be
                writer.write(frame.iloc[start:start + 20_000])


def _tables(database):
    return set(database.read(query="SELECT table_name FROM information_schema.tables "
                                   "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")["table_name"])


def test_duckdb_table_is_replaced_whole_or_not_at_all(tmp_path):
    database = connect(f"duckdb:///{tmp_path / 'crm.duckdb'}")
    first = pd.DataFrame({"lead_id": [1, 2, 3], "score": [10, 20, 30]})
    with database.write_table("scores") as writer:
        writer.write(first.head(2))
        writer.write(first.tail(1))
    pd.testing.assert_frame_equal(database.read(table="scores"), first)

    with pytest.raises(RuntimeError, match="half-way"):
        with database.write_table("scores") as writer:
            writer.write(pd.DataFrame({"lead_id": [9], "score": [99]}))
            raise RuntimeError("stopped half-way")
    pd.testing.assert_frame_equal(database.read(table="scores"), first)
    assert _tables(database) == {"scores"}  # no staging table left behind

    database.append("history", first)
    database.append("history", first)
    assert database.read(query="SELECT sum(score) AS total FROM history")["total"].item() == 120


def test_any_sqlalchemy_url_round_trips_a_table(tmp_path, postgres_url):
    frame = pd.DataFrame({"lead_id": [1, 2, 3], "probability": [0.25, np.nan, 0.5],
                          "tier": ["SQL", None, 'say "hi", then, leave'], "reason": ["", "x", None],
                          "as_of": pd.to_datetime(["2026-03-01 10:00:00.123456", None, "2026-03-02 00:00:00"], format="ISO8601"),
                          "flag": [True, False, True]})
    for url in (f"sqlite:///{tmp_path / 'crm.sqlite'}", postgres_url):  # generic inserts, and COPY
        database = connect(url)
        with database.write_table("roundtrip") as writer:
            writer.write(frame.head(2))
            writer.write(frame.tail(1))
        back = database.read(table="roundtrip")
        np.testing.assert_array_equal(back["lead_id"], frame["lead_id"])
        np.testing.assert_allclose(back["probability"], frame["probability"])
        assert back["tier"].tolist()[::2] == ["SQL", 'say "hi", then, leave'] and pd.isna(back["tier"][1])
        assert back["reason"].tolist()[:2] == ["", "x"] and pd.isna(back["reason"][2])  # empty text is not NULL
        assert pd.to_datetime(back["as_of"], format="ISO8601").tolist()[::2] == frame["as_of"].tolist()[::2]
        assert back["flag"].astype(bool).tolist() == [True, False, True]


def test_unknown_table_and_bad_names_are_refused(tmp_path, postgres_url):
    database = connect(postgres_url)
    with pytest.raises(DataContractError, match="crm_nowhere"):
        database.read(table="crm_nowhere")
    with pytest.raises(ValueError, match="letters, digits and underscores"):
        database.read(table="scores; DROP TABLE x")
    assert "***" not in connect("postgresql://me:secret@db/crm").display.replace("me:***", "")
    assert "secret" not in connect("postgresql://me:secret@db/crm").display


def test_crm_tables_and_queries_from_postgres_match_the_files(crm, crm_files, postgres_url):
    database = connect(postgres_url)
    _load(database, crm)
    leads, events, deals = load_crm_from_database(
        postgres_url, "crm_leads", "SELECT * FROM crm_events WHERE event_type <> 'email_bounce'", "crm_deals")
    assert len(leads) == len(crm.leads) and len(deals) == len(crm.deals)
    assert len(events) == int((crm.events["event_type"] != "email_bounce").sum())
    # PostgreSQL keeps microseconds; the synthetic data has nanoseconds.
    pd.testing.assert_series_equal(leads["created_at"].astype("datetime64[ns]"),
                                   crm.leads["created_at"].dt.floor("us").astype("datetime64[ns]"))
    # A deal of a lead the lead table does not hold is refused, naming the database source.
    with pytest.raises(DataContractError, match="table 'crm_deals'.*deals of unknown leads"):
        load_crm_from_database(postgres_url, "SELECT * FROM crm_leads WHERE lead_id % 2 = 0", None, "crm_deals")


def test_config_names_tables_in_a_database(crm, tmp_path, postgres_url):
    database = connect(postgres_url)
    if "crm_leads" not in _tables(database):
        _load(database, crm)
    config = tmp_path / "config.toml"
    config.write_text(f"""[data]
url = "{postgres_url}"
leads = "crm_leads"
events = "crm_events"

[deals]
query = "SELECT lead_id AS contact, closed_at AS closed, CASE outcome WHEN 'won' THEN 'Closed Won' ELSE 'Closed Lost' END AS stage FROM crm_deals"
id = "contact"
closed_at = "closed"
outcome = "stage"
won = ["Closed Won"]
lost = ["Closed Lost"]

[columns]
id = "lead_id"
created_at = "created_at"
email = "email"
job_title = "job_title"

[roles]
categorical = ["industry", "country", "lead_source"]
numeric = ["company_size", "annual_revenue"]
""")
    project = load_config(config)
    leads, labels, events, deals = load_tables(project)
    assert labels is None
    assert len(leads) == len(crm.leads) and len(events) == len(crm.events) and len(deals) == len(crm.deals)
    assert sorted(deals.columns) == ["closed_at", "lead_id", "outcome"]
    assert (deals["outcome"].value_counts().sort_index() == crm.deals["outcome"].value_counts().sort_index()).all()
    # A file where the config names a database is refused, as is a table without one.
    config.write_text(config.read_text().replace('query = "SELECT', 'file = "deals.csv"\n# "SELECT'))
    with pytest.raises(ValueError, match=r"\[deals\] file is a file but \[data\] url names a database"):
        load_config(config)


TABLES = ["--leads", "crm_leads", "--events", "crm_events", "--deals", "crm_deals"]


@pytest.fixture(scope="module")
def trained_from_postgres(crm, postgres_url, tmp_path_factory):
    """The CRM loaded into PostgreSQL and a model trained from its tables, in a store of this module's own."""
    database = connect(postgres_url)
    if "crm_leads" not in _tables(database):
        _load(database, crm)
    folder = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        patch.chdir(folder)
        assert training_main(["train", "--db", postgres_url, *TABLES, "--horizon-days", "60"]) == 0
        yield database


def test_train_from_postgres_score_into_it_and_read_back(trained_from_postgres, crm_files, postgres_url, tmp_path,
                                                         capsys):
    database = trained_from_postgres
    capsys.readouterr()
    assert serve.main(["score", "--db", postgres_url, *TABLES, "--as-of", AS_OF, "--chunk-size", "700",
                       "--out", "lead_scores"]) == 0
    assert "table lead_scores of postgresql://" in capsys.readouterr().out
    scored = database.read(table="lead_scores").sort_values("lead_id").reset_index(drop=True)

    # The same model on the same data from Parquet files: the same rows, probabilities, tiers and reasons.
    reference = tmp_path / "scores.parquet"
    assert serve.main(["score", "--leads", str(crm_files / "leads.parquet"),
                       "--events", str(crm_files / "events.parquet"), "--deals", str(crm_files / "deals.parquet"),
                       "--as-of", AS_OF, "--out", str(reference)]) == 0
    expected = pd.read_parquet(reference).sort_values("lead_id").reset_index(drop=True)
    assert len(scored) == len(expected) > 500
    np.testing.assert_array_equal(scored["lead_id"], expected["lead_id"])
    np.testing.assert_allclose(scored["probability"], expected["probability"], rtol=0, atol=1e-12)
    assert (scored["tier"] == expected["tier"]).all()
    assert (scored["positive_reason_1"].fillna("") == expected["positive_reason_1"].fillna("")).all()
    assert (scored["as_of"] == pd.Timestamp(AS_OF)).all()

    # The same run into a DuckDB file, the embedded default, reading the tables from PostgreSQL.
    duck = tmp_path / "scores.duckdb"
    assert serve.main(["score", "--db", postgres_url, *TABLES, "--as-of", AS_OF, "--out", "lead_scores",
                       "--out-db", str(duck)]) == 0
    in_duckdb = connect(duck).read(table="lead_scores").sort_values("lead_id").reset_index(drop=True)
    np.testing.assert_allclose(in_duckdb["probability"], expected["probability"], rtol=0, atol=1e-12)


def test_history_table_in_postgres_two_runs_trajectory_and_evaluation(trained_from_postgres, postgres_url, crm,
                                                                         capsys):
    database = trained_from_postgres
    for as_of, reasons in (("2026-01-15", ["--no-reasons"]), ("2026-02-15", [])):  # the second run adds columns
        assert serve.main(["score", "--db", postgres_url, *TABLES, "--as-of", as_of, "--out", "nightly_scores",
                           "--history-table", "score_history", "--no-monitoring", *reasons]) == 0
    stored = database.read(table="score_history")
    first = stored[stored["as_of"] == pd.Timestamp("2026-01-15")].set_index("lead_id")["score"]
    latest = database.read(table="nightly_scores")
    again = latest[latest["previous_score"].notna()]
    assert len(again) > 100
    # The history keeps the leads' own ids; the output's are text.
    np.testing.assert_array_equal(again["previous_score"].astype(int),
                                  first.loc[again["lead_id"].astype("int64")].to_numpy())
    assert stored.loc[stored["as_of"] == pd.Timestamp("2026-01-15"), "positive_reason_1"].isna().all()
    assert stored.loc[stored["as_of"] == pd.Timestamp("2026-02-15"), "positive_reason_1"].notna().any()
    capsys.readouterr()

    lead = int(again["lead_id"].iloc[0])
    assert serve.main(["history", "--db", postgres_url, "--history-table", "score_history", "--lead", str(lead)]) == 0
    assert f"lead {lead}: 2 stored score(s)" in capsys.readouterr().out
    assert serve.main(["history", "--db", postgres_url, "--history-table", "score_history", "--evaluate",
                       "--deals", "crm_deals", "--horizon-days", "30"]) == 0
    printed = capsys.readouterr().out
    assert "2026-01-15" in printed and "2026-02-15" in printed and "roc_auc" in printed


def test_a_run_killed_half_way_leaves_the_old_table_whole(trained_from_postgres, postgres_url, capsys):
    database = trained_from_postgres
    assert serve.main(["score", "--db", postgres_url, *TABLES, "--as-of", AS_OF, "--out", "old_scores"]) == 0
    capsys.readouterr()
    before = database.read(table="old_scores").sort_values("lead_id").reset_index(drop=True)

    # A later run in small chunks, killed (SIGKILL: no clean-up code runs) after its first chunk is written.
    process = subprocess.Popen([sys.executable, str(SERVE), "score", "--db", postgres_url, *TABLES,
                                "--as-of", "2026-03-15", "--chunk-size", "50", "--out", "old_scores", "--verbose"],
                               stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        line, lines = "", []
        # A chunk is 50 open leads, gathered from as many lead rows as it takes.
        while not re.search(r"read [\d,]+/", line) and time.monotonic() < deadline:
            line = process.stderr.readline()
            lines.append(line)
            assert line or process.poll() is None, f"the scoring run ended before its first chunk: {lines}"
        assert re.search(r"read [\d,]+/", line), "no chunk written in time"
        assert process.poll() is None, "the run finished before it could be killed half-way"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    after = database.read(table="old_scores").sort_values("lead_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(after, before)
    assert not any(name.startswith("_staging_") for name in _tables(database))


def test_train_from_a_duckdb_file_score_into_it_twice_with_history(tmp_path, mlflow_store, capsys):
    crm = generate_crm(2_500, months=15, seed=12)
    path = tmp_path / "crm.duckdb"
    _load(connect(path), crm)
    assert training_main(["train", "--db", str(path), *TABLES, "--horizon-days", "60"]) == 0
    history = tmp_path / "history"
    for as_of in ("2026-02-01", "2026-03-01"):
        assert serve.main(["score", "--db", f"duckdb:///{path}", *TABLES, "--as-of", as_of, "--out", "lead_scores",
                           "--history", str(history), "--no-reasons"]) == 0
    scores = connect(path).read(table="lead_scores")
    assert (scores["as_of"] == pd.Timestamp("2026-03-01")).all()
    assert set(scores["trend"]) <= {"rising", "steady", "falling", "new"} and scores["previous_score"].notna().any()
    stored = pd.concat([pd.read_parquet(file) for file in sorted(history.rglob("*.parquet"))])
    assert sorted(stored["as_of"].unique()) == [pd.Timestamp("2026-02-01"), pd.Timestamp("2026-03-01")]
    first = stored[stored["as_of"] == pd.Timestamp("2026-02-01")].set_index("lead_id")["score"]
    again = scores[scores["previous_score"].notna()]
    # The history keeps the leads' own ids; the output's are text.
    np.testing.assert_array_equal(again["previous_score"].astype(int),
                                  first.loc[again["lead_id"].astype("int64")].to_numpy())
