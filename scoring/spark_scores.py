"""Scores of Spark feature rows: by the logged model as a Spark UDF, or per partition with reasons.

The logged MLflow model scores the feature rows as a Spark UDF (``registry.loading.spark_model_udf``),
or, with reasons, each partition of feature rows goes through ``scoring.batch.score_features``
with the model bundle broadcast: the pandas path's output rows, sub-scores and reasons included.
"""

from __future__ import annotations

import functools

import pandas as pd

from features.timing import naive_utc, utc_now
from scoring.output_shape import output_columns, spark_schema
from scoring.spark import arrow_schema_of, pandas_in_arrow

SPARK_SCORE_COLUMNS = output_columns(explain=False)


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
    # The output shape (scoring.output_shape): the id as text, times as instants (the session is in UTC).
    return features.withColumn("_scores", scores).select(
        F.col("lead_id").cast("string").alias("lead_id"), "_scores.probability", "_scores.score", tier.alias("tier"),
        F.lit(model_version).alias("model_version"), F.col("as_of").cast("timestamp").alias("as_of"),
        F.lit(scored_at.tz_localize("UTC").to_pydatetime()).cast("timestamp").alias("scored_at"))


def _score_batches(batches, *, bundle, model_version, scored_at, thresholds, threads, arrow_schema):
    """A partition's feature rows, Arrow batch by batch, as the pandas path's output rows (with reasons)."""
    from scoring.batch import score_features
    from scoring.output_shape import output_frame
    from models.explain import use_threads

    bundle = bundle.value
    use_threads(bundle.model, threads)
    names = bundle.spec.feature_names

    def scores_of(batch):  # in the output shape (scoring.output_shape): text ids, UTC instants
        return output_frame(score_features(bundle, batch[names], batch[["lead_id", "as_of"]], explain=True,
                                           thresholds=thresholds, model_version=model_version, scored_at=scored_at))

    for batch in batches:
        yield from pandas_in_arrow(scores_of, batch, arrow_schema=arrow_schema).to_batches()
