"""Read queries only read; an output table that cannot be written is refused before any work, with one line."""

import re
import subprocess
import sys
import time
import uuid

import duckdb
import pytest
import sqlalchemy

import serve
from crm.database import TableWriter, connect
from crm.database_guards import DatabaseError
from crm.synthetic import generate_crm

MODEL = "models:/no-such-model@champion"  # never reached: every refusal here comes before the model loads


@pytest.fixture(scope="module")
def crm():
    return generate_crm(60, months=3, seed=11)


@pytest.fixture
def files(crm, tmp_path, monkeypatch, new_mlflow_store):
    for name in ("leads", "events", "deals"):
        getattr(crm, name).to_csv(tmp_path / f"{name}.csv", index=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", new_mlflow_store(tmp_path))
    return ["--leads", "leads.csv", "--events", "events.csv", "--deals", "deals.csv"]


def _one_line(capsys, pattern):
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert re.search(pattern, errors[0]), err


def _leads_count(database, table="crm_leads"):
    return len(database.read(table=table))


def _engine(url):
    return sqlalchemy.create_engine(sqlalchemy.engine.make_url(url).set(drivername="postgresql+psycopg"))


@pytest.fixture
def duck(crm, tmp_path):
    path = tmp_path / "crm.duckdb"
    with duckdb.connect(str(path)) as con:
        con.register("frame", crm.leads)
        con.execute("CREATE TABLE crm_leads AS SELECT * FROM frame")
    return connect(path)


@pytest.mark.parametrize("query, message", [
    ("SELECT * FROM crm_leads; DROP TABLE crm_leads", r"one SELECT statement; .* is 2 statement\(s\): SELECT, DROP"),
    ("DROP TABLE crm_leads", r"is 1 statement\(s\): DROP"),
    ("WITH gone AS (DELETE FROM crm_leads RETURNING *) SELECT * FROM gone", r"read-only|DELETE|could not read"),
])
def test_a_duckdb_query_only_reads(duck, crm, query, message):
    with pytest.raises(DatabaseError, match=message):
        duck.read(query=query)
    assert _leads_count(duck) == len(crm.leads)  # nothing dropped, nothing deleted
    assert len(duck.read(query="SELECT lead_id FROM crm_leads WHERE lead_id IS NOT NULL")) == len(crm.leads)


def test_a_stacked_leads_query_is_one_line_through_score(duck, crm, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert serve.main(["score", "--model", MODEL, "--db", str(duck.path), "--no-monitoring", "--out", "scores",
                       "--leads", "SELECT * FROM crm_leads; DROP TABLE crm_leads"]) == 2
    _one_line(capsys, r"a query must be one SELECT statement; .*2 statement\(s\): SELECT, DROP\. Nothing was run\.")
    assert _leads_count(duck) == len(crm.leads)


@pytest.fixture
def postgres(postgres_url, crm):
    database = connect(postgres_url)
    table = f"guard_leads_{uuid.uuid4().hex[:6]}"
    with _engine(postgres_url).begin() as connection:
        crm.leads.to_sql(table, connection, index=False)
    return database, table


@pytest.mark.parametrize("query, message", [
    ("SELECT * FROM {t}; DROP TABLE {t}", r"is 2 statement\(s\): SELECT, DROP"),
    ("WITH gone AS (DELETE FROM {t} RETURNING *) SELECT * FROM gone", r"read-only transaction"),
    ("SELECT * FROM {t} FOR UPDATE", r"read-only transaction|FOR UPDATE"),  # DuckDB's parser cannot read it
])
def test_a_postgres_query_only_reads(postgres, crm, query, message):
    database, table = postgres
    with pytest.raises(DatabaseError, match=message):
        database.read(query=query.format(t=table))
    assert _leads_count(database, table) == len(crm.leads)


def test_a_second_writer_of_one_postgres_table_is_refused(postgres, crm):
    database, _ = postgres
    frame = crm.leads[["lead_id"]]
    with database.write_table("guard_scores") as first:
        first.write(frame)
        with pytest.raises(DatabaseError, match=r"another run is writing table 'guard_scores' now"):
            database.write_table("guard_scores")  # the probe, before any work
        with pytest.raises(DatabaseError, match=r"another run is writing table 'guard_scores' now"):
            with TableWriter(connect(database.url), "guard_scores"):  # a run that passed its probe earlier
                pass
    assert len(database.read(table="guard_scores")) == len(frame)  # the first run's rows, whole


def test_a_view_on_the_output_table_is_refused_before_any_work(postgres, postgres_url, files, capsys):
    database, table = postgres
    with _engine(postgres_url).begin() as connection:
        connection.execute(sqlalchemy.text(f"CREATE TABLE scored_{table} AS SELECT lead_id FROM {table}"))
        connection.execute(sqlalchemy.text(f"CREATE VIEW hot_{table} AS SELECT * FROM scored_{table}"))
    assert serve.main(["score", "--model", MODEL, *files, "--out-db", postgres_url, "--out", f"scored_{table}",
                       "--no-monitoring"]) == 2
    _one_line(capsys, rf"table 'scored_{table}' cannot be replaced: the view\(s\) hot_{table} depend on it")


@pytest.fixture
def limited_user(postgres_url):
    """A role that may read but not create tables, with a password that the server checks (scram)."""
    name = f"reader_{uuid.uuid4().hex[:6]}"
    with _engine(postgres_url).begin() as connection:
        connection.execute(sqlalchemy.text(f"CREATE ROLE {name} LOGIN PASSWORD 'right'"))
        connection.execute(sqlalchemy.text(f"REVOKE CREATE ON SCHEMA public FROM {name}"))
        hba = connection.execute(sqlalchemy.text("SHOW hba_file")).scalar()
    with open(hba) as handle:
        rules = handle.read()
    with open(hba, "w") as handle:  # before the trust lines, for this role only
        handle.write(f"local all {name} scram-sha-256\nhost all {name} 127.0.0.1/32 scram-sha-256\n" + rules)
    with _engine(postgres_url).connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_reload_conf()"))
    time.sleep(0.3)
    url = sqlalchemy.engine.make_url(postgres_url)
    yield lambda password: url.set(username=name, password=password).render_as_string(hide_password=False)
    with open(hba, "w") as handle:
        handle.write(rules)
    with _engine(postgres_url).connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_reload_conf()"))


@pytest.mark.parametrize("password, message", [
    ("wrong", r"password authentication failed .*Check the user and password"),
    ("right", r"permission denied for schema public\. The user may not create or replace tables"),
])
def test_an_output_database_the_user_cannot_write_is_one_line(limited_user, files, capsys, password, message):
    assert serve.main(["score", "--model", MODEL, *files, "--out-db", limited_user(password), "--out", "scores",
                       "--no-monitoring"]) == 2
    _one_line(capsys, message)
    assert "right" not in capsys.readouterr().err


def test_a_missing_driver_is_one_line(files, capsys):
    assert serve.main(["score", "--model", MODEL, *files, "--out-db", "mysql+nosuchdriver://u@localhost/crm",
                       "--out", "scores", "--no-monitoring"]) == 2
    _one_line(capsys, r"mysql\+nosuchdriver://u@localhost/crm: could not write table 'scores'")


def test_a_duckdb_output_another_process_writes_is_one_line(files, tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
                               "print('ready', flush=True); time.sleep(60)", str(tmp_path / "out.duckdb")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        assert serve.main(["score", "--model", MODEL, *files, "--out-db", str(tmp_path / "out.duckdb"),
                           "--out", "scores", "--no-monitoring"]) == 2
        _one_line(capsys, r"could not write table 'scores': .*lock.*Another process is writing this DuckDB file")
    finally:
        holder.kill()
        holder.wait()
