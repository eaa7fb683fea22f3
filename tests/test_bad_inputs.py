"""The bad-input corpus through both CLIs in-process, from files and from a DuckDB database: every case reads right or
stops with one line and exit 2."""

import csv
import io
import os
import re

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest
from bad_inputs import TABLES, clean_tables, corpus, write_clean

import serve
from crm.readers import load_crm
from crm.synthetic import generate_crm
from features.contract import event_relation
from train import main as training_main

AS_OF = "2026-01-01"
MODEL = "models:/lead-conversion@champion"


@pytest.fixture(scope="module")
def world(tmp_path_factory, new_mlflow_store):
    """A clean CSV export, a model trained on it in a throw-away store, and its scores as of the data's end."""
    folder = tmp_path_factory.mktemp("corpus")
    tables = clean_tables(generate_crm(1_200, months=12, seed=4))
    clean = write_clean(tables, folder / "clean")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", new_mlflow_store(folder))
        patch.chdir(folder)
        train = _train(clean)
        assert train["code"] == 0, train["out"]
        scores = folder / "clean_scores.csv"
        assert serve.main(["score", "--model", MODEL, *_tables(clean), "--as-of", AS_OF, "--out", str(scores),
                           "--no-reasons", "--no-monitoring"]) == 0
        yield {"folder": folder, "clean": clean, "tables": tables, "cases": {c.name: c for c in corpus(tables)},
               "snapshots": train["snapshots"], "scores": pd.read_csv(scores, dtype={"lead_id": str})}


@pytest.fixture
def store(world, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{world['folder'] / 'mlflow.db'}")
    monkeypatch.chdir(world["folder"])
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])  # a CLI run earlier may have set another


CASES = [case.name for case in corpus(clean_tables(generate_crm(60, months=3, seed=4)))]
REFUSED = [case.name for case in corpus(clean_tables(generate_crm(60, months=3, seed=4))) if not case.same]
READ_RIGHT = [name for name in CASES if name not in REFUSED]


@pytest.mark.parametrize("name", REFUSED)
def test_refused_by_train_and_score_with_one_line(world, store, tmp_path, capsys, name):
    case = world["cases"][name]
    paths = case.write(tmp_path / "case", world["clean"])
    runs_before = len(mlflow.search_runs(search_all_experiments=True))
    capsys.readouterr()
    assert training_main(["train", *_tables(paths), *case.args]) == 2
    _assert_one_line(capsys.readouterr(), case.message)
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs_before  # nothing logged

    out = tmp_path / "out" / "scores.parquet"
    assert serve.main(["score", "--model", MODEL, *_tables(paths), "--as-of", AS_OF, "--out", str(out),
                       *case.args]) == 2
    _assert_one_line(capsys.readouterr(), case.message)
    assert not out.exists() and not list(out.parent.glob(".*tmp"))


@pytest.mark.parametrize("name", READ_RIGHT)
def test_read_right_by_train_and_score(world, store, tmp_path, name):
    case = world["cases"][name]
    paths = case.write(tmp_path / "case", world["clean"])
    ids = {str(clean): str(written) for clean, written in case.ids.items()}
    # Train's door to the data: the same tables as the clean export, ids exactly as written.
    leads, events, deals = load_crm(paths["leads"], paths["events"], paths["deals"])
    clean_leads, clean_events, clean_deals = load_crm(*(world["clean"] / f"{t}.csv" for t in TABLES))
    expected_ids = clean_leads["lead_id"].astype(str).map(lambda v: ids.get(v, v))
    assert leads["lead_id"].astype(str).tolist() == expected_ids.tolist()
    assert leads["created_at"].tolist() == clean_leads["created_at"].tolist()
    for column in ("company_size", "annual_revenue"):
        np.testing.assert_allclose(leads[column].to_numpy(float), clean_leads[column].to_numpy(float), rtol=1e-12)
    assert deals["closed_at"].tolist() == clean_deals["closed_at"].tolist()
    assert _events(events)["occurred_at"].tolist() == _events(clean_events)["occurred_at"].tolist()

    out = tmp_path / "scores.csv"
    # Monitoring is not what is read here (tests/test_monitoring.py): it is left out to keep the corpus fast.
    assert serve.main(["score", "--model", MODEL, *_tables(paths), "--as-of", AS_OF, "--out", str(out),
                       "--no-reasons", "--no-monitoring", *case.args]) == 0
    scores = pd.read_csv(out, dtype={"lead_id": str})
    clean = world["scores"]
    expected = clean["lead_id"].map(lambda v: ids.get(v, v))
    written = expected.where(~expected.str.startswith(("=", "+", "-", "@")), "'" + expected)  # spreadsheet-safe
    assert scores["lead_id"].tolist() == written.tolist()
    np.testing.assert_allclose(scores["probability"], clean["probability"], atol=1e-12)


