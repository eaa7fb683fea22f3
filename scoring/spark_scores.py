"""Scores on Spark: of a lead base in the same Python call as its features, or of feature rows by the model UDF.

``score_lead_base_on_spark`` scores each bucket of leads where its features are built, through
``scoring.batch.score_features`` with the model bundle broadcast: the pandas path's output rows,
sub-scores and reasons included. ``score_features_on_spark`` scores feature rows already on Spark
with the logged MLflow model as a Spark UDF (``registry.loading.spark_model_udf``).
"""

from __future__ import annotations

import pandas as pd

from features.timing import naive_utc, utc_now
from scoring.output_shape import output_columns, spark_schema

SPARK_SCORE_COLUMNS = output_columns(explain=False)


def score_lead_base_on_spark(leads, events, bundle, *, as_of, deals=None, explain: bool = True,
                             model_version: str = "", scored_at=None, thresholds=None, threads: int = 1,
                             **feature_options):
    """Scores of every lead open at ``as_of``: the pandas path's output rows (``SCORE_COLUMNS``), row for row.

    Each bucket of leads is validated, its feature rows built and scored by
    ``scoring.batch.score_features`` in one Python call (``build_features_on_spark``'s ``rows_of``):
    features, probabilities, then sub-scores and reasons (without them when not ``explain``), so the
    feature rows never travel back through the JVM. The bundle is broadcast once (one copy per
    executor, kept by its reused Python workers with the tree tables they build); LightGBM predicts
    on ``threads`` threads in each task, since Spark already runs a task per core.
    ``feature_options`` go to ``build_features_on_spark`` (``buckets``, ``config``, ``with_data_end``...).
    """
    from scoring.spark_features import build_features_on_spark

    scored_at = naive_utc(pd.Timestamp(scored_at)) if scored_at is not None else utc_now().floor("s")
    shared = leads.sparkSession.sparkContext.broadcast(bundle)
    rows_of = BucketScores(shared, explain=explain, model_version=model_version, scored_at=scored_at,
                           thresholds=thresholds, threads=threads)
    return build_features_on_spark(leads, events, bundle.spec, as_of=as_of, deals=deals, rows_of=rows_of,
                                   **feature_options)


class BucketScores:
    """Output rows of a pandas frame of feature rows, on a Spark worker, by the broadcast bundle.

    ``schema`` is the output's Spark ``StructType`` (``scoring.output_shape.spark_schema``).
    """

    def __init__(self, bundle, *, explain=True, model_version="", scored_at=None, thresholds=None, threads=1):
        self.bundle, self.explain, self.model_version = bundle, explain, model_version
        self.scored_at, self.thresholds, self.threads = scored_at, thresholds, threads
        self.schema = spark_schema(explain=explain)

    def __call__(self, rows: pd.DataFrame) -> pd.DataFrame:
        from scoring.batch import score_features
        from scoring.output_shape import output_frame
        from models.explain import use_threads

        if len(rows) == 0:  # no lead of the bucket is open (object columns: Arrow casts them to any type)
            return pd.DataFrame({name: pd.Series([], dtype=object) for name in self.schema.fieldNames()})
        bundle = self.bundle.value
        use_threads(bundle.model, self.threads)
        # In the output shape (scoring.output_shape): text ids, UTC instants.
        return output_frame(score_features(bundle, rows[bundle.spec.feature_names], rows[["lead_id", "as_of"]],
                                           explain=self.explain, thresholds=self.thresholds,
                                           model_version=self.model_version, scored_at=self.scored_at))


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
