"""Column types decided once per column from all of its values: timestamps, numbers and ids.

A column is read one way, never guessed value by value: a timestamp column is ISO 8601 (with or
without a zone), compact calendar digits (YYYYMMDD, YYYYMMDDHHMM, YYYYMMDDHHMMSS), epoch seconds,
epoch milliseconds, or day/month/year in one order that the column itself shows (a day above 12
somewhere). A column of digits is epoch time only when every value lands between 1990 and now
and no calendar reading fits; a column that two readings fit, or none, is an error asking for
``[data] date_format`` or ``--date-format``. Numbers use one decimal mark per file, and a file whose
numbers read both ways (``1.200`` and nothing else) is an error asking for ``[data] decimal``.
Every reading other than ISO 8601 or typed columns is logged once (see :func:`readings`). Ids stay text.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

_TIME = r"(?:[T ]+\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?"
ISO_PATTERN = rf"\d{{4}}-\d{{1,2}}-\d{{1,2}}{_TIME}\s*(?:Z|UTC|[+-]\d{{2}}(?::?\d{{2}})?)?"
EPOCH_PATTERN = r"[+-]?\d+(?:\.\d+)?"
DAY_MONTH_PATTERN = rf"(\d{{1,2}})[/.-](\d{{1,2}})[/.-](\d{{4}}|\d{{2}})({_TIME})"
_ZONE_PATTERN = r".*(?:Z|UTC|[+-]\d{2}(?::?\d{2})?)$"
#: Calendar digits: YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS (a number column may add ".0").
COMPACT_PATTERN = r"(\d{8}|\d{12}|\d{14})(?:\.0+)?"
COMPACT_FORMATS = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
#: Epoch numbers are read as time only from this year on (a CRM export holds nothing earlier), and never
#: past the moment they are read.
EPOCH_START_YEAR = 1990
#: Timestamps outside these years are refused as typos, wherever they come from.
PLAUSIBLE_YEARS = (1900, 2200)


@dataclass(frozen=True)
class TimestampFormat:
    """How one column's timestamps are written: ``kind`` and, for a given format, its ``pattern``."""

    kind: str  # typed, iso, compact, epoch_s, epoch_ms, day_first, month_first, strftime, empty
    pattern: str = ""

    def describe(self) -> str:
        return {"typed": "typed timestamps", "iso": "ISO 8601", "epoch_s": "epoch seconds",
                "epoch_ms": "epoch milliseconds", "day_first": "day/month/year", "month_first": "month/day/year",
                "compact": f"calendar digits {_compact_name(self.pattern)}",
                "strftime": f"the format {self.pattern!r}", "empty": "no values"}[self.kind]


class DataContractError(ValueError):
    """Input that breaks the data contract; the message names file, column, expectation and rows."""


#: A column whose type cannot be decided, or whose values do not all fit the decided type.
ColumnTypeError = DataContractError