@pytest.mark.parametrize("name", ["created_at in epoch seconds", "day-first dates, some day above 12"])
def test_training_on_read_right_dates_takes_the_same_snapshots(world, store, tmp_path, name):
    # Before: epoch seconds read as 1970 built 3.2 million snapshots; day-first read month-first.
    paths = world["cases"][name].write(tmp_path / "case", world["clean"])
    train = _train(paths)
    assert train["code"] == 0 and train["snapshots"] == world["snapshots"]


def test_calendar_digits_train_like_iso_and_the_reading_is_printed_once_and_recorded(world, store, tmp_path, capsys):
    # Before: 20250315093000-style times as epoch milliseconds put every event in 1976 (all "past").
    paths = world["cases"]["occurred_at as YYYYMMDDHHMMSS"].write(tmp_path / "case", world["clean"])
    capsys.readouterr()
    train = _train(paths)
    assert train["code"] == 0 and train["snapshots"] == world["snapshots"]
    line = f"{paths['events']}: occurred_at read as calendar digits YYYYMMDDHHMMSS"
    printed = capsys.readouterr()
    assert (printed.out + printed.err + train["out"]).count(line) == 1
    run = mlflow.search_runs(search_all_experiments=True, order_by=["start_time DESC"], max_results=1).iloc[0]
    assert line in run["tags.input_readings"]


def test_an_ambiguous_date_column_reads_with_the_date_format_flag(world, store, tmp_path, capsys):
    case = world["cases"]["day-first dates, every day 12 or less"]
    paths = case.write(tmp_path / "case", world["clean"])
    leads, _, _ = load_crm(paths["leads"], date_format="%d/%m/%Y %H:%M:%S")
    clean = world["tables"]["leads"].assign(lead_id=lambda t: t["lead_id"].astype(str)).set_index("lead_id")[
        "created_at"]
    assert leads.set_index("lead_id")["created_at"].equals(clean.loc[leads["lead_id"]].astype("datetime64[ns]"))
    out = tmp_path / "scores.csv"
    assert serve.main(["score", "--model", MODEL, *_tables(paths), "--as-of", AS_OF, "--out", str(out),
                       "--no-reasons", "--no-monitoring", "--date-format", "%d/%m/%Y %H:%M:%S"]) == 0


def test_stale_data_is_refused_with_the_as_of_to_use(world, store, tmp_path, capsys):
    out = tmp_path / "scores.parquet"
    assert serve.main(["score", "--model", MODEL, *_tables(world["clean"]), "--as-of", "2026-06-01",
                       "--out", str(out)]) == 2
    _assert_one_line(capsys.readouterr(), r"ends at 2025-12-3\d .*, 15\d days before as_of 2026-06-01.*more than 25% "
                                          r"of the model's 90-day horizon.*--as-of 2025-12-3\dT.*--allow-stale")
    assert not out.exists()
    assert serve.main(["score", "--model", MODEL, *_tables(world["clean"]), "--as-of", "2026-06-01",
                       "--out", str(out), "--no-reasons", "--no-monitoring", "--allow-stale"]) == 0
    assert serve.main(["score", "--model", MODEL, *_tables(world["clean"]), "--as-of", "2026-06-01",
                       "--out", str(out), "--no-reasons", "--no-monitoring", "--stale-after-days", "200"]) == 0


