"""An output that is one of the run's inputs is refused before any work, however either is spelled."""

import os
import re

import duckdb
import pytest

import serve
from crm.locations import database_key, file_location, query_locations, table_location
from crm.synthetic import generate_crm

MODEL = "models:/no-such-model@champion"  # never reached: the refusal comes first


@pytest.fixture
def export(tmp_path, monkeypatch, new_mlflow_store):
    """A small CSV export in tmp_path (the current folder), and the bytes of each file."""
    crm = generate_crm(40, months=3, seed=3)
    for name in ("leads", "events", "deals"):
        getattr(crm, name).to_csv(tmp_path / f"{name}.csv", index=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", new_mlflow_store(tmp_path))
    return {name: (tmp_path / f"{name}.csv").read_bytes() for name in ("leads", "events", "deals")}


def _score(*args):
    return serve.main(["score", "--model", MODEL, "--leads", "leads.csv", "--events", "events.csv",
                       "--deals", "deals.csv", "--no-monitoring", *args])


def _refused(capsys, pattern):
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert re.search(pattern, err), err


@pytest.mark.parametrize("out, pattern", [
    ("leads.csv", r"--out leads\.csv is the input --leads \(leads\.csv\)"),
    ("./sub/../events.csv", r"--out sub/\.\./events\.csv is the input --events"),
    ("{tmp}/deals.csv", r"is the input --deals"),
    ("link.csv", r"--out link\.csv is the input --leads"),  # a symbolic link to leads.csv
    ("hard.csv", r"--out hard\.csv is the input --leads"),  # a hard link to leads.csv
])
def test_an_output_file_that_is_an_input_is_refused_and_the_input_kept(export, tmp_path, capsys, out, pattern):
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.csv").symlink_to(tmp_path / "leads.csv")
    os.link(tmp_path / "leads.csv", tmp_path / "hard.csv")
    assert _score("--out", out.format(tmp=tmp_path)) == 2
    _refused(capsys, pattern)
    for name, content in export.items():
        assert (tmp_path / f"{name}.csv").read_bytes() == content


def test_a_history_folder_holding_an_input_is_refused(export, tmp_path, capsys):
    assert _score("--out", "scores.csv", "--history", ".") == 2
    _refused(capsys, r"--history \. holds the input --leads \(leads\.csv\)")
    assert not (tmp_path / "scores.csv").exists()


def test_a_config_naming_the_output_as_its_leads_is_refused(export, tmp_path, capsys):
    (tmp_path / "project.toml").write_text('[data]\nleads = "leads.csv"\nevents = "events.csv"\ndeals = "deals.csv"\n'
                                           '\n[columns]\nid = "lead_id"\ncreated_at = "created_at"\n')
    assert serve.main(["score", "--model", MODEL, "--config", "project.toml", "--out", "./leads.csv",
                       "--no-monitoring"]) == 2
    _refused(capsys, r"--out leads\.csv is the input --leads")
    assert (tmp_path / "leads.csv").read_bytes() == export["leads"]


def test_a_duckdb_table_is_refused_under_every_spelling(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    crm = generate_crm(40, months=3, seed=3)
    with duckdb.connect("crm.duckdb") as con:
        for name in ("leads", "events", "deals"):
            con.register("frame", getattr(crm, name))
            con.execute(f"CREATE TABLE crm_{name} AS SELECT * FROM frame")
    before = len(crm.leads)
    for out, db, out_db in [("crm_leads", "crm.duckdb", None), ("main.crm_leads", "duckdb:///crm.duckdb", None),
                            ("CRM_LEADS", "crm.duckdb", f"duckdb:///{tmp_path}/./crm.duckdb"),
                            ("crm_events", "crm.duckdb", None)]:
        args = ["score", "--model", MODEL, "--db", db, "--leads", "crm_leads", "--no-monitoring", "--out", out,
                "--events", "SELECT lead_id, occurred_at, event_type FROM main.crm_events WHERE true"]
        assert serve.main(args + (["--out-db", out_db] if out_db else [])) == 2
        _refused(capsys, r"--out table \S+ of (duckdb:/+)?\S*crm\.duckdb is the input --(leads|events)")
    with duckdb.connect("crm.duckdb", read_only=True) as con:
        assert con.sql("SELECT count(*) FROM crm_leads").fetchall()[0][0] == before


def test_locations_name_one_place_however_spelled(tmp_path):
    (tmp_path / "a.duckdb").touch()
    assert database_key("postgresql://ana:secret@localhost/crm") == database_key(
        "postgresql+psycopg://bo@127.0.0.1:5432/crm") == database_key("postgresql://bo@/crm?host=/run/postgresql")
    assert database_key("postgresql://localhost/crm") != database_key("postgresql://localhost:5433/crm")
    assert database_key("postgresql://db.example/crm") != database_key("postgresql://localhost/crm")
    assert database_key(tmp_path / "a.duckdb") == database_key(f"duckdb:///{tmp_path}/../{tmp_path.name}/a.duckdb")
    pg = "postgresql://localhost/crm"
    assert table_location(pg, "leads") == table_location(pg, "public.LEADS") == table_location(pg, '"public"."leads"')
    assert table_location(pg, '"Leads"') != table_location(pg, "Leads")  # PostgreSQL keeps quoted case
    assert table_location("crm.duckdb", '"Leads"') == table_location("crm.duckdb", "main.leads")
    read = query_locations(pg, "WITH recent AS (SELECT * FROM crm.events e JOIN Leads USING (lead_id)) "
                               "SELECT * FROM recent")
    assert table_location(pg, "crm.events") in read and table_location(pg, "leads") in read
    assert file_location(tmp_path / "x" / ".." / "a.duckdb") == file_location(tmp_path / "a.duckdb")
