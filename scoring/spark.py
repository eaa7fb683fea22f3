"""Batch scoring on Apache Spark: features built per lead partition by the same builders, the model as a UDF.

The lead base is split into buckets by a hash of ``lead_id``; each bucket's leads meet their own
events and deals in one ``cogroup(...).applyInPandas`` call, which validates them and runs
``features.build.build_features`` exactly as the pandas path does. The logged MLflow model then
scores the feature rows as a Spark UDF (``registry.loading.spark_model_udf``), or, with reasons,
each partition of feature rows goes through ``scoring.batch.score_features`` with the model bundle
broadcast: the pandas path's output rows, sub-scores and reasons included. A company's own export
(a project config, ``crm.config``) is mapped per bucket by ``crm.export.map_export``, the function
``load_tables`` uses. pyspark is an optional dependency, imported inside the functions.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import pandas as pd

from crm.config import ProjectConfig
from crm.export import map_export
from crm.readers import CSV_SUFFIXES, parquet_problem
from features.build import build_features
from features.contract import (DataContractError, contract_message, validate_deals, validate_events,
                               validate_leads)
from features.freshness import data_end
from features.snapshots import open_leads
from features.timing import naive_utc, utc_now
from scoring.output_shape import output_columns, spark_schema

SPARK_SCORE_COLUMNS = output_columns(explain=False)
#: Times written to Parquet as UTC microseconds (pandas reads them zoned), not Spark's default INT96 (read naive).
_MICROSECOND_PARQUET = ("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
_BUCKET, _KIND = "_lead_bucket", "_kind"
#: With ``with_data_end``, each bucket's newest lead, event or deal time rides along in this column.
DATA_END_COLUMN = "_data_end"
#: Raw columns of an export's event log and deals table travel side by side under these prefixes.
_PREFIXES = {"event": "_event_", "deal": "_deal_"}


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
    # Parquet nanosecond timestamps (pandas' default) read as longs rather than refused: read_source makes
    # microsecond timestamps of them. Set for the whole session, since Spark reads the files when a job runs.
    builder = SparkSession.builder.appName(app_name).config("spark.sql.session.timeZone", "UTC") \
        .config("spark.sql.legacy.parquet.nanosAsLong", "true").config(*_MICROSECOND_PARQUET)
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
    source = check_source(source)
    if "/" in source or source.endswith(".parquet") or os.path.exists(source):
        nanos = _nanosecond_columns(source)
        if not nanos:
            return spark.read.parquet(source)
        # pandas writes nanoseconds, which Spark refuses (PARQUET_TYPE_ILLEGAL): read them as longs and make
        # microsecond timestamps of them, as Spark holds times (the last three digits are dropped).
        from pyspark.sql import functions as F

        spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")  # a session made elsewhere, too
        frame = spark.read.parquet(source)
        for column in nanos:
            frame = frame.withColumn(column, F.timestamp_micros(F.expr(f"`{column}` div 1000")).cast("timestamp_ntz"))
        return frame
    return spark.table(source)


def _nanosecond_columns(source: str) -> list[str]:
    """The columns of a Parquet file or folder stored as nanosecond timestamps (pyarrow reads the footers only)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    if not os.path.exists(source):
        return []
    schema = ds.dataset(source, format="parquet", exclude_invalid_files=True).schema
    return [field.name for field in schema if pa.types.is_timestamp(field.type) and field.type.unit == "ns"]


def check_source(source) -> str:
    """``source`` as text, refused when it is a CSV file (before Spark starts, in a CLI).

    ``score`` decides each CSV column's type (numbers, ids, decimal mark) once from the whole
    file, which Spark's reader, deciding per file split, cannot promise.
    """
    source = str(source)
    if Path(source).exists():  # a Parquet file or folder: one damaged file fails the whole job late in the JVM
        problem = parquet_problem(source)
        if problem is not None and not source.lower().endswith(CSV_SUFFIXES):
            raise ValueError(f"{problem} Spark would stop on it; remove or replace it.")
    if source.lower().endswith(CSV_SUFFIXES):
        raise ValueError(f"{source}: Spark reads Parquet files and folders or Spark tables, not CSV (a CSV column's "
                         "type is decided from the whole file). Convert it once, e.g. python -c \"import pandas as "
                         f"pd; pd.read_csv('{source}').to_parquet('{source.rsplit('.', 1)[0]}.parquet')\", or score "
                         "it with `serve.py score`.")
    return source