def decide_timestamp_format(con: duckdb.DuckDBPyConnection, relation: duckdb.DuckDBPyRelation, column: str, *,
                            source: str, date_format: str | None = None, label: str | None = None) -> TimestampFormat:
    """One format for the whole column, from all of its values; raises :class:`ColumnTypeError`.

    ``date_format`` (a strftime pattern) is used when every value fits it; otherwise the column
    decides. Every value must then parse in the decided format: the rows that do not are named.
    """
    kind = str(relation.select(f'"{column}"').types[0])
    if kind.startswith("TIMESTAMP") or kind == "DATE":
        return TimestampFormat("typed")
    sql_column, column = column, label or column
    text = f"""(SELECT nullif(trim(CAST("{sql_column}" AS VARCHAR)), '') AS v FROM relation)"""
    # Row numbers only for examples of a failure: numbering every row costs a full ordered pass.
    numbered = f"""(SELECT nullif(trim(CAST("{sql_column}" AS VARCHAR)), '') AS v, row_number() OVER () AS row
                    FROM relation)"""
    con.register("relation", relation)
    try:
        counts = con.sql(f"""
            SELECT count(v),
                   count(*) FILTER (WHERE regexp_full_match(v, '{ISO_PATTERN}')),
                   count(*) FILTER (WHERE regexp_full_match(v, '{EPOCH_PATTERN}')),
                   count(*) FILTER (WHERE regexp_full_match(v, '{DAY_MONTH_PATTERN}')),
                   min(TRY_CAST(v AS DOUBLE)) FILTER (WHERE regexp_full_match(v, '{EPOCH_PATTERN}')),
                   max(TRY_CAST(v AS DOUBLE)) FILTER (WHERE regexp_full_match(v, '{EPOCH_PATTERN}')),
                   max(TRY_CAST(regexp_extract(v, '^{DAY_MONTH_PATTERN}$', 1) AS INTEGER)),
                   max(TRY_CAST(regexp_extract(v, '^{DAY_MONTH_PATTERN}$', 2) AS INTEGER)),
                   count(*) FILTER (WHERE ? IS NOT NULL AND try_strptime(v, ?) IS NOT NULL),
                   count(*) FILTER (WHERE regexp_full_match(v, '{COMPACT_PATTERN}')),
                   min(length(regexp_extract(v, '^{COMPACT_PATTERN}$', 1))),
                   max(length(regexp_extract(v, '^{COMPACT_PATTERN}$', 1))),
                   count(*) FILTER (WHERE {_compact_sql("v")} BETWEEN make_timestamp({PLAUSIBLE_YEARS[0]}, 1, 1, 0, 0, 0)
                                    AND CAST(? AS TIMESTAMP))
            FROM {text}""", params=[date_format, date_format or "%Y", _latest()]).fetchall()[0]
        filled, iso, epoch, day_month, low, high, first_max, second_max, fitting, *compact = counts
        fmt = _decide(source, column, filled, iso, epoch, day_month, low, high, first_max, second_max,
                      fitting, date_format, lambda condition, **how: _examples(con, numbered, condition, **how),
                      compact=compact)
        _note_reading(source, column, fmt)
        if fmt.kind != "empty":
            expression = timestamp_sql("v", fmt)
            low_year, high_year = PLAUSIBLE_YEARS
            bad = (f"v IS NOT NULL AND ({expression} IS NULL OR year({expression}) < {low_year} "
                   f"OR year({expression}) > {high_year})")
            failing, = con.sql(f"SELECT count(*) FROM {text} WHERE {bad}").fetchall()[0]
            if failing:
                raise ColumnTypeError(
                    f"{source}: column {column!r} must hold a timestamp in one format, read as {fmt.describe()} "
                    f"(years {low_year}-{high_year}); {failing} values do not parse. "
                    f"Example rows: {_examples(con, numbered, bad)}")
        return fmt
    finally:
        con.unregister("relation")


def timestamp_sql(column_sql: str, fmt: TimestampFormat) -> str:
    """A DuckDB expression turning ``column_sql`` into naive-UTC ``TIMESTAMP`` in the decided format (NULL if not)."""
    v = f"nullif(trim(CAST({column_sql} AS VARCHAR)), '')"
    if fmt.kind == "typed":
        return column_sql  # callers convert zoned typed columns themselves (see relation_with_timestamps)
    if fmt.kind == "empty":
        return "CAST(NULL AS TIMESTAMP)"
    if fmt.kind == "iso":
        return (f"CASE WHEN regexp_full_match({v}, '{_ZONE_PATTERN}') "
                f"THEN timezone('UTC', TRY_CAST({v} AS TIMESTAMPTZ)) ELSE TRY_CAST({v} AS TIMESTAMP) END")
    if fmt.kind == "compact":
        return _compact_sql(v)
    if fmt.kind in ("epoch_s", "epoch_ms"):
        scale = 1e6 if fmt.kind == "epoch_s" else 1e3
        return f"make_timestamp(CAST(round(TRY_CAST({v} AS DOUBLE) * {scale}) AS BIGINT))"
    if fmt.kind in ("day_first", "month_first"):
        day, month = (1, 2) if fmt.kind == "day_first" else (2, 1)
        def part(group):
            return f"regexp_extract({v}, '^{DAY_MONTH_PATTERN}$', {group})"

        year = part(3)
        year = f"CASE WHEN length({year}) = 2 THEN '20' || {year} ELSE {year} END"
        return (f"TRY_CAST({year} || '-' || lpad({part(month)}, 2, '0') || '-' || "
                f"lpad({part(day)}, 2, '0') || replace({part(4)}, 'T', ' ') AS TIMESTAMP)")
    return f"try_strptime({v}, '{fmt.pattern}')"


