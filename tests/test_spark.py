"""Scoring on a real local Spark (local[2]) gives the pandas path's output rows on the same data.

Probabilities, tiers, fit / engagement sub-scores and reasons; from the contract's tables and from
a company's own export read through its project config.
"""

import re
import time

import numpy as np
import pandas as pd
import pytest

import serve
from scoring.batch import SCORE_COLUMNS, score_lead_base
from training.pipeline import TrainingResult
from registry.loading import spark_model_udf
from registry.runs import log_training_run
from registry.store import use_default_store

AS_OF = pd.Timestamp("2025-10-01")


@pytest.fixture(scope="module")
def crm_and_model(small_models, tmp_path_factory):
    """The small CRM as Parquet files, and the LightGBM bundle registered in a throw-away MLflow store."""
    folder = tmp_path_factory.mktemp("spark-crm")
    crm = small_models["crm"]
    for name in ("leads", "events", "deals"):
        # Written as pandas writes them, in nanoseconds (which Spark alone refuses: spark-score reads them as longs
        # and makes microseconds of them); the times are whole microseconds so both paths read the same values.
        table = getattr(crm, name)
        table = table.assign(**{column: table[column].dt.floor("us") for column in table.columns
                                if pd.api.types.is_datetime64_any_dtype(table[column])})
        table.to_parquet(folder / f"{name}.parquet", index=False)
    bundle = small_models["lightgbm"]
    result = TrainingResult(bundle=bundle, params={"model": "lightgbm"}, metrics={}, tables={}, test=None)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        use_default_store()  # from the variable: an earlier test may have set another store in this process
        log_training_run(result, model_name="spark-model")
    # The pandas path, the reference: every lead open at AS_OF, with sub-scores and reasons.
    started = time.perf_counter()
    score_lead_base(bundle, pd.read_parquet(folder / "leads.parquet"), folder / "events.parquet",
                    deals=pd.read_parquet(folder / "deals.parquet"), as_of=AS_OF,
                    out=folder / "pandas.parquet", model_version="1")
    print(f"pandas path: {time.perf_counter() - started:.2f} s")
    return folder, uri, bundle, pd.read_parquet(folder / "pandas.parquet")


def assert_same_scores(spark_scores: pd.DataFrame, pandas_scores: pd.DataFrame, *, as_of=AS_OF, atol=1e-12):
    """Row for row the same leads, probabilities, scores and tiers; and sub-scores and reasons when Spark has them."""
    left = spark_scores.sort_values("lead_id").reset_index(drop=True)
    right = pandas_scores.sort_values("lead_id").reset_index(drop=True)
    assert len(left) > 0
    assert left["lead_id"].tolist() == right["lead_id"].tolist()
    np.testing.assert_allclose(left["probability"], right["probability"], rtol=0, atol=atol)
    assert left["tier"].tolist() == right["tier"].tolist()
    assert left["score"].tolist() == right["score"].tolist()
    assert (pd.to_datetime(left["as_of"], utc=True) == pd.Timestamp(as_of, tz="UTC")).all()  # naive toPandas is UTC
    if "fit_score" in left.columns:
        for column in ("fit_score", "engagement_score", "positive_reason_1", "positive_reason_2",
                       "positive_reason_3", "negative_reason_1", "negative_reason_2", "negative_reason_3",
                       "model_version"):
            assert left[column].tolist() == right[column].tolist(), column
        assert left["positive_reason_1"].notna().mean() > 0.5  # reasons written, not columns of nothing


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
    assert list(scores.columns) == list(SCORE_COLUMNS)  # reasons by default, as score writes them
    assert_same_scores(scores, expected)
    assert (scores["model_version"] == "1").all()
    assert f"wrote {len(expected):,} scores" in report
    for tier in ("SQL", "MQL", "nurture"):
        assert re.search(rf"{tier}\s+{(expected['tier'] == tier).sum():,}\n", report), report
    assert not list(folder.glob("spark_scores.parquet.staging-*"))
    print(f"spark local[2], {len(expected):,} open leads: {seconds:.2f} s")


