"""Databases a user can reach: postgres:// URLs, errors that show the host but not the password, a read retried
after a dropped connection, and exports loaded into tables with lead-serve load (real PostgreSQL)."""

import pandas as pd
import pytest
import sqlalchemy

import crm.sqlalchemy_database
import serve
from crm.database import connect
from crm.database_guards import DatabaseError
from crm.readers import read_table
from crm.synthetic import generate_crm
from features.contract import bounded


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    crm_tables = generate_crm(300, months=6, seed=2)
    crm_tables.leads.to_csv(folder / "leads.csv", index=False)
    crm_tables.events.to_parquet(folder / "events.parquet")  # nanosecond timestamps, as pandas writes them
    return folder, crm_tables


def test_exports_load_into_postgres_through_a_postgres_url(exports, postgres_url, capsys):
    folder, crm_tables = exports
    url = postgres_url.replace("postgresql://", "postgres://", 1)  # as Heroku and many tools print it
    assert serve.main(["load", str(folder / "leads.csv"), "--db", url, "--table", "crm_leads"]) == 0
    assert serve.main(["load", str(folder / "events.parquet"), "--db", url, "--table", "crm_events",
                       "--chunk-size", "500"]) == 0
    assert "loaded 300 rows" in capsys.readouterr().out
    database = connect(url)
    leads = database.read(table="crm_leads").sort_values("lead_id").reset_index(drop=True)
    expected = read_table(folder / "leads.csv", text_columns=("lead_id",)).sort_values("lead_id").reset_index(drop=True)
    assert leads["lead_id"].tolist() == expected["lead_id"].astype(str).tolist()  # ids as text
    pd.testing.assert_series_equal(leads["created_at"], pd.to_datetime(expected["created_at"]).astype(
        leads["created_at"].dtype), check_names=False)
    events = database.read(table="crm_events")
    assert len(events) == len(crm_tables.events)
    # PostgreSQL keeps microseconds: the file's nanoseconds arrive cut to them.
    assert sorted(events["occurred_at"]) == sorted(crm_tables.events["occurred_at"].dt.floor("us"))
    assert set(events["lead_id"]) == set(crm_tables.events["lead_id"].astype(str))


