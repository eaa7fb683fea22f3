"""The bad-input corpus through ``spark-score`` on real local Spark: every case reads or stops with one line and exit 2,
never a traceback (anything but a return code fails the test); nothing is written when it stops."""

from bad_inputs import TABLES
from test_bad_inputs import CASES, _as_text_table, assert_reads_or_is_one_line
from test_bad_inputs_routes import AS_OF, MODEL, store, world  # noqa: F401 - the same corpus, model

import serve


def test_every_case_through_spark_score_reads_or_is_one_line(world, store, spark, tmp_path, capsys):
    # One test over all cases, so the session's start-up is paid once. Each table as Parquet of text columns,
    # as `pd.read_csv(...).to_parquet(...)` (what spark-score's refusal of a CSV suggests) leaves dates.
    clean = {table: _text_parquet((world["clean"] / f"{table}.csv").read_bytes(), tmp_path / "clean" / table)
             for table in TABLES}
    outcomes = {}
    for number, name in enumerate(CASES):
        case = world["cases"][name]
        sources = {table: _text_parquet(case.files[table], tmp_path / f"case{number}" / table)
                   if table in case.files else clean[table] for table in TABLES}
        out = tmp_path / f"scores{number}.parquet"
        capsys.readouterr()
        code = serve.main(["spark-score", "--master", "local[2]", "--model", MODEL,
                           *(f"--{t}={sources[t]}" for t in TABLES), "--as-of", AS_OF, "--out", str(out),
                           "--no-reasons", "--allow-stale", "--buckets", "1", *case.args])
        assert_reads_or_is_one_line(code, capsys.readouterr(), out, name)
        outcomes[name] = code
    assert set(outcomes.values()) == {0, 2}, outcomes  # some cases read, others stop


def _text_parquet(content: bytes, folder) -> str:
    folder.mkdir(parents=True)
    path = folder / "table.parquet"
    _as_text_table(content).astype("string").to_parquet(path, index=False)
    return str(path)
