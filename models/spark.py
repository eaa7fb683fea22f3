"""Batch scoring on Apache Spark: features built per lead partition by the same builders, the model as a UDF.

The lead base is split into buckets by a hash of ``lead_id``; each bucket's leads meet their own
events and deals in one ``cogroup(...).applyInPandas`` call, which validates them and runs
``features.build.build_features`` exactly as the pandas path does. The logged MLflow model then
scores the feature rows as a Spark UDF (``training.tracking.spark_model_udf``). pyspark is an
optional dependency, imported inside the functions.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import sys
import uuid

import pandas as pd

from features.build import build_features
from features.contract import (DataContractError, contract_message, validate_deals, validate_events,
                               validate_leads)
from features.snapshots import open_leads
from features.timing import naive_utc, utc_now

SPARK_SCORE_COLUMNS = ("lead_id", "probability", "score", "tier", "model_version", "as_of", "scored_at")
_BUCKET, _KIND = "_lead_bucket", "_kind"


def spark_session(master: str | None = None, *, app_name: str = "lead-scoring", config: dict | None = None):
    """A SparkSession in UTC whose Python workers run this interpreter (unless PYSPARK_PYTHON says otherwise).

    ``master`` is e.g. ``"local[2]"``; leave it None under ``spark-submit`` or a managed service,
    whose settings then apply. Refuses clearly when no Java runtime is there to start Spark.
    """
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise RuntimeError("Spark needs a Java 17 or 21 runtime: none on PATH and JAVA_HOME is not set. "
                           "Install one (Debian/Ubuntu: apt-get install openjdk-17-jre-headless) or set JAVA_HOME.")
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name).config("spark.sql.session.timeZone", "UTC")
    if master:
        builder = builder.master(master)
        if master.startswith("local"):
            # One machine: a few shuffle partitions, not 200 near-empty tasks; no web UI port.
            builder = builder.config("spark.sql.shuffle.partitions", "4").config("spark.ui.enabled", "false")
    for key, value in (config or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def read_source(spark, source: str):
    """A Parquet file or folder (a name with ``/`` or ending in ``.parquet``) or else a Spark table name."""
    if "/" in source or source.endswith(".parquet") or os.path.exists(source):
        return spark.read.parquet(source)
    return spark.table(source)


def build_features_on_spark(leads, events, spec, *, as_of, deals=None, buckets: int | None = None,
                            leads_per_bucket: int = 100_000):
    """Feature rows (``lead_id``, ``as_of``, ``spec.feature_names``) of every lead open at ``as_of``, on Spark.

    ``leads``, ``events`` and ``deals`` are Spark DataFrames with the data contract's columns. Each
    bucket (``buckets``, default one per ``leads_per_bucket`` leads and at least the default
    parallelism) holds whole leads: a lead's events and deals hash to its bucket, so duplicate ids,
    events or deals of unknown leads and bad timestamps are refused as the pandas path refuses them.
    """
    from pyspark.sql import functions as F

    as_of = naive_utc(pd.Timestamp(as_of))
    now = max(as_of, utc_now())
    spark = leads.sparkSession
    if buckets is None:
        buckets = max(spark.sparkContext.defaultParallelism, math.ceil(leads.count() / leads_per_bucket))
    if buckets <= 0:
        raise ValueError(f"The 'buckets' parameter of build_features_on_spark must be positive. Got {buckets!r}.")
    id_type = leads.schema["lead_id"].dataType

    def bucket_of(frame):
        return frame.withColumn(_BUCKET, F.pmod(F.xxhash64(F.col("lead_id").cast("string")), F.lit(buckets)))

    history = []  # events and deals in one frame: cogroup takes two sides
    if spec.event_log:
        if events is None:
            raise ValueError("The model's feature spec uses an event log, but no events were given.")
        history.append(_history(events, "event", "occurred_at", "event_type", id_type))
    if deals is not None:
        history.append(_history(deals, "deal", "closed_at", "outcome", id_type))
    if not history:
        history.append(_history(leads.limit(0).select("lead_id", F.lit(None).cast("timestamp").alias("t"),
                                                      F.lit(None).cast("string").alias("k")),
                                "none", "t", "k", id_type))
    right = history[0]
    for frame in history[1:]:
        right = right.unionByName(frame)
    left = leads.withColumn("created_at", F.col("created_at").cast("timestamp_ntz")) \
        if "created_at" in leads.columns else leads
    schema = _feature_schema(spec, id_type)
    names = list(schema.fieldNames())

    # Plain values only in what the workers receive: no Spark objects.
    features_of_bucket = functools.partial(_features_of_bucket, spec=spec, as_of=as_of, now=now, names=names,
                                           with_deals=deals is not None)
    return bucket_of(left).groupBy(_BUCKET).cogroup(bucket_of(right).groupBy(_BUCKET)).applyInPandas(
        features_of_bucket, schema)


def score_features_on_spark(features, model_udf, feature_names, *, model_version: str = "", scored_at=None):
    """Scores of Spark feature rows through the model UDF: the ``SPARK_SCORE_COLUMNS``."""
    from pyspark.sql import functions as F

    scored_at = naive_utc(pd.Timestamp(scored_at)) if scored_at is not None else utc_now().floor("s")
    scores = model_udf(F.struct(*[F.col(name) for name in feature_names]))
    return features.withColumn("_scores", scores).select(
        "lead_id", "_scores.probability", "_scores.score", "_scores.tier",
        F.lit(model_version).alias("model_version"), "as_of",
        F.lit(scored_at.to_pydatetime()).cast("timestamp_ntz").alias("scored_at"))


def write_scores(scores, target: str) -> None:
    """Write to a Parquet folder (a name with ``/`` or ending in ``.parquet``) or else a Spark table.

    A Parquet folder is written beside the target and moved in place once complete, so a failed job
    leaves the previous scores whole; a table is overwritten by Spark (atomic only on table formats
    that promise it, such as Delta or Iceberg).
    """
    if not ("/" in target or target.endswith(".parquet")):
        scores.write.mode("overwrite").saveAsTable(target)
        return
    spark = scores.sparkSession
    jvm = spark.sparkContext._jvm
    final = jvm.org.apache.hadoop.fs.Path(target)
    staging = jvm.org.apache.hadoop.fs.Path(f"{target.rstrip('/')}.staging-{uuid.uuid4().hex[:8]}")
    filesystem = final.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    try:
        scores.write.mode("error").parquet(staging.toString())
        if filesystem.exists(final):
            filesystem.delete(final, True)
        if not filesystem.rename(staging, final):
            raise OSError(f"Could not move the scores from {staging.toString()} to {target}.")
    finally:
        if filesystem.exists(staging):
            filesystem.delete(staging, True)


def spark_error_message(error: Exception) -> str | None:
    """The user-facing message of a Spark failure (a refused table, a worker's contract error), else None."""
    try:
        from pyspark.errors import PySparkException
    except ImportError:
        return None
    if not isinstance(error, PySparkException):
        return None
    text = str(error)
    # A worker's exception arrives as its whole traceback: keep the error it ended with.
    for marker in ("DataContractError: ", "ValueError: "):
        if marker in text:
            return text.rsplit(marker, 1)[1].split("\n\tat ", 1)[0].split("\nJVM stacktrace", 1)[0].strip()
    text = text.split("\nJVM stacktrace", 1)[0].strip()
    if "TIMESTAMP(NANOS" in text:
        text += ("\nSpark reads Parquet timestamps in microseconds; pandas writes nanoseconds unless told: "
                 "write the table with to_parquet(..., coerce_timestamps='us').")
    return text


def _history(frame, kind: str, time_column: str, what_column: str, id_type):
    """Events or deals in one shape: lead_id, when, what, and which of the two they are."""
    from pyspark.sql import functions as F

    return frame.select(F.col("lead_id").cast(id_type).alias("lead_id"),
                        F.col(time_column).cast("timestamp_ntz").alias("at"),
                        F.col(what_column).cast("string").alias("what"),
                        F.lit(kind).alias(_KIND))


def _feature_schema(spec, id_type):
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampNTZType

    categorical = set(spec.categorical_feature_names)
    return StructType([StructField("lead_id", id_type), StructField("as_of", TimestampNTZType())]
                      + [StructField(name, StringType() if name in categorical else DoubleType())
                         for name in spec.feature_names])


def _features_of_bucket(leads_part, history_part, *, spec, as_of, now, names, with_deals) -> pd.DataFrame:
    """One bucket's leads, validated, their open snapshots at ``as_of`` and their features: the pandas path."""
    events = history_part.loc[history_part[_KIND].eq("event"), ["lead_id", "at", "what"]].set_axis(
        ["lead_id", "occurred_at", "event_type"], axis=1).reset_index(drop=True)
    deals = history_part.loc[history_part[_KIND].eq("deal"), ["lead_id", "at", "what"]].set_axis(
        ["lead_id", "closed_at", "outcome"], axis=1).reset_index(drop=True)
    if len(leads_part) == 0:  # a bucket with history but no leads: every row of it has an unknown lead
        for table, rows in (("events", events), ("deals", deals)):
            if len(rows):
                raise DataContractError(contract_message(table, "lead_id", "ids present in the leads table",
                                                         f"{len(rows)} rows of unknown leads", rows))
        return pd.DataFrame({name: [] for name in names})
    leads = validate_leads(leads_part.drop(columns=[_BUCKET]).reset_index(drop=True), source="leads", now=now,
                           dated="created_at" in leads_part.columns)
    if with_deals:
        deals = validate_deals(deals, lead_ids=leads["lead_id"], source="deals", now=now)
    if spec.event_log:
        validate_events(events, lead_ids=leads["lead_id"], source="events", now=now)
    snapshots = open_leads(leads, deals if with_deals else None, as_of)
    features = build_features(snapshots, leads, events if spec.event_log else None, spec)
    categorical = spec.categorical_feature_names
    # Categories as plain objects with None for missing: what Arrow turns into a nullable string.
    features[categorical] = features[categorical].astype(object).where(features[categorical].notna(), None)
    return pd.concat([snapshots[["lead_id", "as_of"]].reset_index(drop=True), features.reset_index(drop=True)],
                     axis=1)[names]