@pytest.mark.parametrize("out, message", [
    ("folder", r"Output .*folder: is a folder; give a file name"),
    ("a_file/scores.csv", r"Output .*a_file/scores\.csv: .*a_file is a file, so nothing can be written under it"),
    ("scores.xlsx", r"expected a \.parquet or \.csv file name"),
])
def test_bad_outputs_are_refused_before_any_work(world, store, tmp_path, capsys, out, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("x")
    # The leads file does not exist: the output must be refused first, before any reading.
    assert serve.main(["score", "--model", MODEL, "--leads", str(tmp_path / "nope.csv"), "--out",
                       str(tmp_path / out)]) == 2
    _assert_one_line(capsys.readouterr(), message)


def test_an_unwritable_output_folder_is_refused_before_any_work(world, store, tmp_path, capsys):
    if os.geteuid() == 0:  # root writes anywhere; a read-only bind is what stops it
        target = "/proc/scores.csv"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "scores.csv")
    assert serve.main(["score", "--model", MODEL, "--leads", str(tmp_path / "nope.csv"), "--out", target]) == 2
    _assert_one_line(capsys.readouterr(), r"Output .*scores\.csv: cannot write in ")


@pytest.mark.parametrize("model, message", [
    ("models:/nope@champion", r"no registered model named 'nope'\. Models in sqlite:.*models:/lead-conversion "
                              r"\(versions 1.*aliases @champion -> \d"),
    ("models:/lead-conversion/99", r"model 'lead-conversion' has no version '99'; versions: 1"),
    ("models:/lead-conversion@gold", r"model 'lead-conversion' has no alias 'gold'; aliases: @champion -> \d"),
    ("no/such/folder", r"--model no/such/folder: no such model folder.*Models in sqlite:"),
])
def test_an_unknown_model_names_the_models_that_exist(world, store, tmp_path, capsys, model, message):
    assert serve.main(["score", "--model", model, *_tables(world["clean"]), "--as-of", AS_OF,
                       "--out", str(tmp_path / "s.csv")]) == 2
    _assert_one_line(capsys.readouterr(), message)
    assert training_main(["compare", "--model", model, *_tables(world["clean"]), "--out", str(tmp_path / "r")]) == 2
    _assert_one_line(capsys.readouterr(), message)


def test_no_store_where_the_user_runs_is_an_error_and_creates_none(world, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert serve.main(["score", *_tables(world["clean"]), "--as-of", AS_OF, "--out", str(tmp_path / "s.csv")]) == 2
    _assert_one_line(capsys.readouterr(), r"no MLflow store at .*mlflow\.db \(nothing was trained from this folder\)")
    assert not (tmp_path / "mlflow.db").exists()


def test_a_local_model_folder_says_where_it_came_from(world, store, tmp_path, capsys):
    version = mlflow.MlflowClient().get_model_version_by_alias("lead-conversion", "champion")
    local = mlflow.artifacts.download_artifacts(version.source, dst_path=str(tmp_path / "model"))
    out = tmp_path / "s.csv"
    assert serve.main(["score", "--model", local, *_tables(world["clean"]), "--as-of", AS_OF, "--out", str(out),
                       "--no-reasons", "--no-monitoring"]) == 0
    page = open(os.path.join(os.path.dirname(__file__), "..", "docs", "data-scientist", "logged-model.md")).read()
    assert "from the local folder" in capsys.readouterr().err and "a model file is code" in page.replace("**", "").lower()


def test_a_missing_rules_file_is_one_line(world, store, tmp_path, capsys):
    assert training_main(["compare", *_tables(world["clean"]), "--rules", str(tmp_path / "nope.toml"),
                          "--out", str(tmp_path / "r")]) == 2
    _assert_one_line(capsys.readouterr(), r"nope\.toml: No such file or directory")


def test_a_missing_input_file_is_one_line(world, store, tmp_path, capsys):
    assert training_main(["train", "--leads", str(tmp_path / "nope.csv"), "--events", "x.csv", "--deals", "y.csv"]) == 2
    _assert_one_line(capsys.readouterr(), r"nope\.csv: no such file")


@pytest.mark.parametrize("name", CASES)
def test_every_case_through_a_duckdb_database_reads_right_or_is_one_line(world, store, tmp_path, capsys, name):
    # The same exports as a database holds them: every cell text, as written (the bytes decoded as Latin-1
    # when they are not UTF-8). Scoring from the database reads each case right or stops with one line.
    case = world["cases"][name]
    paths = case.write(tmp_path / "case", world["clean"])
    database = tmp_path / "crm.duckdb"
    with duckdb.connect(str(database)) as con:
        for table, path in paths.items():
            con.register("frame", _as_text_table(path.read_bytes()))
            con.execute(f"CREATE TABLE crm_{table} AS SELECT * FROM frame")
            con.unregister("frame")
    out = tmp_path / "scores.parquet"
    capsys.readouterr()
    code = serve.main(["score", "--model", MODEL, "--db", str(database), "--leads", "crm_leads", "--events",
                       "crm_events", "--deals", "crm_deals", "--as-of", AS_OF, "--out", str(out), "--no-reasons",
                       "--no-monitoring", *case.args])
    assert_reads_or_is_one_line(code, capsys.readouterr(), out)


def assert_reads_or_is_one_line(code: int, captured, out, case: str = "") -> None:
    """A case through a route scored (rows written) or stopped with one line, exit 2 and nothing written."""
    assert "Traceback" not in captured.err, (case, captured.err)
    if code == 0:
        assert len(pd.read_parquet(out)) > 0, case
    else:
        assert code == 2 and not out.exists(), (case, captured.err)
        _assert_one_line(captured, r".")


def _as_text_table(content: bytes) -> pd.DataFrame:
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            frame = pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False, sep=None, engine="python",
                                encoding=encoding)
            return frame.rename(columns=str)
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error):
            continue
    return pd.DataFrame({"raw": [content[:200].decode("latin-1")]})