def export_tables(config: ProjectConfig, *, leads=None, events=None, deals=None) -> tuple[ProjectConfig, dict]:
    """The config for Spark and where its tables are: ``leads``, ``events``, ``deals`` override the config's.

    Refuses what needs the whole table in one place or a database: ids that are row numbers (Spark
    keeps no row order), ``[deals] lost_after`` (it needs the end of the whole data first), and a
    ``[data] url`` (give Parquet or Spark tables instead).
    """
    if config.url is not None:
        raise ValueError(f"{config.source}: [data] url names a database; spark-score reads Parquet files or Spark "
                         "tables. Score a database with `serve.py score --config`.")
    if config.row_number_id:
        raise ValueError(f"{config.source}: row_number_id = true makes each lead's id its row number, and Spark "
                         "keeps no row order. Add an id column to the export, or score it with `serve.py score`.")
    if config.deal_columns.won_only and config.deal_columns.lost_after_days is not None:
        raise ValueError(f"{config.source}: [deals] lost_after needs the end of the whole data before any lead is "
                         "read, which spark-score does not compute yet; score this export with `serve.py score`.")
    overrides = {key: value for key, value in (("events", events), ("deals", deals)) if value is not None}
    config = replace(config, **overrides) if overrides else config
    sources = {"leads": str(leads if leads is not None else config.leads),
               "events": str(config.events) if config.events is not None else None,
               "deals": str(config.deals) if config.deals is not None else None}
    return config, sources