def test_spark_tables_in_and_out(spark, crm_and_model, monkeypatch):
    folder, uri, bundle, expected = crm_and_model
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    from scoring.spark import read_source

    for name in ("leads", "events", "deals"):  # read as spark-score reads Parquet: nanoseconds made microseconds
        read_source(spark, str(folder / f"{name}.parquet")).write.mode("overwrite").saveAsTable(f"crm_{name}")
    # --no-reasons: probabilities scored in each bucket's call, as score --no-reasons scores them.
    assert serve.main(["spark-score", "--model", "models:/spark-model@champion", "--leads", "crm_leads",
                       "--events", "crm_events", "--deals", "crm_deals", "--as-of", str(AS_OF),
                       "--out", "lead_scores", "--no-reasons"]) == 0
    scores = spark.table("lead_scores").toPandas()
    assert list(scores.columns) == ["lead_id", "probability", "score", "tier", "model_version", "as_of", "scored_at"]
    assert_same_scores(scores, expected)
    # A notebook's route: feature rows on Spark scored by the logged model as a Spark UDF (predict_proba).
    from scoring.spark_features import build_features_on_spark
    from scoring.spark_scores import score_features_on_spark

    features = build_features_on_spark(*(spark.table(f"crm_{name}") for name in ("leads", "events")), bundle.spec,
                                       as_of=AS_OF, deals=spark.table("crm_deals"))
    udf = spark_model_udf(spark, "models:/spark-model@champion")
    assert_same_scores(score_features_on_spark(features, udf, bundle.spec.feature_names).toPandas(), expected,
                       atol=1e-9)


def test_the_model_udf_takes_lead_rows_with_nested_events(spark, crm_and_model, monkeypatch):
    """A UDF needs nothing else: leads joined with their collected events, scored by the model alone."""
    from pyspark.sql import functions as F

    folder, uri, _, expected = crm_and_model
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    from scoring.spark import read_source

    leads, events = (read_source(spark, str(folder / f"{name}.parquet")) for name in ("leads", "events"))
    nested = events.groupBy("lead_id").agg(F.collect_list(F.struct("occurred_at", "event_type")).alias("events"))
    # The files' ids are integers; the output shape's are text.
    rows = leads.join(nested, "lead_id", "left").where(
        F.col("lead_id").isin(expected["lead_id"].head(300).astype("int64").tolist()))
    use_default_store()
    udf = spark_model_udf(spark, "models:/spark-model@champion", params={"as_of": str(AS_OF)})
    scored = rows.select("lead_id", udf(F.struct(*rows.columns)).alias("s")).select(
        "lead_id", "s.probability", "s.score", "s.tier").toPandas().astype({"lead_id": str})
    reference = expected[expected["lead_id"].isin(scored["lead_id"])]
    assert len(scored) == 300
    left = scored.sort_values("lead_id").reset_index(drop=True)
    right = reference.sort_values("lead_id").reset_index(drop=True)
    np.testing.assert_allclose(left["probability"], right["probability"], rtol=0, atol=1e-9)
    assert left["tier"].tolist() == right["tier"].tolist()


def test_stale_data_is_refused_on_spark_as_score_refuses_it(spark, crm_and_model, monkeypatch, tmp_path, capsys):
    """Data ending long before --as-of stops spark-score with score's own message; --allow-stale scores anyway."""
    folder, uri, _, _ = crm_and_model
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # Independently: the newest lead creation, event or deal closing of the three files.
    end = max(pd.read_parquet(folder / "leads.parquet")["created_at"].max(),
              pd.read_parquet(folder / "events.parquet")["occurred_at"].max(),
              pd.read_parquet(folder / "deals.parquet")["closed_at"].max())
    late = end + pd.Timedelta(days=60)  # the model's horizon is 90 days: data older than 22.5 days is stale
    tables = ["--leads", str(folder / "leads.parquet"), "--events", str(folder / "events.parquet"),
              "--deals", str(folder / "deals.parquet"), "--as-of", str(late)]
    out = tmp_path / "stale.parquet"
    assert serve.main(["spark-score", "--model", "models:/spark-model@champion", *tables, "--no-reasons",
                       "--out", str(out)]) == 2
    refused = capsys.readouterr().err
    assert f"ends at {end}, 60 days before as_of {late}" in refused
    assert f"--as-of {end.isoformat()}" in refused
    assert not out.exists() and not list(tmp_path.glob("stale.parquet.staging-*"))
    assert serve.main(["score", "--model", "models:/spark-model@champion", *tables, "--no-monitoring",
                       "--out", str(tmp_path / "pandas.parquet")]) == 2
    def errors(text):  # PySpark may warn about pandas on its first import: the refusals themselves must match
        return [line for line in text.splitlines() if line.startswith("error:")]

    assert errors(capsys.readouterr().err) == errors(refused)  # the pandas path's words, to the letter
    assert serve.main(["spark-score", "--model", "models:/spark-model@champion", *tables, "--no-reasons",
                       "--allow-stale", "--out", str(out)]) == 0
    scores = pd.read_parquet(out)
    assert len(scores) > 0 and (scores["as_of"] == pd.Timestamp(late, tz="UTC")).all()


