"""Feature rows of a lead base on Spark: each lead partition meets its own events and deals, built by the pandas builders.

The lead base is split into buckets by a hash of ``lead_id``; each bucket's leads meet their own
events and deals in one ``cogroup(...).applyInArrow`` call, which validates them and runs
``features.build.build_features`` exactly as the pandas path does. A company's own export (a
project config, ``crm.config``) is mapped per bucket by ``crm.export.map_export``, the function
``load_tables`` uses. pyspark is an optional dependency, imported inside the functions.
"""

from __future__ import annotations

import functools
import math

import pandas as pd

from crm.config import ProjectConfig
from crm.export import map_export
from crm.readers import read_contract_numbers
from features.build import build_features
from features.contract import (DataContractError, contract_message, validate_deals, validate_events,
                               validate_leads)
from features.freshness import data_end
from features.snapshots import open_leads
from features.timing import naive_utc, utc_now
from scoring.spark import arrow_schema_of, pandas_in_arrow
from scoring.spark_checks import check_tables_on_spark

_BUCKET, _KIND = "_lead_bucket", "_kind"
#: With ``with_data_end``, each bucket's newest lead, event or deal time rides along in this column.
DATA_END_COLUMN = "_data_end"
#: Raw columns of an export's event log and deals table travel side by side under these prefixes.
_PREFIXES = {"event": "_event_", "deal": "_deal_"}


def build_features_on_spark(leads, events, spec, *, as_of, deals=None, buckets: int | None = None,
                            leads_per_bucket: int = 100_000, config: ProjectConfig | None = None,
                            sources: dict | None = None, date_format: str | None = None,
                            with_data_end: bool = False, rows_of=None):
    """Feature rows (``lead_id``, ``as_of``, ``spec.feature_names``) of every lead open at ``as_of``, on Spark.

    ``leads``, ``events`` and ``deals`` are Spark DataFrames with the data contract's columns, or,
    with ``config``, the tables of the company's own export that the config maps (its names, event
    type columns, outcome values), mapped per bucket by ``crm.export.map_export``; ``sources`` names
    the tables in messages. Each bucket (``buckets``, default about one per ``leads_per_bucket`` leads,
    rounded up to a multiple of the default parallelism) holds whole leads: a lead's events and deals hash to its
    bucket, so duplicate ids, events or deals of unknown leads and bad timestamps are refused as
    the pandas path refuses them.

    ``rows_of`` turns each bucket's feature rows into other rows in the same Python call, before they
    go back to Spark: a callable of a pandas frame of feature rows (``lead_id``, ``as_of``,
    ``spec.feature_names``) with a ``schema`` attribute (the ``StructType`` of what it returns), such
    as scores with reasons (``scoring.spark_scores.score_lead_base_on_spark``). One pass per bucket:
    the feature rows never cross back to the JVM and out again.

    ``with_data_end`` adds :data:`DATA_END_COLUMN` for :func:`split_data_end`: the bucket's newest
    lead creation, event or deal closing, on its rows (and on one row without a lead when no lead of
    the bucket is open), so the staleness check costs no second pass over the data.
    """
    from pyspark.sql import functions as F

    as_of = naive_utc(pd.Timestamp(as_of))
    now = max(as_of, utc_now())
    spark = leads.sparkSession
    if buckets is None:
        # Whole waves of tasks: a multiple of the cores, so no core idles while the last buckets are built.
        cores = spark.sparkContext.defaultParallelism
        buckets = cores * max(1, math.ceil(leads.count() / (leads_per_bucket * cores)))
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
    # Columns, text times and numbers checked on the driver first (decimal mark, refused values), as `score` reads them.
    decimal = check_tables_on_spark(leads, events if spec.event_log else None, deals, spec=spec, config=config,
                                    sources=sources)

    # Each bucket is labelled by a value that Spark's hash partitioning sends to a partition of its own: with the
    # bucket numbers themselves, pmod(hash(k), n) collides (buckets 0..9 fill 7 of 10 partitions), so one task
    # built two or three buckets while a core idled.
    labels = F.array(*[F.lit(label).cast("long") for label in _partition_labels(spark, buckets)])  # hashed as longs

    def bucket_of(frame, key):
        # Hash-partitioned by bucket into as many partitions: the cogroup reuses that partitioning (one task per
        # bucket) rather than spreading the buckets over spark.sql.shuffle.partitions (200 outside local mode).
        bucket = F.pmod(F.xxhash64(F.col(f"`{key}`").cast("string")), F.lit(buckets))
        return frame.withColumn(_BUCKET, F.element_at(labels, (bucket + 1).cast("int"))).repartition(buckets, _BUCKET)

    history = []  # events and deals in one frame: cogroup takes two sides
    if config is None:
        if spec.event_log:
            history.append(_history(events, "event", "occurred_at", "event_type", id_type))
        if deals is not None:
            history.append(_history(deals, "deal", "closed_at", "outcome", id_type,
                                    amount="amount" in deals.columns))  # checked by validate_deals, as score does
        # Only the columns the buckets read travel: less to shuffle, and Spark's Arrow UDFs refuse a name with a dot.
        needed = {"lead_id", "created_at", *spec.source_columns.values()}
        left = leads.select(*[F.col(f"`{column}`") for column in leads.columns if column in needed])
        left = left.withColumn("created_at", F.col("created_at").cast("timestamp_ntz")) \
            if "created_at" in left.columns else left
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
    if rows_of is not None:  # the bucket gives what rows_of makes of its feature rows
        schema = _with_data_end(rows_of.schema) if with_data_end else rows_of.schema
        names = list(schema.fieldNames())

    # Plain values only in what the workers receive: no Spark objects.
    if config is None:
        features_of_bucket = functools.partial(_features_of_bucket, spec=spec, as_of=as_of, now=now, names=names,
                                               with_deals=deals is not None, decimal=decimal, rows_of=rows_of)
    else:
        features_of_bucket = functools.partial(_features_of_export_bucket, config=config, spec=spec, as_of=as_of,
                                               now=now, names=names, raw_types=raw_types, sources=sources or {},
                                               date_format=date_format, decimal=decimal, rows_of=rows_of)
    # Arrow in and out: each bucket's tables become pandas frames in pyarrow, not Spark's pandas layer.
    in_arrow = functools.partial(_bucket_in_arrow, features_of_bucket=features_of_bucket,
                                 arrow_schema=arrow_schema_of(spark, schema))
    return bucket_of(left, lead_key).groupBy(_BUCKET).cogroup(bucket_of(right, "lead_id").groupBy(_BUCKET)) \
        .applyInArrow(in_arrow, schema)


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