def build_features_on_spark(leads, events, spec, *, as_of, deals=None, buckets: int | None = None,
                            leads_per_bucket: int = 100_000, config: ProjectConfig | None = None,
                            sources: dict | None = None, date_format: str | None = None,
                            with_data_end: bool = False):
    """Feature rows (``lead_id``, ``as_of``, ``spec.feature_names``) of every lead open at ``as_of``, on Spark.

    ``leads``, ``events`` and ``deals`` are Spark DataFrames with the data contract's columns, or,
    with ``config``, the tables of the company's own export that the config maps (its names, event
    type columns, outcome values), mapped per bucket by ``crm.export.map_export``; ``sources`` names
    the tables in messages. Each bucket (``buckets``, default one per ``leads_per_bucket`` leads and
    at least the default parallelism) holds whole leads: a lead's events and deals hash to its
    bucket, so duplicate ids, events or deals of unknown leads and bad timestamps are refused as
    the pandas path refuses them.

    ``with_data_end`` adds :data:`DATA_END_COLUMN` for :func:`split_data_end`: the bucket's newest
    lead creation, event or deal closing, on its rows (and on one row without a lead when no lead of
    the bucket is open), so the staleness check costs no second pass over the data.
    """
    from pyspark.sql import functions as F

    as_of = naive_utc(pd.Timestamp(as_of))
    now = max(as_of, utc_now())
    spark = leads.sparkSession
    if buckets is None:
        buckets = max(spark.sparkContext.defaultParallelism, math.ceil(leads.count() / leads_per_bucket))
    if buckets <= 0:
        raise ValueError(f"The 'buckets' parameter of build_features_on_spark must be positive. Got {buckets!r}.")
    if spec.event_log and events is None:
        raise ValueError("The model's feature spec uses an event log, but no events were given.")
    lead_key = config.id if config is not None else "lead_id"
    if lead_key not in leads.columns:
        raise DataContractError(f"{(sources or {}).get('leads', 'leads')}: missing column(s) [{lead_key!r}]"
                                f"{' named in the config' if config is not None else ''}. "
                                f"Columns found: {leads.columns}.")
    id_type = leads.schema[lead_key].dataType

    def bucket_of(frame, key):
        return frame.withColumn(_BUCKET, F.pmod(F.xxhash64(F.col(f"`{key}`").cast("string")), F.lit(buckets)))

    history = []  # events and deals in one frame: cogroup takes two sides
    if config is None:
        if spec.event_log:
            history.append(_history(events, "event", "occurred_at", "event_type", id_type))
        if deals is not None:
            history.append(_history(deals, "deal", "closed_at", "outcome", id_type))
        left = leads.withColumn("created_at", F.col("created_at").cast("timestamp_ntz")) \
            if "created_at" in leads.columns else leads
    else:
        raw_types = {}
        if events is not None and config.events is not None:
            history.append(_raw_history(events, "event", config.event_columns.id, id_type))
            raw_types["event"] = _spark_types(events)
        if deals is not None and config.deals is not None:
            history.append(_raw_history(deals, "deal", config.deal_columns.id, id_type))
            raw_types["deal"] = _spark_types(deals)
        left = _naive_times(leads)
    if not history:
        history.append(_history(leads.limit(0).select(F.col(f"`{lead_key}`").alias("lead_id"),
                                                      F.lit(None).cast("timestamp").alias("t"),
                                                      F.lit(None).cast("string").alias("k")),
                                "none", "t", "k", id_type))
    right = history[0]
    for frame in history[1:]:
        right = right.unionByName(frame, allowMissingColumns=True)
    schema = _feature_schema(spec, id_type, with_data_end=with_data_end)
    names = list(schema.fieldNames())

    # Plain values only in what the workers receive: no Spark objects.
    if config is None:
        features_of_bucket = functools.partial(_features_of_bucket, spec=spec, as_of=as_of, now=now, names=names,
                                               with_deals=deals is not None)
    else:
        features_of_bucket = functools.partial(_features_of_export_bucket, config=config, spec=spec, as_of=as_of,
                                               now=now, names=names, raw_types=raw_types, sources=sources or {},
                                               date_format=date_format)
    return bucket_of(left, lead_key).groupBy(_BUCKET).cogroup(bucket_of(right, "lead_id").groupBy(_BUCKET)) \
        .applyInPandas(features_of_bucket, schema)


def split_data_end(features):
    """``(feature rows, data end)`` of :func:`build_features_on_spark`'s ``with_data_end`` output.

    The rows are persisted, so reading the data end builds the features once and scoring reuses them
    (``unpersist()`` them when done in a long-lived session). The data end is the newest lead, event
    or deal time over every bucket (None without any).
    """
    from pyspark.sql import functions as F

    features = features.persist()
    end = features.agg(F.max(DATA_END_COLUMN)).first()[0]
    rows = features.where(F.col("lead_id").isNotNull()).drop(DATA_END_COLUMN)
    return rows, (pd.Timestamp(end) if end is not None else None)


def score_with_reasons_on_spark(features, bundle, *, model_version: str = "", scored_at=None, thresholds=None,
                                threads: int = 1):
    """Scores with sub-scores and reasons of Spark feature rows: the pandas path's ``SCORE_COLUMNS``, row for row.

    Each partition's rows go through ``scoring.batch.score_features`` with the bundle broadcast to
    the workers (one copy per executor); LightGBM predicts on ``threads`` threads in each task, since
    Spark already runs a task per core.
    """
    scored_at = naive_utc(pd.Timestamp(scored_at)) if scored_at is not None else utc_now().floor("s")
    spark = features.sparkSession
    shared = spark.sparkContext.broadcast(bundle)
    schema = spark_schema(explain=True)
    score_batches = functools.partial(_score_batches, bundle=shared, model_version=model_version,
                                      scored_at=scored_at, thresholds=thresholds, threads=threads)
    return features.mapInPandas(score_batches, schema)