def relation_with_timestamps(con, relation: duckdb.DuckDBPyRelation, column: str, fmt: TimestampFormat):
    """``relation`` with ``column`` replaced by its naive-UTC ``TIMESTAMP``."""
    kind = str(relation.select(f'"{column}"').types[0])
    if fmt.kind == "typed":
        expression = (f"""timezone('UTC', "{column}")""" if "TIME ZONE" in kind
                      else f"""CAST("{column}" AS TIMESTAMP)""")
    else:
        expression = timestamp_sql(f'"{column}"', fmt)
    return relation.project(f'* REPLACE ({expression} AS "{column}")')


def parse_timestamp_column(values: pd.Series, *, source: str, column: str, date_format: str | None = None) -> pd.Series:
    """A pandas column of timestamps as naive-UTC ``datetime64[ns]``, the format decided from all its values."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values.dt.tz_convert("UTC").dt.tz_localize(None) if values.dt.tz is not None else values
        _refuse_implausible(parsed, source, column)
        return parsed.astype("datetime64[ns]")
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        frame = pd.DataFrame({"v": values.astype(float).to_numpy()})
    else:
        frame = pd.DataFrame({"v": pd.Series([None if _missing(v) else str(v) for v in values], dtype=object)})
    with duckdb.connect() as con:
        relation = con.from_df(frame)
        fmt = decide_timestamp_format(con, relation, "v", source=source, date_format=date_format, label=column)
        if fmt.kind == "empty":
            return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
        parsed = relation_with_timestamps(con, relation, "v", fmt).df()["v"]
    return pd.Series(parsed.to_numpy().astype("datetime64[ns]"), index=values.index, name=values.name)


def decide_decimal(texts, *, source: str, configured: str | None = None) -> str:
    """The decimal mark of a file's numbers: ``configured`` if given, else what the values show.

    A value like ``0,5``, ``12,50`` or ``1.234,5`` shows a decimal comma; ``0.5``, ``12.50`` or
    ``1,234.5`` a decimal point. A file showing both is refused, and so is a file whose only
    marked numbers read both ways (``1.200`` is 1.2 or 1200, ``1,234`` 1234 or 1.234): it must say.
    """
    if configured is not None:
        if configured not in (".", ","):
            raise ValueError(f"The decimal mark must be '.' or ','. Got {configured!r} instead.")
        return configured
    comma_example = point_example = either_example = None
    for text in texts:
        comma, point, either = decimal_examples(text)
        comma_example, point_example, either_example = (comma_example or comma, point_example or point,
                                                        either_example or either)
    if comma_example and point_example:
        raise ColumnTypeError(f"{source}: numbers use both decimal marks ({point_example!r} and "
                              f"{comma_example!r}); set [data] decimal = \".\" or \",\" in the config.")
    if either_example and not (comma_example or point_example):
        mark = "." if "." in either_example else ","
        other = "," if mark == "." else "."
        raise ColumnTypeError(
            f"{source}: numbers such as {either_example!r} read two ways (with {mark!r} as decimal mark or as "
            f"thousands separator) and no other value tells which; set [data] decimal = \"{mark}\" (thousands "
            f"\"{other}\") or [data] decimal = \"{other}\" (thousands \"{mark}\") in the config.")
    decided = "," if comma_example else "."
    if comma_example:  # a decimal point is the default, not worth a line
        note_reading(source, f"numbers read with ',' as decimal mark and '.' for thousands (shown by {comma_example!r})")
    return decided


def decimal_examples(text: pd.Series) -> tuple:
    """The first value of ``text`` showing a decimal comma, a decimal point, and one that reads either way (or None).

    What :func:`decide_decimal` decides from: fed these examples of every part of a table (a Spark
    partition), it decides as it would from the whole table.
    """
    text = text.dropna()
    found = [text[text.str.fullmatch(pattern).fillna(False).astype(bool)]
             for pattern in (_COMMA_DECIMAL, _POINT_DECIMAL, _EITHER_DECIMAL)]
    return tuple(values.iloc[0] if len(values) else None for values in found)


def same_id_type(ids: pd.Series, reference: pd.Series) -> pd.Series:
    """``ids`` in the representation of ``reference`` when both mean the same text, else as text.

    Ids are compared as text: lead ``"007"`` is not ``7``. An id read as a number in one table
    and as text in another matches when their text is equal.
    """
    if ids.dtype == reference.dtype or (ids.dtype.kind in "iu" and reference.dtype.kind in "iu"):
        return ids
    by_text = {id_text(value): value for value in reference.dropna().unique()}
    return ids.map(lambda value: by_text.get(id_text(value), id_text(value)) if not _missing(value) else value)


def id_text(value) -> str:
    """An id as the text it was written as (a whole float such as 7.0 is 7)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


