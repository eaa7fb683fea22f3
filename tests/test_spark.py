"""Scoring on a real local Spark (local[2]) gives the pandas path's probabilities and tiers on the same data."""

import os
import re
import shutil
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

import serve
from models.batch import score_lead_base
from training.pipeline import TrainingResult
from training.tracking import log_training_run, spark_model_udf, use_default_store

AS_OF = pd.Timestamp("2025-10-01")


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        message = "no Java runtime for Spark (apt-get install openjdk-17-jre-headless)"
        if os.environ.get("LEAD_SCORING_CI") == "1":
            pytest.fail(f"LEAD_SCORING_CI=1 and {message}")
        pytest.skip(message)
    from models.spark import spark_session

    session = spark_session("local[2]", app_name="lead-scoring-tests",
                            config={"spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("warehouse"))})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def crm_and_model(small_models, tmp_path_factory):
    """The small CRM as Parquet files, and the LightGBM bundle registered in a throw-away MLflow store."""
    folder = tmp_path_factory.mktemp("spark-crm")
    crm = small_models["crm"]
    for name in ("leads", "events", "deals"):
        # Spark reads microsecond timestamps, not pandas' nanoseconds: both paths read these same files.
        table = getattr(crm, name)
        table = table.assign(**{column: table[column].dt.floor("us") for column in table.columns
                                if pd.api.types.is_datetime64_any_dtype(table[column])})
        table.to_parquet(folder / f"{name}.parquet", index=False, coerce_timestamps="us")
    bundle = small_models["lightgbm"]
    result = TrainingResult(bundle=bundle, params={"model": "lightgbm"}, metrics={}, tables={}, test=None)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        use_default_store()  # from the variable: an earlier test may have set another store in this process
        log_training_run(result, model_name="spark-model")
    # The pandas path, the reference: every lead open at AS_OF, no reasons.
    started = time.perf_counter()
    score_lead_base(bundle, pd.read_parquet(folder / "leads.parquet"), folder / "events.parquet",
                    deals=pd.read_parquet(folder / "deals.parquet"), as_of=AS_OF,
                    out=folder / "pandas.parquet", explain=False)
    print(f"pandas path: {time.perf_counter() - started:.2f} s")
    return folder, uri, bundle, pd.read_parquet(folder / "pandas.parquet")


def assert_same_scores(spark_scores: pd.DataFrame, pandas_scores: pd.DataFrame):
    left = spark_scores.sort_values("lead_id").reset_index(drop=True)
    right = pandas_scores.sort_values("lead_id").reset_index(drop=True)
    assert left["lead_id"].tolist() == right["lead_id"].tolist()
    np.testing.assert_allclose(left["probability"], right["probability"], rtol=0, atol=1e-9)
    assert left["tier"].tolist() == right["tier"].tolist()
    assert left["score"].tolist() == right["score"].tolist()
    assert (left["as_of"] == AS_OF).all()


def test_spark_scoring_from_parquet_equals_the_pandas_path(spark, crm_and_model, monkeypatch, capsys):
    folder, uri, bundle, expected = crm_and_model
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    out = folder / "spark_scores.parquet"
    started = time.perf_counter()
    assert serve.main(["spark-score", "--model", "models:/spark-model@champion", "--master", "local[2]",
                       "--leads", str(folder / "leads.parquet"), "--events", str(folder / "events.parquet"),
                       "--deals", str(folder / "deals.parquet"), "--as-of", str(AS_OF), "--out", str(out)]) == 0
    seconds = time.perf_counter() - started
    report = capsys.readouterr().out
    scores = pd.read_parquet(out)
    assert list(scores.columns) == ["lead_id", "probability", "score", "tier", "model_version", "as_of", "scored_at"]
    assert_same_scores(scores, expected)
    assert (scores["model_version"] == "1").all()
    assert f"wrote {len(expected):,} scores" in report
    for tier in ("SQL", "MQL", "nurture"):
        assert re.search(rf"{tier}\s+{(expected['tier'] == tier).sum():,}\n", report), report
    assert not list(folder.glob("spark_scores.parquet.staging-*"))
    print(f"spark local[2], {len(expected):,} open leads: {seconds:.2f} s")


def test_spark_tables_in_and_out(spark, crm_and_model, monkeypatch):
    folder, uri, _, expected = crm_and_model
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in ("leads", "events", "deals"):
        spark.read.parquet(str(folder / f"{name}.parquet")).write.mode("overwrite").saveAsTable(f"crm_{name}")
    assert serve.main(["spark-score", "--model", "models:/spark-model@champion", "--leads", "crm_leads",
                       "--events", "crm_events", "--deals", "crm_deals", "--as-of", str(AS_OF),
                       "--out", "lead_scores"]) == 0
    assert_same_scores(spark.table("lead_scores").toPandas(), expected)


def test_the_model_udf_takes_lead_rows_with_nested_events(spark, crm_and_model, monkeypatch):
    """A UDF needs nothing else: leads joined with their collected events, scored by the model alone."""
    from pyspark.sql import functions as F

    folder, uri, _, expected = crm_and_model
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    leads = spark.read.parquet(str(folder / "leads.parquet"))
    events = spark.read.parquet(str(folder / "events.parquet"))
    nested = events.groupBy("lead_id").agg(F.collect_list(F.struct("occurred_at", "event_type")).alias("events"))
    rows = leads.join(nested, "lead_id", "left").where(F.col("lead_id").isin(expected["lead_id"].head(300).tolist()))
    use_default_store()
    udf = spark_model_udf(spark, "models:/spark-model@champion", params={"as_of": str(AS_OF)})
    scored = rows.select("lead_id", udf(F.struct(*rows.columns)).alias("s")).select(
        "lead_id", "s.probability", "s.score", "s.tier").toPandas()
    reference = expected[expected["lead_id"].isin(scored["lead_id"])]
    assert len(scored) == 300
    left = scored.sort_values("lead_id").reset_index(drop=True)
    right = reference.sort_values("lead_id").reset_index(drop=True)
    np.testing.assert_allclose(left["probability"], right["probability"], rtol=0, atol=1e-9)
    assert left["tier"].tolist() == right["tier"].tolist()


def test_bad_input_on_spark_is_refused_and_the_old_scores_stay(spark, crm_and_model, monkeypatch, tmp_path, capsys):
    folder, uri, _, _ = crm_and_model
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    leads = pd.read_parquet(folder / "leads.parquet")
    pd.concat([leads, leads.tail(1)]).to_parquet(tmp_path / "leads.parquet", index=False)
    out = tmp_path / "scores.parquet"
    pd.DataFrame({"lead_id": [1]}).to_parquet(tmp_path / "old.parquet")
    spark.read.parquet(str(tmp_path / "old.parquet")).write.parquet(str(out))
    code = serve.main(["spark-score", "--model", "models:/spark-model@champion", "--leads", str(tmp_path / "leads.parquet"),
                       "--events", str(folder / "events.parquet"), "--as-of", str(AS_OF), "--out", str(out)])
    assert code == 2
    assert "column 'lead_id' must hold unique values" in capsys.readouterr().err
    assert pd.read_parquet(out)["lead_id"].tolist() == [1]  # the previous output is untouched
    # An event of a lead the leads table lacks is refused too, whichever bucket it hashes to.
    events = pd.read_parquet(folder / "events.parquet")
    stray = events.head(1).assign(lead_id=-5)
    pd.concat([events, stray]).to_parquet(tmp_path / "events.parquet", index=False, coerce_timestamps="us")
    code = serve.main(["spark-score", "--model", "models:/spark-model@champion", "--leads", str(folder / "leads.parquet"),
                       "--events", str(tmp_path / "events.parquet"), "--as-of", str(AS_OF), "--out", str(out)])
    assert code == 2
    error = capsys.readouterr().err
    assert re.search(r"column 'lead_id' must hold ids present in the leads table.*-5", error, re.DOTALL), error
    assert pd.read_parquet(out)["lead_id"].tolist() == [1]
