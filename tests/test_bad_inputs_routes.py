"""The bad-input corpus through PostgreSQL: ``lead-serve load`` then ``score --db``, and text tables as a CRM database
holds them (DuckDB: test_bad_inputs.py; Spark: test_bad_inputs_spark.py). Every case reads or stops with one line and
exit 2, never a traceback (anything but a return code fails the test); nothing is written when it stops."""

import pytest
from bad_inputs import TABLES, clean_tables, corpus, write_clean
from test_bad_inputs import CASES, _as_text_table, _assert_one_line, assert_reads_or_is_one_line

import serve
from crm.database import connect
from registry.runs import log_training_run
from registry.store import use_default_store
from training.pipeline import TrainingResult

MODEL = "models:/lead-conversion@champion"
AS_OF = "2026-01-01"


@pytest.fixture(scope="module")
def world(small_models, tmp_path_factory):
    """The corpus made from 300 leads of the small CRM, its clean export, and the small model registered."""
    folder = tmp_path_factory.mktemp("routes")
    crm = small_models["crm"]
    leads = crm.leads.head(300)
    tables = clean_tables(type(crm)(**{**vars(crm), "leads": leads,
                                       "events": crm.events[crm.events["lead_id"].isin(leads["lead_id"])],
                                       "deals": crm.deals[crm.deals["lead_id"].isin(leads["lead_id"])]}))
    tables = {name: frame.reset_index(drop=True) for name, frame in tables.items()}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        patch.chdir(folder)
        use_default_store()
        log_training_run(TrainingResult(bundle=small_models["logistic"], params={"model": "logistic"},
                                        metrics={"test_roc_auc": 0.8}, tables={}, test=None))
    use_default_store()
    return {"folder": folder, "clean": write_clean(tables, folder / "clean"),
            "cases": {case.name: case for case in corpus(tables)}}


@pytest.fixture
def store(world, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{world['folder'] / 'mlflow.db'}")
    monkeypatch.chdir(world["folder"])
    use_default_store()


@pytest.fixture(scope="module")
def postgres(world, postgres_url):
    """The clean export in PostgreSQL twice: loaded by ``lead-serve load`` and as text tables."""
    database = connect(postgres_url)
    for table in TABLES:
        assert serve.main(["load", "-q", "--db", postgres_url, "--table", f"clean_{table}",
                           str(world["clean"] / f"{table}.csv")]) == 0
        _write_text_table(database, f"text_clean_{table}", (world["clean"] / f"{table}.csv").read_bytes())
    return postgres_url, database


@pytest.mark.parametrize("name", CASES)
def test_every_case_through_postgresql_reads_or_is_one_line(world, store, postgres, tmp_path, capsys, name):
    url, database = postgres
    case, number = world["cases"][name], CASES.index(name)
    paths = case.write(tmp_path / "case", world["clean"])
    # As `lead-serve load` puts an export in the database: it reads the file as `score` does, or refuses it.
    loaded = {table: f"clean_{table}" for table in TABLES}
    for table in case.files:
        loaded[table] = f"case{number}_{table}"
        code = serve.main(["load", "-q", "--db", url, "--table", loaded[table], str(paths[table])])
        if code != 0:
            assert code == 2
            _assert_one_line(capsys.readouterr(), case.message or r".")
            break
    else:
        _score_from(url, loaded, tmp_path / "loaded.parquet", case, capsys)
    # As a CRM database holds such an export: every cell text.
    text = {table: f"text_clean_{table}" for table in TABLES}
    for table, content in case.files.items():
        text[table] = f"text{number}_{table}"
        _write_text_table(database, text[table], content)
    _score_from(url, text, tmp_path / "text.parquet", case, capsys)


def _score_from(url, tables, out, case, capsys):
    capsys.readouterr()
    code = serve.main(["score", "--model", MODEL, "--db", url, *(f"--{t}={tables[t]}" for t in TABLES), "--as-of",
                       AS_OF, "--out", str(out), "--no-reasons", "--no-monitoring", "--allow-stale", *case.args])
    assert_reads_or_is_one_line(code, capsys.readouterr(), out)


def _write_text_table(database, name, content: bytes) -> None:
    # PostgreSQL holds no NUL character in a name or a text value: a UTF-16 or binary file loses them.
    frame = _as_text_table(content)
    frame = frame.rename(columns=lambda c: c.replace("\x00", "")).replace("\x00", "", regex=True)
    with database.write_table(name) as writer:
        writer.write(frame)
