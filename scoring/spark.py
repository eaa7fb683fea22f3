"""Apache Spark sessions and the tables around a Spark scoring run: sources read, scores written, errors said.

``scoring.spark_features`` builds the feature rows on Spark and ``scoring.spark_scores`` scores them;
``scoring.spark_job`` wires them into ``lead-serve spark-score``. pyspark is an optional dependency,
imported inside the functions.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from dataclasses import replace
from pathlib import Path

from crm.config import ProjectConfig
from crm.readers import CSV_SUFFIXES, parquet_problem

#: Times written to Parquet as UTC microseconds (pandas reads them zoned), not Spark's default INT96 (read naive).
MICROSECOND_PARQUET = ("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")


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
        .config("spark.sql.legacy.parquet.nanosAsLong", "true").config(*MICROSECOND_PARQUET)
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
    spark.conf.set(*MICROSECOND_PARQUET)  # a session made elsewhere, too
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


def arrow_schema_of(spark, schema):
    """The Arrow schema Spark expects of an Arrow UDF returning ``schema`` (large string types when the session says so)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    large = str(spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false")).lower() == "true"
    return to_arrow_schema(schema, timezone="UTC", prefers_large_types=large)


def pandas_in_arrow(function, *tables, arrow_schema):
    """``function`` of pandas frames between Arrow tables, for ``applyInArrow`` and ``mapInArrow``.

    pyarrow converts each table whole, as ``pd.read_parquet`` does, rather than Spark's column-by-column
    pandas layer of ``applyInPandas`` and ``mapInPandas``. Times arrive in nanoseconds, as
    ``applyInPandas`` gave them; the result is cast to the Spark schema's types.
    """
    import pyarrow as pa

    frame = function(*[table.to_pandas(coerce_temporal_nanoseconds=True) for table in tables])
    return pa.Table.from_pandas(frame, schema=arrow_schema, preserve_index=False)


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