_COMMA_DECIMAL = r"[+-]?(?:\d+,\d{1,2}|\d+,\d{4,}|0,\d+|\d{1,3}(?:\.\d{3})+,\d+|\d{1,3}(?:\.\d{3}){2,})"
_EITHER_DECIMAL = r"[+-]?\d{1,3}[.,]\d{3}"
_POINT_DECIMAL = r"[+-]?(?:\d+\.\d{1,2}|\d+\.\d{4,}|0\.\d+|\d{1,3}(?:,\d{3})+\.\d+|\d{1,3}(?:,\d{3}){2,})"


def _decide(source, column, filled, iso, epoch, day_month, low, high, first_max, second_max, fitting,
            date_format, examples, *, compact) -> TimestampFormat:
    if not filled:
        return TimestampFormat("empty")
    if date_format and fitting == filled:
        return TimestampFormat("strftime", date_format)
    given = f" (the given date format {date_format!r} does not fit every value)" if date_format else ""
    if iso == filled:
        return TimestampFormat("iso")
    compact_count, shortest, longest, compact_fitting = compact
    calendar = (TimestampFormat("compact", COMPACT_FORMATS[shortest])
                if compact_count == filled and shortest == longest and compact_fitting == filled else None)
    if epoch == filled:
        readings = [fmt for fmt in (calendar, _epoch_reading(low, high)) if fmt is not None]
        if len(readings) == 1:
            return readings[0]
        if readings:
            raise ColumnTypeError(
                f"{source}: column {column!r} holds numbers from {low:.0f} to {high:.0f}, which read both as "
                f"{readings[0].describe()} and as {readings[1].describe()}; set [data] date_format = "
                f"\"{readings[0].pattern}\" in the config or pass --date-format for the calendar reading, or write "
                f"timestamps as ISO 8601 (2025-03-01 12:00:00){given}.")
        raise ColumnTypeError(
            f"{source}: column {column!r} holds numbers from {low:.0f} to {high:.0f}, which are neither calendar "
            f"digits (YYYYMMDD, YYYYMMDDHHMM, YYYYMMDDHHMMSS, one length) nor epoch seconds or milliseconds "
            f"between {EPOCH_START_YEAR} and now; write timestamps as ISO 8601 (2025-03-01 12:00:00) or set "
            f"[data] date_format{given}.")
    if day_month == filled:
        if first_max > 12 and second_max > 12:
            raise ColumnTypeError(
                f"{source}: column {column!r} holds dates with a day above 12 in both first and second place, "
                f"so no one order reads them all{given}. Example rows: "
                f"{examples(_dm_condition(1) + ' OR ' + _dm_condition(2))}")
        if first_max > 12:
            return TimestampFormat("day_first")
        if second_max > 12:
            return TimestampFormat("month_first")
        raise ColumnTypeError(
            f"{source}: column {column!r} holds dates like {examples('v IS NOT NULL', limit=1, values_only=True)} "
            "whose day and month cannot be told apart (no value above 12 in either place); set [data] date_format "
            "= \"%d/%m/%Y\" (day first) or \"%m/%d/%Y\" (month first) in the config, or pass --date-format"
            f"{given}.")
    shapes = {"ISO 8601": iso, "epoch numbers": epoch, "day/month/year": day_month}
    main = max(shapes, key=shapes.get)
    condition = {"ISO 8601": f"NOT regexp_full_match(v, '{ISO_PATTERN}')",
                 "epoch numbers": f"NOT regexp_full_match(v, '{EPOCH_PATTERN}')",
                 "day/month/year": f"NOT regexp_full_match(v, '{DAY_MONTH_PATTERN}')"}[main]
    if shapes[main] == 0:
        condition = "v IS NOT NULL"
    seen = ", ".join(f"{count} {name}" for name, count in shapes.items() if count)
    raise ColumnTypeError(
        f"{source}: column {column!r} must hold a timestamp in one format (ISO 8601 such as 2025-03-01 12:00:00, "
        f"epoch seconds or milliseconds, or day/month/year); {filled - shapes[main]} of {filled} values are not "
        f"{main if shapes[main] else 'any of these'}{' (' + seen + ')' if seen else ''}{given}. "
        f"Example rows: {examples(condition + ' AND v IS NOT NULL')}")


