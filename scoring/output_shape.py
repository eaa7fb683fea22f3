"""The one shape of a scored lead, whoever writes it: its columns, their order and their types.

``score`` (CSV and Parquet), ``spark-score``, the HTTP service's results and the database
writer all give these columns in this order: ``lead_id`` as text (a CRM id is a name, not a
number: ``007`` stays ``007``, and an id read as an integer by one path joins the text ids of
another), numbers as 64-bit floats and integers, times in UTC with their zone, to the
microsecond (what Spark, PostgreSQL and JSON keep). Columns a run adds (a score history's
``previous_score``, ``previous_scored_at`` and ``trend``) follow, times again in UTC.
"""

from __future__ import annotations

import pandas as pd

TEXT, FLOAT, INTEGER, TIME = "text", "float", "integer", "time"

REASON_COLUMNS = tuple(f"{side}_reason_{k}" for side in ("positive", "negative") for k in (1, 2, 3))
#: Every output column and its kind, in the order written.
OUTPUT_TYPES = {"lead_id": TEXT, "probability": FLOAT, "score": INTEGER, "tier": TEXT, "fit_score": INTEGER,
                "engagement_score": INTEGER, **dict.fromkeys(REASON_COLUMNS, TEXT), "model_version": TEXT,
                "as_of": TIME, "scored_at": TIME}
SCORE_COLUMNS = tuple(OUTPUT_TYPES)
#: Left out when a run scores without reasons (``--no-reasons``): sub-scores come with the explanation.
EXPLAINED_COLUMNS = ("fit_score", "engagement_score", *REASON_COLUMNS)
#: How each kind is written in pandas (and from there Parquet, CSV and the database) and on Spark.
PANDAS_TYPES = {TEXT: object, FLOAT: "float64", INTEGER: "int64", TIME: "datetime64[us, UTC]"}
_SPARK_TYPES = {TEXT: "StringType", FLOAT: "DoubleType", INTEGER: "LongType", TIME: "TimestampType"}


def output_columns(*, explain: bool = True) -> tuple[str, ...]:
    """The output's columns in order; without sub-scores and reasons when not ``explain``."""
    return SCORE_COLUMNS if explain else tuple(c for c in SCORE_COLUMNS if c not in EXPLAINED_COLUMNS)


def output_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (scored rows) in the output shape: its known columns in order and typed, then any others.

    A new frame; the caller's is not changed. Naive times are UTC (as every builder holds them)
    and get their zone; any other time column (``previous_scored_at``) too.
    """
    known = [column for column in SCORE_COLUMNS if column in frame.columns]
    shaped = {column: _typed(frame[column], OUTPUT_TYPES[column]) for column in known}
    for column in frame.columns:
        if column not in shaped:
            values = frame[column]
            shaped[column] = _typed(values, TIME) if pd.api.types.is_datetime64_any_dtype(values) else values
    return pd.DataFrame(shaped, index=frame.index)


def spark_schema(*, explain: bool = True):
    """The Spark ``StructType`` of the output (``TimestampType``: an instant, written to Parquet as UTC)."""
    from pyspark.sql import types

    return types.StructType([types.StructField(column, getattr(types, _SPARK_TYPES[OUTPUT_TYPES[column]])())
                             for column in output_columns(explain=explain)])


def _typed(values: pd.Series, kind: str) -> pd.Series:
    if kind == TEXT:  # missing values stay missing (None), never the text "nan"
        if pd.api.types.is_string_dtype(values) or pd.api.types.is_integer_dtype(values):
            text = values.astype(str)
        else:
            text = values.map(lambda value: value if isinstance(value, str) else str(value))
        return text.astype(object).where(values.notna().to_numpy(), None)
    if kind == TIME:
        # Naive values are UTC; zoned ones are converted. Cut (not rounded) to microseconds: a stored time
        # is never later than the real one.
        return pd.to_datetime(values, utc=True).dt.floor("us").dt.as_unit("us")
    return values.astype(PANDAS_TYPES[kind])