def test_the_data_end_counts_a_bucket_without_open_leads(spark, crm_and_model):
    """The newest time may be a closed lead's deal alone in its bucket: it still dates the data.

    The open lead's bucket holds no deal at all: its lead is open, not refused as an empty deals table.
    """
    from pyspark.sql import functions as F

    from scoring.spark_features import build_features_on_spark, split_data_end
    from scoring.spark_scores import score_lead_base_on_spark

    folder, _, bundle, _ = crm_and_model
    leads, events, deals = (pd.read_parquet(folder / f"{name}.parquet") for name in ("leads", "events", "deals"))
    buckets = 8
    ids = leads["lead_id"].to_numpy()
    bucket_of = dict(spark.createDataFrame(pd.DataFrame({"lead_id": ids})).select(
        "lead_id", F.pmod(F.xxhash64(F.col("lead_id").cast("string")), F.lit(buckets)).alias("bucket")).collect())
    closed = deals.sort_values("closed_at").iloc[len(deals) // 2]  # a lead closed mid-way through the data
    as_of = closed["closed_at"] + pd.Timedelta(days=1)
    never_closed = leads[~leads["lead_id"].isin(deals["lead_id"]) & (leads["created_at"] < closed["closed_at"])]
    open_id = next(i for i in never_closed["lead_id"] if bucket_of[i] != bucket_of[closed["lead_id"]])
    chosen = [open_id, closed["lead_id"]]
    leads = leads[leads["lead_id"].isin(chosen)]
    events = events[events["lead_id"].isin(chosen) & (events["occurred_at"] < closed["closed_at"])]
    deals = deals[deals["lead_id"].eq(closed["lead_id"])]
    tables = [spark.createDataFrame(table) for table in (leads, events)]
    features, end = split_data_end(build_features_on_spark(
        *tables, bundle.spec, as_of=as_of, deals=spark.createDataFrame(deals), buckets=buckets, with_data_end=True))
    assert end == closed["closed_at"]
    assert features.select("lead_id").toPandas()["lead_id"].tolist() == [open_id]
    assert "_data_end" not in features.columns
    # Scored in the bucket's own call: the bucket without an open lead still carries its data end.
    scores, end = split_data_end(score_lead_base_on_spark(
        *tables, bundle, as_of=as_of, deals=spark.createDataFrame(deals), buckets=buckets, with_data_end=True))
    assert end == closed["closed_at"]
    assert scores.columns == list(SCORE_COLUMNS)
    assert scores.select("lead_id").toPandas()["lead_id"].tolist() == [str(open_id)]
    scores = score_lead_base_on_spark(*tables, bundle, as_of=as_of, deals=spark.createDataFrame(deals),
                                      buckets=buckets, explain=False)  # no data end: the closed lead's bucket is empty
    assert scores.select("lead_id").toPandas()["lead_id"].tolist() == [str(open_id)]


def test_each_bucket_is_built_by_a_task_of_its_own(spark, crm_and_model):
    """Bucket numbers hashed as they are collide (0..9 fill 7 of 10 partitions): each bucket gets its own task."""
    from pyspark.sql import functions as F

    from scoring.spark_features import build_features_on_spark

    folder, _, bundle, expected = crm_and_model
    leads, events, deals = (spark.createDataFrame(pd.read_parquet(folder / f"{name}.parquet"))
                            for name in ("leads", "events", "deals"))
    buckets = 10
    features = build_features_on_spark(leads, events, bundle.spec, as_of=AS_OF, deals=deals, buckets=buckets)
    # Independently: each open lead's bucket, as the docs define it (a hash of the id as text).
    placed = features.select("lead_id", F.spark_partition_id().alias("task"),
                             F.pmod(F.xxhash64(F.col("lead_id").cast("string")), F.lit(buckets)).alias("bucket"))
    tasks_of_bucket = placed.groupBy("bucket").agg(F.countDistinct("task").alias("n")).collect()
    buckets_of_task = placed.groupBy("task").agg(F.countDistinct("bucket").alias("n")).collect()
    assert len(tasks_of_bucket) == len(buckets_of_task) == buckets  # the small CRM has open leads in every bucket
    assert {row["n"] for row in tasks_of_bucket} == {row["n"] for row in buckets_of_task} == {1}
    assert placed.count() == len(expected)


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
    # An infinity in a typed float column is counted over the whole table on the driver, before any bucket,
    # as score counts it (a bucket would count its own and number its rows from its own first).
    infinite = leads.assign(company_size=leads["company_size"].astype(float))
    infinite.loc[[3, len(leads) - 1], "company_size"] = [np.inf, -np.inf]
    infinite.to_parquet(tmp_path / "infinite.parquet", index=False)
    code = serve.main(["spark-score", "--model", "models:/spark-model@champion", "--leads",
                       str(tmp_path / "infinite.parquet"), "--events", str(folder / "events.parquet"),
                       "--as-of", str(AS_OF), "--out", str(out)])
    error = capsys.readouterr().err
    ids = infinite["lead_id"].iloc[[3, len(leads) - 1]].tolist()
    assert code == 2 and "column 'company_size' must hold finite numbers; 2 infinite values" in error, error
    assert all(f"with lead_id {lead_id}: company_size=" in error for lead_id in ids), error
    assert pd.read_parquet(out)["lead_id"].tolist() == [1]


EXPORT_CONFIG = """
[data]
leads = "accounts.parquet"

[columns]
id = "AccountRef"
created_at = "OpenedAt"

[roles]
categorical = ["Segment"]
numeric = ["Staff"]
pii = ["Phone"]

[events]
file = "touchpoints.parquet"
id = "Account"
timestamp = "When"
type = ["Step", "Phase"]
type_separator = "+"
types = ["Brochure+done", "Quote+done", "Quote+open", "Call+done"]

[events.words]
"Quote+done" = "completed a quote"

[deals]
file = "outcomes.parquet"
id = "Account"
closed_at = "DecidedAt"
outcome = "Result"
won = ["Signed"]
lost = ["Walked away"]
"""


def test_an_export_bucket_whose_leads_did_nothing_is_mapped_not_refused(tmp_path):
    """A bucket's leads may have no event or closed no deal: features as the whole export gives them, no error.

    Plain pandas: the function each Spark bucket runs, fed a bucket's rows as ``cogroup`` would.
    """
    from crm.config import load_config
    from crm.export import load_tables
    from features.build import build_features
    from features.freshness import data_end
    from features.snapshots import open_leads
    from scoring.spark_features import _BUCKET, _KIND, _PREFIXES, DATA_END_COLUMN, _features_of_export_bucket

    config = load_config(make_own_export(tmp_path))
    spec = config.feature_spec()
    leads, _, events, deals = load_tables(config)
    raw = {name: pd.read_parquet(tmp_path / f"{name}.parquet") for name in ("accounts", "touchpoints", "outcomes")}
    columns = ["lead_id", _KIND, *(_PREFIXES["event"] + c for c in raw["touchpoints"].columns),
               *(_PREFIXES["deal"] + c for c in raw["outcomes"].columns)]
    as_of = pd.Timestamp("2025-09-10 12:00")
    names = ["lead_id", "as_of", *spec.feature_names, DATA_END_COLUMN]
    no_deal = ~leads["lead_id"].isin(deals["lead_id"])
    buckets = {"no events, no deals": leads.loc[no_deal & ~leads["lead_id"].isin(events["lead_id"]), "lead_id"][:3],
               "events, no deals": leads.loc[no_deal & leads["lead_id"].isin(events["lead_id"]), "lead_id"][:3]}
    for what, ids in buckets.items():
        assert len(ids) == 3, what
        touches = raw["touchpoints"][raw["touchpoints"]["Account"].isin(ids)]
        history = touches.add_prefix(_PREFIXES["event"]).assign(lead_id=touches["Account"], **{_KIND: "event"})
        rows = _features_of_export_bucket(
            raw["accounts"][raw["accounts"]["AccountRef"].isin(ids)].assign(**{_BUCKET: 0}),
            history.reindex(columns=columns), config=config, spec=spec, as_of=as_of, now=pd.Timestamp("2026-01-01"),
            names=names, raw_types={"event": dict.fromkeys(raw["touchpoints"].columns, "other"),
                                    "deal": dict.fromkeys(raw["outcomes"].columns, "other")},
            sources={}, date_format=None)
        # Independently: the whole export's features and data end for these leads.
        mine = leads[leads["lead_id"].isin(ids)]
        snapshots = open_leads(mine, deals, as_of)
        expected = build_features(snapshots, leads, events, spec).assign(lead_id=snapshots["lead_id"].to_numpy())
        got = rows.sort_values("lead_id").reset_index(drop=True)
        expected = expected.sort_values("lead_id").reset_index(drop=True)
        assert got["lead_id"].tolist() == expected["lead_id"].tolist() == sorted(ids), what
        pd.testing.assert_frame_equal(got[spec.feature_names].astype(expected[spec.feature_names].dtypes),
                                      expected[spec.feature_names], check_exact=False, rtol=1e-12, obj=what)
        assert (got[DATA_END_COLUMN] == data_end(mine, events[events["lead_id"].isin(ids)])).all(), what


def make_own_export(folder, n: int = 400, seed: int = 11):
    """Accounts, touchpoints (a step and a phase column) and outcomes under the company's own names, as Parquet."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-06-01")
    created = start + pd.to_timedelta(np.sort(rng.uniform(0, 100, n)), unit="D")
    keen = rng.random(n) < 0.4
    accounts = pd.DataFrame({"AccountRef": [f"AC{i:04d}" for i in range(n)], "OpenedAt": created,
                             "Segment": rng.choice(["SMB", "Mid", "Ent", None], n),
                             "Staff": np.where(rng.random(n) < 0.1, np.nan, rng.integers(2, 5000, n).astype(float)),
                             "Phone": [f"+44 20 7946 {i:04d}" for i in range(n)]})
    touches, outcomes = [], []
    for i in range(n):
        at = created[i]
        for _ in range(int(rng.integers(0, 6))):
            at = at + pd.Timedelta(hours=float(rng.uniform(1, 200)))
            step = rng.choice(["Brochure", "Quote", "Call", "Fax"], p=[0.4, 0.3, 0.25, 0.05])
            phase = None if step == "Fax" else ("done" if keen[i] or rng.random() < 0.3 else "open")
            touches.append((f"AC{i:04d}", at, step, phase))
        if rng.random() < 0.5:
            outcomes.append((f"AC{i:04d}", at + pd.Timedelta(days=float(rng.uniform(1, 40))),
                             "Signed" if rng.random() < (0.6 if keen[i] else 0.15) else "Walked away"))
    tables = {"accounts": accounts,
              "touchpoints": pd.DataFrame(touches, columns=["Account", "When", "Step", "Phase"]),
              "outcomes": pd.DataFrame(outcomes, columns=["Account", "DecidedAt", "Result"])}
    for name, table in tables.items():
        table = table.assign(**{column: table[column].dt.floor("us") for column in table.columns
                                if pd.api.types.is_datetime64_any_dtype(table[column])})
        table.to_parquet(folder / f"{name}.parquet", index=False, coerce_timestamps="us")
    (folder / "config.toml").write_text(EXPORT_CONFIG)
    return folder / "config.toml"


def test_own_export_through_its_config_on_spark_equals_score_config(spark, tmp_path, monkeypatch, capsys):
    """spark-score --config maps renamed columns, a two-column event type and won/lost values as score --config."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    from crm.config import load_config
    from crm.export import load_tables
    from features.build import build_features
    from features.snapshots import as_of_schedule, build_snapshots
    from models.bundle import ModelBundle
    from models.estimators import make_logistic_regression
    from models.tiers import TierThresholds

    config_path = make_own_export(tmp_path)
    config = load_config(config_path)
    leads, _, events, deals = load_tables(config)
    assert set(events["event_type"].dropna()) == {"Brochure+done", "Brochure+open", "Quote+done", "Quote+open",
                                                  "Call+done", "Call+open", "Fax"}
    spec = config.feature_spec()
    snapshots = build_snapshots(leads, deals, horizon_days=30, as_of_dates=as_of_schedule(
        pd.Timestamp("2025-06-20"), pd.Timestamp("2025-09-01"), every_days=10), data_end=pd.Timestamp("2025-10-20"))
    features = build_features(snapshots, leads, events, spec)
    labels = snapshots["label"].to_numpy()
    half = np.arange(len(features)) % 2 == 0
    fitted = make_logistic_regression(spec).fit(features[half], labels[half])
    calibrated = CalibratedClassifierCV(FrozenEstimator(fitted), method="sigmoid", ensemble=False).fit(
        features[~half], labels[~half])
    bundle = ModelBundle(spec=spec, model=calibrated, thresholds=TierThresholds(mql=0.15, sql=0.4),
                         metadata={"params": {"model": "logistic", "horizon_days": 30}})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    use_default_store()
    log_training_run(TrainingResult(bundle=bundle, params={"model": "logistic"}, metrics={}, tables={}, test=None),
                     model_name="export-model")
    as_of = pd.Timestamp("2025-09-10 12:00")
    common = ["--model", "models:/export-model@champion", "--config", str(config_path), "--as-of", str(as_of)]
    assert serve.main(["score", *common, "--out", str(tmp_path / "pandas.parquet"), "--allow-stale",
                       "--no-monitoring"]) == 0
    # More buckets than leads with deals: some buckets hold no deal, or no open lead.
    assert serve.main(["spark-score", *common, "--out", str(tmp_path / "spark.parquet"), "--buckets", "16"]) == 0
    capsys.readouterr()
    expected, scores = pd.read_parquet(tmp_path / "pandas.parquet"), pd.read_parquet(tmp_path / "spark.parquet")
    # Independently: the open leads are those created before as_of without a deal closed before it.
    closed = deals.loc[deals["closed_at"] < as_of, "lead_id"]
    assert sorted(scores["lead_id"]) == sorted(leads.loc[(leads["created_at"] < as_of)
                                                         & ~leads["lead_id"].isin(closed), "lead_id"])
    assert list(scores.columns) == list(SCORE_COLUMNS)
    assert_same_scores(scores, expected, as_of=as_of)
    reasons = " | ".join(scores.filter(like="_reason_").fillna("").to_numpy().ravel())
    assert "completed a quote" in reasons  # the config's own words reach the Spark output

    # A CSV named by the config is refused with the way out, before Spark reads anything.
    pd.read_parquet(tmp_path / "accounts.parquet").to_csv(tmp_path / "accounts.csv", index=False)
    code = serve.main(["spark-score", *common, "--leads", str(tmp_path / "accounts.csv"),
                       "--out", str(tmp_path / "spark.parquet")])
    assert code == 2
    assert "Spark reads Parquet files and folders or Spark tables, not CSV" in capsys.readouterr().err


def test_spark_score_tiers_by_the_saved_tier_policy(spark, crm_and_model, monkeypatch, tmp_path):
    """A policy saved on the version re-tiers the probabilities (--no-reasons) from the next run on."""
    from models.tiers import TierThresholds
    from registry.tier_policy import restore_tier_policy, save_tier_policy

    folder, uri, bundle, expected = crm_and_model
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    use_default_store()
    # Cut-offs that move leads: the median and the 90th percentile of the pandas path's probabilities.
    mql, sql = (float(np.round(np.quantile(expected["probability"], q), 3)) for q in (0.5, 0.9))
    save_tier_policy("spark-model", "1", sql=sql, mql=mql, by="test", reason="re-tier on Spark")
    try:
        out = tmp_path / "policy_scores.parquet"
        assert serve.main(["spark-score", "--model", "models:/spark-model@champion", "--master", "local[2]",
                           "--leads", str(folder / "leads.parquet"), "--events", str(folder / "events.parquet"),
                           "--deals", str(folder / "deals.parquet"), "--as-of", str(AS_OF), "--out", str(out),
                           "--no-reasons"]) == 0
    finally:
        restore_tier_policy("spark-model", "1", entry=0, by="test", reason="back to the trained cut-offs")
    scores = pd.read_parquet(out).sort_values("lead_id").reset_index(drop=True)
    reference = expected.sort_values("lead_id").reset_index(drop=True)
    assert scores["lead_id"].tolist() == reference["lead_id"].tolist()
    wanted = TierThresholds(mql=mql, sql=sql).assign(reference["probability"])
    assert scores["tier"].tolist() == list(wanted)
    assert (scores["tier"] != reference["tier"]).any()  # the policy really moved leads


def test_one_damaged_parquet_file_in_a_folder_is_one_line_before_spark_starts(small_models, tmp_path, capsys,
                                                                               monkeypatch):
    # Before: the job failed late inside the JVM with a traceback. Now the footers are read first.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    leads = tmp_path / "leads"
    leads.mkdir()
    crm = small_models["crm"]
    crm.leads.iloc[:100].to_parquet(leads / "part-0.parquet")
    (leads / "part-1.parquet").write_bytes((leads / "part-0.parquet").read_bytes()[:400])  # cut short
    (leads / "_SUCCESS").write_bytes(b"")  # Spark's marker files are not data
    started = time.perf_counter()
    assert serve.main(["spark-score", "--model", "models:/nothing@champion", "--leads", str(leads),
                       "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert re.search(r"part-1\.parquet: not a readable Parquet file \(.*\)\. Spark would stop on it", errors[0])
    assert time.perf_counter() - started < 10 and not (tmp_path / "out").exists()


def test_score_spark_score_http_and_postgres_give_one_output_shape(spark, crm_and_model, postgres_url, tmp_path,
                                                                  monkeypatch):
    """The same columns, in the same order, with the same types, from the four paths; ids as text, times in UTC.

    Spark reads the pandas-written (nanosecond) Parquet; the ids are integers in the files.
    """
    import csv
    import http.client
    import json

    import pyarrow as pa
    import pyarrow.dataset as ds
    import sqlalchemy

    from scoring.api_contract import accepted_attributes
    from scoring.service import create_app
    from tests.loopback import uvicorn_on_loopback

    folder, uri, bundle, expected = crm_and_model
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    crm = {name: pd.read_parquet(folder / f"{name}.parquet") for name in ("leads", "events", "deals")}
    ids = expected["lead_id"].head(30).astype("int64")  # open at AS_OF
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    for name, table in crm.items():
        table[table["lead_id"].isin(ids)].to_parquet(tiny / f"{name}.parquet", index=False)  # nanoseconds
    assert pd.read_parquet(tiny / "leads.parquet")["lead_id"].dtype == np.int64
    tables = ["--model", "models:/spark-model@champion", "--leads", str(tiny / "leads.parquet"),
              "--events", str(tiny / "events.parquet"), "--deals", str(tiny / "deals.parquet"),
              "--as-of", str(AS_OF), "--allow-stale"]
    reasons = [f"{side}_reason_{k}" for side in ("positive", "negative") for k in (1, 2, 3)]
    names = ["lead_id", "probability", "score", "tier", "fit_score", "engagement_score", *reasons, "model_version",
             "as_of", "scored_at"]
    utc = pa.timestamp("us", tz="UTC")
    arrow = [pa.string(), pa.float64(), pa.int64(), pa.string(), pa.int64(), pa.int64(), *[pa.string()] * 7, utc, utc]

    # score: Parquet (the fixture's run, the same writer) and CSV.
    assert serve.main(["score", *tables, "--no-monitoring", "--out", str(tmp_path / "scores.csv")]) == 0
    schema = ds.dataset(folder / "pandas.parquet").schema
    assert [(field.name, field.type) for field in schema] == list(zip(names, arrow))
    pandas_scores = pd.read_parquet(folder / "pandas.parquet").set_index("lead_id")
    assert pandas_scores.index.is_unique and set(str(i) for i in ids) <= set(pandas_scores.index)
    with open(tmp_path / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == names
    assert rows[0]["as_of"] == "2025-10-01 00:00:00+00:00" and rows[0]["scored_at"].endswith("+00:00")

    # spark-score, a Parquet folder.
    assert serve.main(["spark-score", *tables, "--master", "local[2]", "--out", str(tmp_path / "spark.parquet")]) == 0
    schema = ds.dataset(tmp_path / "spark.parquet", format="parquet", exclude_invalid_files=True).schema
    assert [(field.name, field.type) for field in schema] == list(zip(names, arrow))
    spark_scores = pd.read_parquet(tmp_path / "spark.parquet").set_index("lead_id")
    assert (spark_scores["as_of"] == pd.Timestamp(AS_OF, tz="UTC")).all()

    # The database writer, a PostgreSQL table.
    assert serve.main(["score", *tables, "--no-monitoring", "--out-db", postgres_url, "--out", "shape_scores"]) == 0
    engine = sqlalchemy.create_engine(sqlalchemy.make_url(postgres_url).set(drivername="postgresql+psycopg"))
    with engine.connect() as connection:
        columns = connection.execute(sqlalchemy.text(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'shape_scores' "
            "ORDER BY ordinal_position")).all()
        stored = pd.read_sql("SELECT lead_id, probability, as_of FROM shape_scores", connection).set_index("lead_id")
    engine.dispose()
    sql = {pa.string(): "text", pa.float64(): "double precision", pa.int64(): "bigint", utc: "timestamp with time zone"}
    assert [tuple(column) for column in columns] == [(name, sql[kind]) for name, kind in zip(names, arrow)]

    # The HTTP service on loopback: each result is a row of the same shape (then its reasons in full).
    attributes = [item["name"] for item in accepted_attributes(bundle.spec)]
    leads = crm["leads"].set_index("lead_id").loc[ids.head(3)]
    body = [{"lead_id": int(lead_id), "created_at": lead["created_at"].isoformat() + "Z",
             "attributes": {name: None if pd.isna(lead[name]) else lead[name] for name in attributes},
             "events": [{"occurred_at": event.isoformat() + "Z", "event_type": kind} for event, kind in
                        crm["events"].loc[crm["events"]["lead_id"].eq(lead_id) & crm["events"]["occurred_at"].lt(AS_OF),
                                          ["occurred_at", "event_type"]].itertuples(index=False)]}
            for lead_id, lead in leads.iterrows()]
    with uvicorn_on_loopback(create_app(bundle, {"model_version": "1"})) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", f"/score?as_of={AS_OF.isoformat()}Z", body=json.dumps(body),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
    assert response.status == 200, answer
    python = {pa.string(): str, pa.float64(): float, pa.int64(): int, utc: str}
    for result in answer["results"]:
        assert list(result) == [*names, "reasons"]
        assert [type(result[name]) for name in names] == [python[kind] for kind in arrow]
        assert result["as_of"] == "2025-10-01T00:00:00+00:00" and result["scored_at"].endswith("+00:00")

    # The same leads and numbers on every path, keyed by the same text ids.
    http_scores = pd.DataFrame(answer["results"]).set_index("lead_id")
    csv_scores = pd.read_csv(tmp_path / "scores.csv", dtype={"lead_id": str}).set_index("lead_id")
    for other in (csv_scores, spark_scores, stored, http_scores):
        shared = other.index.intersection(pandas_scores.index)
        assert len(shared) == len(other) > 0
        np.testing.assert_allclose(other.loc[shared, "probability"], pandas_scores.loc[shared, "probability"],
                                   rtol=0, atol=1e-9)
    assert (pd.to_datetime(stored["as_of"], utc=True) == pd.Timestamp(AS_OF, tz="UTC")).all()
    for column in reasons:
        assert http_scores[column].tolist() == pandas_scores.loc[http_scores.index, column].tolist()
