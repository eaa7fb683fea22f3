"""A Spark run's tables checked on the driver before the feature buckets: columns, times and numbers as ``score`` reads them.

Numbers: ``crm.readers.number_findings`` runs on every partition (one Spark job over the id and
number columns only) and ``crm.readers.check_number_findings`` decides on the driver: the decimal
mark for the whole table, or one line naming the column, what was expected and example rows, as
``score`` stops. The buckets then read their numbers with that mark (``read_contract_numbers``, or
the config's ``map_export``), so no value becomes a silent missing value or a guess. Times held as
text must be what Spark's cast reads (ISO 8601): when that cast fails inside a job,
``explain_unread_times`` says which column and values in one line.
"""

from __future__ import annotations

import functools

import pandas as pd

from crm.readers import check_number_findings, contract_numbers, number_findings, unreadable_numbers
from features.contract import (DEAL_COLUMNS, DataContractError, _require_columns, contract_message,
                               require_event_columns)

_FINDINGS = "finding string, decimal string, column string, value string, lead_id string, count long"


def check_tables_on_spark(leads, events=None, deals=None, *, spec=None, config=None, sources=None) -> str:
    """Refuse what ``score`` would refuse in ``leads``, ``events`` and ``deals`` before any bucket runs; returns the
    decimal mark of the leads' numbers (for the buckets' reading). Costs Spark jobs only for number columns
    held as text or floats (see :func:`decide_numbers_on_spark`)."""
    sources = sources or {}
    if config is None:
        if events is not None:
            require_event_columns(events.columns, sources.get("events", "events"))
        if deals is not None:
            _require_columns(pd.DataFrame(columns=deals.columns), DEAL_COLUMNS, sources.get("deals", "deals"))
    return decide_numbers_on_spark(leads, spec=spec, config=config, source=sources.get("leads", "leads"))


def explain_unread_times(tables: dict, sources: dict | None = None) -> None:
    """After Spark's cast of a text time failed inside a job: raise one line naming the table, the column and the
    values, or return when no text time column is to blame. Run only then, so a run that reads costs nothing."""
    sources = sources or {}
    for table, column in (("leads", "created_at"), ("events", "occurred_at"), ("deals", "closed_at")):
        if tables.get(table) is not None:
            _check_text_times(tables[table], column, source=sources.get(table) or table)


def decide_numbers_on_spark(leads, *, spec=None, config=None, source: str = "leads") -> str:
    """The decimal mark of ``leads``' number columns (the model spec's, or the config's own); raises
    ``DataContractError`` on a value the rule refuses or on numbers that read two ways.

    Text columns need a look at every value (one ``mapInArrow`` job); typed float columns hold numbers by
    their type but for infinities, counted by one aggregate job over those columns only (a bucket would
    count only its own and print Spark's task failures before the line). Typed integers cost nothing.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, FloatType, StringType

    if config is not None:
        columns = (*config.numeric, *config.numeric_raw, *config.engagement)
        missing_tokens, decimal, key = config.feature_spec().missing_tokens, config.decimal, config.id
    else:
        (columns, missing_tokens), decimal, key = contract_numbers(spec), None, "lead_id"
    types = {field.name: field.dataType for field in leads.schema.fields}
    present = [column for column in dict.fromkeys(columns) if column in types]
    checked = [column for column in present if isinstance(types[column], StringType)]
    if key not in types:  # a missing id column is refused by the buckets, naming the columns
        return decimal or "."
    _refuse_infinities(leads, [column for column in present if isinstance(types[column], (FloatType, DoubleType))],
                       key=key, source=source)
    if not checked:
        return decimal or "."
    parts = leads.select(F.col(f"`{key}`").cast("string").alias("lead_id"), *[F.col(f"`{c}`") for c in checked])
    find = functools.partial(_findings_of_batches, columns=checked, missing_tokens=tuple(missing_tokens))
    findings = parts.mapInArrow(find, _FINDINGS).toPandas()
    return check_number_findings(findings, source=source, columns=checked, decimal=decimal)


def _refuse_infinities(leads, columns: list, *, key: str, source: str) -> None:
    """One line, as ``score`` says it, when a typed float column of ``leads`` holds an infinity (counted over the
    whole table, example rows named by ``key``)."""
    from pyspark.sql import functions as F

    if not columns:
        return
    infinite = [F.col(f"`{column}`").isin(float("inf"), float("-inf")) for column in columns]
    counts = leads.select(*[F.count(F.when(test, 1)) for test in infinite]).first()  # read by position
    for column, test, count in zip(columns, infinite, counts):
        if count:
            rows = leads.where(test).select(F.col(f"`{key}`").cast("string").alias("lead_id"),
                                            F.col(f"`{column}`")).limit(5).toPandas()
            rows.index = [f"with lead_id {lead_id}" for lead_id in rows.pop("lead_id")]
            raise DataContractError(unreadable_numbers(source, column, ".", count, rows[column], rows))


def _check_text_times(frame, column: str, *, source: str) -> None:
    """A time column held as text: every value must be what Spark's cast to a timestamp reads, else one line."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    if column not in frame.columns or not isinstance(frame.schema[column].dataType, StringType):
        return
    value = F.col(f"`{column}`")
    unread = frame.where(value.isNotNull() & F.expr(f"try_cast(`{column}` AS TIMESTAMP_NTZ)").isNull())
    key = [F.col("`lead_id`")] if "lead_id" in frame.columns else []
    examples = unread.select(*key, value).limit(5).toPandas()
    if len(examples):
        examples.index = [f"with lead_id {lead_id}" for lead_id in examples["lead_id"]] if key else examples.index
        raise DataContractError(contract_message(
            source, column, "timestamps Spark reads (ISO 8601 text such as '2025-03-15 09:30:00', or Parquet "
            "timestamps); write the column as Parquet timestamps, or score this export with `serve.py score`, which "
            "also reads epoch, calendar digits and day-first dates", f"values such as "
            f"{examples[column].head(3).tolist()} are not", examples[[column]]))


def _findings_of_batches(batches, *, columns, missing_tokens):
    import pyarrow as pa

    schema = pa.schema([*((name, pa.string()) for name in ("finding", "decimal", "column", "value", "lead_id")),
                        ("count", pa.int64())])
    for batch in batches:
        found = number_findings(batch.to_pandas(), columns=columns, missing_tokens=missing_tokens)
        yield pa.RecordBatch.from_pandas(found, schema=schema, preserve_index=False)