def score_features_on_spark(features, model_udf, feature_names, *, model_version: str = "", scored_at=None,
                            thresholds=None):
    """Scores of Spark feature rows through the model UDF: the ``SPARK_SCORE_COLUMNS``.

    ``thresholds`` (a saved tier policy) re-tiers the UDF's probabilities; by default the model's own tiers stay.
    """
    from pyspark.sql import functions as F

    scored_at = naive_utc(pd.Timestamp(scored_at)) if scored_at is not None else utc_now().floor("s")
    scores = model_udf(F.struct(*[F.col(name) for name in feature_names]))
    tier = F.col("_scores.tier")
    if thresholds is not None:  # the same comparison as TierThresholds.assign: at or above a cut-off
        probability = F.col("_scores.probability")
        tier = (F.when(probability >= F.lit(thresholds.sql), "SQL").when(probability >= F.lit(thresholds.mql), "MQL")
                .otherwise("nurture"))
    # The output shape (scoring.output_shape): the id as text, times as instants (the session is in UTC).
    return features.withColumn("_scores", scores).select(
        F.col("lead_id").cast("string").alias("lead_id"), "_scores.probability", "_scores.score", tier.alias("tier"),
        F.lit(model_version).alias("model_version"), F.col("as_of").cast("timestamp").alias("as_of"),
        F.lit(scored_at.tz_localize("UTC").to_pydatetime()).cast("timestamp").alias("scored_at"))


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
    spark.conf.set(*_MICROSECOND_PARQUET)  # a session made elsewhere, too
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


def _feature_schema(spec, id_type, *, with_data_end=False):
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampNTZType

    categorical = set(spec.categorical_feature_names)
    return StructType([StructField("lead_id", id_type), StructField("as_of", TimestampNTZType())]
                      + [StructField(name, StringType() if name in categorical else DoubleType())
                         for name in spec.feature_names]
                      + ([StructField(DATA_END_COLUMN, TimestampNTZType())] if with_data_end else []))


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
    # A bucket whose leads closed no deal has none of the deals table's rows: none of its leads is closed.
    deals = validate_deals(deals, lead_ids=leads["lead_id"], source="deals", now=now) \
        if with_deals and len(deals) else None
    if spec.event_log:
        validate_events(events, lead_ids=leads["lead_id"], source="events", now=now)
    return _feature_rows(open_leads(leads, deals, as_of), leads, events if spec.event_log else None, spec, names,
                         deals=deals)


def _features_of_export_bucket(leads_part, history_part, *, config, spec, as_of, now, names, raw_types, sources,
                               date_format) -> pd.DataFrame:
    """One bucket of an own export, mapped as ``load_tables`` maps it (``map_export``), then as ``_features_of_bucket``."""
    raw = {kind: _raw_rows(history_part, kind, raw_types[kind]) for kind in raw_types}
    if len(leads_part) == 0:  # a bucket with history but no leads: every row of it has an unknown lead
        for kind, column, table in (("event", config.event_columns.id, "events"),
                                    ("deal", config.deal_columns.id, "deals")):
            rows = raw.get(kind)
            if rows is not None and len(rows):
                raise DataContractError(contract_message(sources.get(table, table), column,
                                                         "ids present in the leads table",
                                                         f"{len(rows)} rows of unknown leads", rows[[column]]))
        return pd.DataFrame({name: [] for name in names})
    leads, _, events, deals = map_export(config, leads_part.drop(columns=[_BUCKET]).reset_index(drop=True),
                                         events=raw.get("event"), deals=raw.get("deal"),
                                         source=sources.get("leads", "leads"), events_source=sources.get("events"),
                                         deals_source=sources.get("deals"), for_training=False, now=now,
                                         date_format=date_format, bucket=True)
    if events is None and "event" in raw:  # this bucket's leads did nothing: idle, not unknown
        events = pd.DataFrame({"lead_id": pd.Series([], dtype=leads["lead_id"].dtype),
                               "occurred_at": pd.Series([], dtype="datetime64[ns]"),
                               "event_type": pd.Series([], dtype=object)})
    return _feature_rows(open_leads(leads, deals, as_of), leads, events if spec.event_log else None, spec, names,
                         deals=deals)


