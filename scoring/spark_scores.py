"""Scores of Spark feature rows: by the logged model as a Spark UDF, or per partition with reasons.

The logged MLflow model scores the feature rows as a Spark UDF (``registry.loading.spark_model_udf``),
or, with reasons, each partition of feature rows goes through ``scoring.batch.score_features``
with the model bundle broadcast: the pandas path's output rows, sub-scores and reasons included.
"""

from __future__ import annotations

import functools

import pandas as pd

from features.timing import naive_utc, utc_now
from scoring.spark import arrow_schema_of, pandas_in_arrow

SPARK_SCORE_COLUMNS = ("lead_id", "probability", "score", "tier", "model_version", "as_of", "scored_at")


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
    schema = _score_schema(features.schema["lead_id"].dataType)
    score_batches = functools.partial(_score_batches, bundle=shared, model_version=model_version,
                                      scored_at=scored_at, thresholds=thresholds, threads=threads,
                                      arrow_schema=arrow_schema_of(spark, schema))
    return features.mapInArrow(score_batches, schema)


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
    return features.withColumn("_scores", scores).select(
        "lead_id", "_scores.probability", "_scores.score", tier.alias("tier"),
        F.lit(model_version).alias("model_version"), "as_of",
        F.lit(scored_at.to_pydatetime()).cast("timestamp_ntz").alias("scored_at"))


def _score_schema(id_type):
    """The Spark types of the pandas path's output columns (``SCORE_COLUMNS``), in its order."""
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType, TimestampNTZType

    from scoring.batch import SCORE_COLUMNS

    types = {"lead_id": id_type, "probability": DoubleType(), "score": LongType(), "fit_score": LongType(),
             "engagement_score": LongType(), "as_of": TimestampNTZType(), "scored_at": TimestampNTZType()}
    return StructType([StructField(name, types.get(name, StringType())) for name in SCORE_COLUMNS])


def _score_batches(batches, *, bundle, model_version, scored_at, thresholds, threads, arrow_schema):
    """A partition's feature rows, Arrow batch by batch, as the pandas path's output rows (with reasons)."""
    from scoring.batch import score_features
    from models.explain import use_threads

    bundle = bundle.value
    use_threads(bundle.model, threads)
    names = bundle.spec.feature_names

    def scores_of(batch):
        return score_features(bundle, batch[names], batch[["lead_id", "as_of"]], explain=True, thresholds=thresholds,
                              model_version=model_version, scored_at=scored_at)

    for batch in batches:
        yield from pandas_in_arrow(scores_of, batch, arrow_schema=arrow_schema).to_batches()