def _epoch_reading(low: float, high: float) -> TimestampFormat | None:
    """Epoch seconds or milliseconds when every value lands between 1990 and now, else None."""
    start = pd.Timestamp(EPOCH_START_YEAR, 1, 1).timestamp()
    end = _latest().timestamp()
    for kind, scale in (("epoch_s", 1.0), ("epoch_ms", 1e3)):
        if start * scale <= low and high <= end * scale:
            return TimestampFormat(kind)
    return None


def _compact_sql(v: str) -> str:
    digits = f"regexp_extract({v}, '^{COMPACT_PATTERN}$', 1)"
    cases = " ".join(f"WHEN {length} THEN try_strptime({digits}, '{pattern}')"
                     for length, pattern in COMPACT_FORMATS.items())
    return f"CAST(CASE length({digits}) {cases} END AS TIMESTAMP)"


def _compact_name(pattern: str) -> str:
    return pattern.replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD").replace("%H", "HH") \
        .replace("%M", "MM").replace("%S", "SS")


def _latest() -> pd.Timestamp:
    """The latest moment a timestamp may name when read: now (UTC, naive), plus a day for clocks that run ahead."""
    return pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s") + pd.Timedelta(days=1)


def readings() -> dict[str, str]:
    """Every reading decided in this process that was not plain ISO 8601 or typed: ``{"source: column": how}``."""
    return dict(_READINGS)


#: Readings noted so far, so that each is logged once and a run can record them all.
_READINGS: dict[str, str] = {}
_log = logging.getLogger("lead_scoring.readings")


def _note_reading(source: str, column: str, fmt: TimestampFormat) -> None:
    if fmt.kind in ("iso", "typed", "empty"):
        return
    note_reading(f"{source}: {column}", f"read as {fmt.describe()}")


def note_reading(what: str, how: str) -> None:
    """Log a reading the first time it is made (``what`` is "source: column"), and keep it for the run's record."""
    if _READINGS.get(what) != how:
        _READINGS[what] = how
        _log.info("%s %s", what, how)


def _dm_condition(place: int) -> str:
    return f"TRY_CAST(regexp_extract(v, '^{DAY_MONTH_PATTERN}$', {place}) AS INTEGER) > 12"


def _examples(con, text: str, condition: str, *, limit: int = 3, values_only: bool = False) -> str:
    rows = con.sql(f"SELECT row, v FROM {text} WHERE {condition} ORDER BY row LIMIT {limit}").fetchall()
    if values_only:
        return ", ".join(repr(value) for _, value in rows)
    return "; ".join(f"row {row}: {value!r}" for row, value in rows)


def _refuse_implausible(parsed: pd.Series, source: str, column: str) -> None:
    low, high = PLAUSIBLE_YEARS
    years = parsed.dt.year
    bad = parsed.notna() & ((years < low) | (years > high))
    if bad.any():
        rows = "; ".join(f"row {i + 1}: {value}" for i, value in zip(np.flatnonzero(bad)[:3], parsed[bad].head(3)))
        raise ColumnTypeError(f"{source}: column {column!r} must hold timestamps between the years {low} and {high}; "
                              f"{int(bad.sum())} values are not. Example rows: {rows}")


def _missing(value) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value))


def plain_number_pattern(decimal: str) -> re.Pattern:
    """A number as a file writes it with ``decimal`` as its mark (thousands separators allowed)."""
    group = "," if decimal == "." else "."
    return re.compile(rf"[+-]?(?:\d{{1,3}}(?:\{group}\d{{3}})+|\d+)(?:\{decimal}\d+)?")