def _bucket_in_arrow(leads, history, *, features_of_bucket, arrow_schema):
    """One bucket's Arrow tables through ``features_of_bucket`` (Spark counts the two positional arguments)."""
    return pandas_in_arrow(features_of_bucket, leads, history, arrow_schema=arrow_schema)


def _partition_labels(spark, partitions: int) -> list[int]:
    """A long for each partition ``p`` that ``repartition(partitions, column)`` sends to partition ``p``.

    Spark hash-partitions a long by ``pmod(hash(value), partitions)`` (Murmur3, ``F.hash``); the first
    value landing in each partition is found by Spark itself, among a few times as many longs.
    """
    from pyspark.sql import functions as F

    labels: dict[int, int] = {}
    start, span = 0, max(64, 16 * partitions)
    while len(labels) < partitions:
        for row in spark.range(start, start + span, numPartitions=1).select(
                "id", F.pmod(F.hash("id"), F.lit(partitions)).alias("p")).collect():
            labels.setdefault(row["p"], row["id"])
        start += span
    return [labels[p] for p in range(partitions)]


def _with_data_end(schema):
    from pyspark.sql.types import StructField, StructType, TimestampNTZType

    return StructType(list(schema.fields) + [StructField(DATA_END_COLUMN, TimestampNTZType())])


def _history(frame, kind: str, time_column: str, what_column: str, id_type, *, amount: bool = False):
    """Events or deals in one shape: lead_id, when, what, and which of the two they are (with ``amount``, the deal's)."""
    from pyspark.sql import functions as F

    return frame.select(F.col("lead_id").cast(id_type).alias("lead_id"),
                        F.col(time_column).cast("timestamp_ntz").alias("at"),
                        F.col(what_column).cast("string").alias("what"),
                        F.lit(kind).alias(_KIND), *([F.col("amount").cast("string").alias("amount")] if amount else []))