def _train(paths) -> dict:
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = training_main(["train", *_tables(paths), "--every-days", "30"])
    out = printed.getvalue()
    snapshots = next((line for line in out.splitlines() if line.startswith("snapshots:")), None)
    return {"code": code, "out": out, "snapshots": snapshots}


def _tables(paths) -> list[str]:
    if isinstance(paths, dict):
        return [part for table in TABLES for part in (f"--{table}", str(paths[table]))]
    return [part for table in TABLES for part in (f"--{table}", str(paths / f"{table}.csv"))]


def _events(events) -> pd.DataFrame:
    with duckdb.connect() as con:
        return event_relation(con, events).df().sort_values(["occurred_at", "event_type"], kind="stable")


def _assert_one_line(captured, message: str) -> None:
    import re

    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in captured.err, captured.err
    assert re.search(message, errors[0]), errors[0]
    # No e-mail address in a message; model aliases (@champion, @previous-champion) are not personal data.
    assert not re.search(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", errors[0].split("error: ", 1)[1]), errors[0]
    assert len(errors[0]) <= 820


@pytest.mark.parametrize("name, message", [("team/leads", r"cannot contain '/' or ':'"),
                                           ("a:b", r"cannot contain '/' or ':'"), ("lead@v2", r"cannot contain '@'")])
def test_an_invalid_model_name_is_refused_before_training(world, store, capsys, name, message):
    import time

    started = time.perf_counter()
    runs_before = len(mlflow.search_runs(search_all_experiments=True))
    capsys.readouterr()
    assert training_main(["train", *_tables(world["clean"]), "--model-name", name]) == 2
    _assert_one_line(capsys.readouterr(), rf"--model-name '{re.escape(name)}' cannot be registered in MLflow: .*"
                                          rf"{message}.* Nothing was trained\.")
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs_before
    assert time.perf_counter() - started < 30  # the whole training took minutes before the refusal


def test_compare_writes_formula_ids_spreadsheet_safe(world, store, tmp_path):
    # Before: disagreements.csv held ids such as =HYPERLINK(...) raw, formulas a spreadsheet would run.
    folder = tmp_path / "formulas"
    folder.mkdir()
    for table in TABLES:
        frame = pd.read_csv(world["clean"] / f"{table}.csv", dtype={"lead_id": str})
        frame.assign(lead_id="=" + frame["lead_id"]).to_csv(folder / f"{table}.csv", index=False)
    out = tmp_path / "report"
    assert training_main(["compare", "-q", "--model", MODEL, *_tables(folder), "--out", str(out)]) == 0
    ids = pd.read_csv(out / "disagreements.csv", dtype={"lead_id": str})["lead_id"]
    assert len(ids) > 0 and ids.str.fullmatch(r"'=\d+").all(), ids.head().tolist()