def test_a_connection_error_names_the_host_never_the_password(exports, capsys):
    folder, _ = exports
    assert serve.main(["load", str(folder / "leads.csv"), "--db", "postgresql://crm:topsecret@127.0.0.1:9/crm",
                       "--table", "crm_leads"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "crm:***@127.0.0.1:9" in err and "topsecret" not in err and "<e-mail>" not in err
    # The mask still hides an e-mail address and a phone number in the same message.
    text = bounded("postgresql://u:pw@db.example.com/crm failed on ana@example.com, +49 170 1234567")
    assert text == "postgresql://u:***@db.example.com/crm failed on <e-mail>, <phone>"


def fresh_database(postgres_url, name):
    """An empty database of the session's server, and an engine on it for what an administrator does."""
    admin = sqlalchemy.create_engine(sqlalchemy.make_url(postgres_url).set(drivername="postgresql+psycopg"),
                                     isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name}"))
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    return admin, connect(sqlalchemy.make_url(postgres_url).set(database=name).render_as_string(hide_password=False))


def test_a_read_is_retried_after_a_dropped_connection(postgres_url, monkeypatch, capsys):
    admin, database = fresh_database(postgres_url, "nightly_retry")
    database.append("scores", pd.DataFrame({"lead_id": ["a", "b"], "score": [10, 20]}))
    assert len(database.read(table="scores")) == 2  # the pool now holds an open connection
    with admin.connect() as connection:  # the server drops it, as a restart or a failover would
        dropped = connection.execute(sqlalchemy.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = 'nightly_retry' AND pid <> pg_backend_pid()")).scalar()
    assert dropped >= 1
    monkeypatch.setattr(crm.sqlalchemy_database, "BACKOFF_SECONDS", 0.01)
    assert database.read(table="scores")["score"].tolist() == [10, 20]
    assert "the connection dropped" in capsys.readouterr().err
    database.engine.dispose()
    admin.dispose()


def test_a_table_write_starts_again_after_a_dropped_connection_and_is_never_half_written(postgres_url, monkeypatch,
                                                                                       capsys):
    admin, database = fresh_database(postgres_url, "nightly_write_retry")
    database.append("scores", pd.DataFrame({"lead_id": ["old"], "score": [1]}))  # last night's table
    monkeypatch.setattr(crm.sqlalchemy_database, "BACKOFF_SECONDS", 0.01)
    ended = []

    def drop_connection():  # from a second connection, as a server restart or an administrator would
        with admin.connect() as connection:
            ended.append(connection.execute(sqlalchemy.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = 'nightly_write_retry' AND pid <> pg_backend_pid()")).scalar())

    def tables():
        return sorted(database.read(query="SELECT table_name FROM information_schema.tables "
                                          "WHERE table_schema = 'public'")["table_name"])

    chunks = [pd.DataFrame({"lead_id": [f"L{i}-{j}" for j in range(500)], "score": i}) for i in range(3)]
    # The first attempt loses its connection after its first chunk; the second writes the table whole.
    writes = []
    with database.write_table_retried("scores", chunk_rows=500, progress=lambda rows: writes.append(rows) or (
            drop_connection() if len(writes) == 1 else None)) as writer:
        for chunk in chunks:
            writer.write(chunk)
    assert ended[0] >= 1 and writes == [500, 500, 1000, 1500]
    stored = database.read(table="scores").sort_values("lead_id").reset_index(drop=True)
    expected = pd.concat(chunks).sort_values("lead_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
    assert tables() == ["scores"]  # no staging table left by the dropped attempt
    assert "the connection dropped" in capsys.readouterr().err

    # A connection that drops on every attempt: the run fails after its retries, and the table is last run's, whole.
    with pytest.raises(DatabaseError):
        with database.write_table_retried("scores", chunk_rows=500, progress=lambda rows: drop_connection()) as writer:
            for chunk in chunks:
                writer.write(chunk.assign(score=-1))
    assert capsys.readouterr().err.count("the connection dropped") == crm.sqlalchemy_database.RETRIES
    again = database.read(table="scores").sort_values("lead_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(again, expected, check_dtype=False)
    assert tables() == ["scores"]
    database.engine.dispose()
    admin.dispose()


def test_a_history_append_starts_again_after_a_dropped_connection(postgres_url, monkeypatch, capsys, tmp_path):
    # Before: the history's rows went in over one connection held for the whole run; a drop lost the run's history.
    import tempfile

    from scoring.history import TableHistory

    admin, database = fresh_database(postgres_url, "history_retry")
    monkeypatch.setattr(crm.sqlalchemy_database, "BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    history = TableHistory(database, "score_history")
    assert history.latest().empty  # a run reads the last scores first: the pool keeps that connection
    writer = history.writer(pd.Timestamp("2026-01-01"))
    chunks = [pd.DataFrame({"lead_id": [f"L{i}-{j}" for j in range(300)], "score": i,
                            "scored_at": pd.Timestamp("2026-01-01"), "as_of": pd.Timestamp("2026-01-01")})
              for i in range(3)]
    for chunk in chunks:
        writer.write(chunk)
    with admin.connect() as connection:  # the server restarts while the run scores
        assert connection.execute(sqlalchemy.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = 'history_retry' AND pid <> pg_backend_pid()")).scalar() >= 1
    assert writer.commit() == "score_history"
    assert "the connection dropped" in capsys.readouterr().err
    stored = history.read()[["lead_id", "score"]].sort_values("lead_id").reset_index(drop=True)
    expected = pd.concat(chunks)[["lead_id", "score"]].sort_values("lead_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
    assert list(tmp_path.iterdir()) == []  # the spool is gone
    database.engine.dispose()
    admin.dispose()