def _feature_schema(spec, id_type, *, with_data_end=False):
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampNTZType

    categorical = set(spec.categorical_feature_names)
    return StructType([StructField("lead_id", id_type), StructField("as_of", TimestampNTZType())]
                      + [StructField(name, StringType() if name in categorical else DoubleType())
                         for name in spec.feature_names]
                      + ([StructField(DATA_END_COLUMN, TimestampNTZType())] if with_data_end else []))


def _features_of_bucket(leads_part, history_part, *, spec, as_of, now, names, with_deals,
                        decimal=None, rows_of=None) -> pd.DataFrame:
    """One bucket's leads, validated, their open snapshots at ``as_of`` and their features: the pandas path."""
    events = history_part.loc[history_part[_KIND].eq("event"), ["lead_id", "at", "what"]].set_axis(
        ["lead_id", "occurred_at", "event_type"], axis=1).reset_index(drop=True)
    amount = ["amount"] if "amount" in history_part.columns else []
    deals = history_part.loc[history_part[_KIND].eq("deal"), ["lead_id", "at", "what", *amount]].set_axis(
        ["lead_id", "closed_at", "outcome", *amount], axis=1).reset_index(drop=True)
    if len(leads_part) == 0:  # a bucket with history but no leads: every row of it has an unknown lead
        for table, rows in (("events", events), ("deals", deals)):
            if len(rows):
                raise DataContractError(contract_message(table, "lead_id", "ids present in the leads table",
                                                         f"{len(rows)} rows of unknown leads", rows))
        return pd.DataFrame({name: [] for name in names})
    leads = validate_leads(leads_part.drop(columns=[_BUCKET]).reset_index(drop=True), source="leads", now=now,
                           dated="created_at" in leads_part.columns)
    leads = read_contract_numbers(leads, source="leads", spec=spec, decimal=decimal)  # checked on the driver
    # A bucket whose leads closed no deal has none of the deals table's rows: none of its leads is closed.
    deals = validate_deals(deals, lead_ids=leads["lead_id"], source="deals", now=now) \
        if with_deals and len(deals) else None
    if spec.event_log:
        validate_events(events, lead_ids=leads["lead_id"], source="events", now=now)
    return _feature_rows(open_leads(leads, deals, as_of), leads, events if spec.event_log else None, spec, names,
                         deals=deals, rows_of=rows_of)


def _features_of_export_bucket(leads_part, history_part, *, config, spec, as_of, now, names, raw_types, sources,
                               date_format, decimal=None, rows_of=None) -> pd.DataFrame:
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
    frame = leads_part.drop(columns=[_BUCKET]).reset_index(drop=True)
    if decimal is not None:  # the table's mark, decided on the driver: map_export reads numbers with it
        frame.attrs["decimal"] = decimal
    leads, _, events, deals = map_export(config, frame,
                                         events=raw.get("event"), deals=raw.get("deal"),
                                         source=sources.get("leads", "leads"), events_source=sources.get("events"),
                                         deals_source=sources.get("deals"), for_training=False, now=now,
                                         date_format=date_format, bucket=True)
    if events is None and "event" in raw:  # this bucket's leads did nothing: idle, not unknown
        events = pd.DataFrame({"lead_id": pd.Series([], dtype=leads["lead_id"].dtype),
                               "occurred_at": pd.Series([], dtype="datetime64[ns]"),
                               "event_type": pd.Series([], dtype=object)})
    return _feature_rows(open_leads(leads, deals, as_of), leads, events if spec.event_log else None, spec, names,
                         deals=deals, rows_of=rows_of)


def _feature_rows(snapshots, leads, events, spec, names, *, deals=None, rows_of=None) -> pd.DataFrame:
    """The bucket's output rows (feature rows, or what ``rows_of`` makes of them); with :data:`DATA_END_COLUMN`
    among ``names``, its data end on each of them."""
    features = build_features(snapshots, leads, events, spec)
    ids = snapshots[["lead_id", "as_of"]].reset_index(drop=True)
    if rows_of is not None:  # scored as build_features gave them (categories kept), as the pandas path scores them
        rows = rows_of(pd.concat([ids, features.reset_index(drop=True)], axis=1))
    else:
        categorical = spec.categorical_feature_names
        # Categories as plain objects with None for missing: what Arrow turns into a nullable string.
        features[categorical] = features[categorical].astype(object).where(features[categorical].notna(), None)
        rows = pd.concat([ids, features.reset_index(drop=True)], axis=1)
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