def _feature_rows(snapshots, leads, events, spec, names, *, deals=None) -> pd.DataFrame:
    """The bucket's output rows; with :data:`DATA_END_COLUMN` among ``names``, its data end on each of them."""
    features = build_features(snapshots, leads, events, spec)
    categorical = spec.categorical_feature_names
    # Categories as plain objects with None for missing: what Arrow turns into a nullable string.
    features[categorical] = features[categorical].astype(object).where(features[categorical].notna(), None)
    rows = pd.concat([snapshots[["lead_id", "as_of"]].reset_index(drop=True), features.reset_index(drop=True)],
                     axis=1)
    if DATA_END_COLUMN not in names:
        return rows[names]
    if len(rows) == 0:  # no lead open here: one row without a lead still carries the bucket's data end
        rows = pd.DataFrame({name: [None] for name in names if name != DATA_END_COLUMN})
    return rows.assign(**{DATA_END_COLUMN: data_end(leads, events, deals)})[names]


def _raw_history(frame, kind: str, id_column: str, id_type):
    """An export's event or deal rows with every column kept under a prefix, and the lead key they hash by."""
    from pyspark.sql import functions as F

    frame = _naive_times(frame)
    # A missing id column: the key is null, and the bucket's map_export names the column and the columns found.
    key = F.col(f"`{id_column}`").cast(id_type) if id_column in frame.columns else F.lit(None).cast(id_type)
    return frame.select(key.alias("lead_id"), *[F.col(f"`{name}`").alias(_PREFIXES[kind] + name)
                                                for name in frame.columns], F.lit(kind).alias(_KIND))


def _raw_rows(history_part: pd.DataFrame, kind: str, types: dict) -> pd.DataFrame:
    """One kind's raw rows of a bucket, under their own names and with the types their table alone gives.

    In the union with the other table their integer and boolean columns gained missing values
    (the other table's rows), so Arrow gave floats and objects; a slice without missing values
    gets its type back, as reading the table alone would give it.
    """
    prefix = _PREFIXES[kind]
    rows = history_part.loc[history_part[_KIND].eq(kind), [prefix + name for name in types]]
    rows = rows.set_axis(list(types), axis=1).reset_index(drop=True)
    for name, kind_of_type in types.items():
        if kind_of_type in ("integer", "boolean") and len(rows) and rows[name].notna().all():
            rows[name] = rows[name].astype("int64" if kind_of_type == "integer" else bool)
    return rows


def _spark_types(frame) -> dict:
    """Each column's type family: ``integer``, ``boolean`` or ``other``."""
    from pyspark.sql.types import BooleanType, IntegralType

    return {field.name: "integer" if isinstance(field.dataType, IntegralType) else
            "boolean" if isinstance(field.dataType, BooleanType) else "other" for field in frame.schema.fields}


def _naive_times(frame):
    """Timestamp columns as naive UTC (``timestamp_ntz``): what the pandas readers give."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampType

    return frame.select(*[F.col(f"`{field.name}`").cast("timestamp_ntz").alias(field.name)
                          if isinstance(field.dataType, TimestampType) else F.col(f"`{field.name}`")
                          for field in frame.schema.fields])


def _score_batches(batches, *, bundle, model_version, scored_at, thresholds, threads):
    """A partition's feature rows, batch by batch, as the pandas path's output rows (with reasons)."""
    from scoring.batch import score_features
    from scoring.output_shape import output_frame
    from models.explain import use_threads

    bundle = bundle.value
    use_threads(bundle.model, threads)
    names = bundle.spec.feature_names
    for batch in batches:
        yield output_frame(score_features(bundle, batch[names], batch[["lead_id", "as_of"]], explain=True,
                                          thresholds=thresholds, model_version=model_version, scored_at=scored_at))
