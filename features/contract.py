"""The data contract: read the leads, events and deals tables and refuse bad input clearly."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

LEAD_COLUMNS = ("lead_id", "created_at")
EVENT_COLUMNS = ("lead_id", "occurred_at", "event_type")
DEAL_COLUMNS = ("lead_id", "closed_at", "outcome")
DEAL_OUTCOMES = ("won", "lost")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
CSV_DELIMITERS = (",", ";", "\t", "|")


class DataContractError(ValueError):
    """Input that breaks the data contract; the message names file, column, expectation and rows."""


def read_table(path, *, columns=None, delimiter=None, encoding="utf-8-sig", decimal=".") -> pd.DataFrame:
    """Read a CSV or Parquet file into pandas, by its suffix.

    CSV exports come in many dialects: the delimiter (comma, semicolon, tab or pipe) is detected
    unless given; a byte-order mark, CRLF line ends and quoted fields are handled; the empty
    column that a delimiter at the end of every line makes is dropped; a text column whose
    every value is a number with thousands separators becomes numeric. ``decimal`` says which
    convention: ``"."`` reads ``"1,234.5"`` as 1234.5, ``","`` reads ``"1.234,5"`` as 1234.5.
    """
    path = Path(path)
    if not path.exists():
        raise DataContractError(f"{path}: no such file.")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path, columns=columns)
    if suffix in CSV_SUFFIXES:
        return _read_csv(path, columns=columns, delimiter=delimiter, encoding=encoding, decimal=decimal)
    raise DataContractError(f"{path}: expected a .csv or .parquet file, got {suffix!r}.")


def parse_numbers(values: pd.Series, *, source: str, column: str, missing_tokens=(), decimal=".") -> pd.Series:
    """Numbers from a column of a lead table; thousands separators are removed, placeholders are missing.

    Refuses values that are neither a number nor a missing token, with example rows, instead of
    silently turning them into missing values.
    """
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    text = values.astype("string").str.strip()
    missing = text.isna() | text.str.lower().isin(set(missing_tokens) | {""})
    numbers = pd.to_numeric(_plain_numbers(text, decimal).where(~missing), errors="coerce")
    bad = numbers.isna() & ~missing
    if bad.any():
        raise DataContractError(_message(
            source, column, f"numbers with {decimal!r} as decimal mark (thousands separators are fine; values "
            "listed as missing tokens in the config count as missing; set [data] decimal for the other "
            "convention)", f"{int(bad.sum())} other values such as {text[bad].drop_duplicates().head(3).tolist()}",
            values[bad].to_frame()))
    return numbers.astype(float)


def validate_leads(leads: pd.DataFrame, *, source="leads", required=(), now=None, dated=True) -> pd.DataFrame:
    """Check the leads table and return a copy with ``created_at`` parsed (naive UTC).

    ``required`` adds attribute columns the model needs on top of the contract's own;
    ``dated=False`` accepts a lead table without ``created_at`` (a single export with a label).
    """
    _require_columns(leads, (*(LEAD_COLUMNS if dated else LEAD_COLUMNS[:1]), *required), source)
    leads = leads.copy()
    _require_present(leads, "lead_id", source)
    duplicated = leads["lead_id"].duplicated(keep=False)
    if duplicated.any():
        raise DataContractError(_message(
            source, "lead_id", "unique values", f"{leads.loc[duplicated, 'lead_id'].nunique()} duplicated ids",
            leads.loc[duplicated, [column for column in LEAD_COLUMNS if column in leads.columns]]))
    if dated:
        leads["created_at"] = parse_timestamps(leads["created_at"], source=source, column="created_at",
                                               frame=leads)
        _refuse_future(leads, "created_at", source, now)
    return leads


def validate_deals(deals: pd.DataFrame, *, lead_ids: pd.Series, source="deals", now=None) -> pd.DataFrame:
    """Check the closed-deals table against the leads and return a parsed copy."""
    _require_columns(deals, DEAL_COLUMNS, source)
    deals = deals.copy()
    deals["closed_at"] = parse_timestamps(deals["closed_at"], source=source, column="closed_at", frame=deals)
    deals["outcome"] = deals["outcome"].astype("string").str.strip().str.lower()
    bad = ~deals["outcome"].isin(DEAL_OUTCOMES)
    if bad.any():
        raise DataContractError(_message(source, "outcome", f"one of {list(DEAL_OUTCOMES)}",
                                         f"{int(bad.sum())} other values", deals.loc[bad]))
    unknown = ~deals["lead_id"].isin(lead_ids)
    if unknown.any():
        raise DataContractError(_message(source, "lead_id", "ids present in the leads table",
                                         f"{int(unknown.sum())} deals of unknown leads", deals.loc[unknown]))
    if "amount" in deals:
        amount = pd.to_numeric(deals["amount"], errors="coerce")
        negative = amount < 0
        if negative.any():
            raise DataContractError(_message(source, "amount", "non-negative amounts",
                                             f"{int(negative.sum())} negative", deals.loc[negative]))
        deals["amount"] = amount
    _refuse_future(deals, "closed_at", source, now)
    return deals


def validate_events(events, *, lead_ids: pd.Series, source=None, now=None) -> None:
    """Check an event log (a frame or a CSV/Parquet path) without loading it into pandas.

    Refuses missing columns, unparsable or future timestamps and events of unknown leads.
    """
    source = source or (str(events) if isinstance(events, (str, os.PathLike)) else "events")
    now = naive_utc(now) if now is not None else utc_now()
    with duckdb.connect() as con:
        con.register("contract_events", event_relation(con, events, source=source))
        con.register("contract_leads", pd.DataFrame({"lead_id": pd.Series(lead_ids).drop_duplicates()}))
        checks = (
            ("occurred_at", "a timestamp such as 2025-03-01 12:00:00",
             "occurred_at IS NOT NULL AND TRY_CAST(occurred_at AS TIMESTAMP) IS NULL"),
            ("occurred_at", f"no timestamp in the future (after {now})",
             f"TRY_CAST(occurred_at AS TIMESTAMP) > TIMESTAMP '{now}'"),
            # Cast as the feature builder joins: events' ids to the leads' type, so an id that
            # passes here ("7" for lead "007" would not) is one the builder finds.
            ("lead_id", "ids present in the leads table",
             "coalesce(TRY_CAST(lead_id AS {type}) NOT IN (SELECT lead_id FROM contract_leads), true)"),
        )
        id_type = (con.execute("SELECT typeof(lead_id) FROM contract_leads LIMIT 1").fetchall() or [None])[0]
        for column, expectation, condition in checks:
            condition = condition.replace("{type}", id_type[0] if id_type else "VARCHAR")
            count, = con.execute(f"SELECT count(*) FROM contract_events WHERE {condition}").fetchall()[0]
            if count:
                rows = con.sql(f"SELECT lead_id, occurred_at, event_type FROM contract_events "
                               f"WHERE {condition} LIMIT 5").df()
                raise DataContractError(_message(source, column, expectation, f"{count} rows do not", rows))


def event_relation(con: duckdb.DuckDBPyConnection, events, *, source=None) -> duckdb.DuckDBPyRelation:
    """A DuckDB relation over an event log given as a DataFrame or a CSV/Parquet path.

    Refuses a missing file, another file type, or a log without the contract's columns.
    """
    if isinstance(events, pd.DataFrame):
        relation, source = con.from_df(events), source or "events"
    elif isinstance(events, (str, os.PathLike)):
        path = Path(events)
        source = source or str(path)
        if not path.exists():
            raise DataContractError(f"{path}: no such file.")
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            relation = con.read_parquet(str(path))
        elif suffix == ".csv":
            relation = con.read_csv(str(path))
        else:
            raise DataContractError(f"{path}: expected a .csv or .parquet file, got {suffix!r}.")
    else:
        raise TypeError(f"An event log must be a DataFrame or a path. Got {type(events).__name__} instead.")
    require_event_columns(relation.columns, source)
    return relation


def require_event_columns(columns, source) -> None:
    """Refuse an event log without the contract's columns, naming what is missing and what is there."""
    missing = [column for column in EVENT_COLUMNS if column not in columns]
    if missing:
        raise DataContractError(
            f"{source}: missing column(s) {missing}; the event log needs {list(EVENT_COLUMNS)}. "
            f"Columns found: {sorted(columns)}.")


def naive_utc(moment):
    """A timestamp (or a datetime Series) as naive UTC, the form every builder works in."""
    if isinstance(moment, pd.Series):
        return moment.dt.tz_convert("UTC").dt.tz_localize(None) if moment.dt.tz is not None else moment
    moment = pd.Timestamp(moment)
    return moment.tz_convert("UTC").tz_localize(None) if moment.tzinfo else moment


def utc_now() -> pd.Timestamp:
    """The current time as naive UTC."""
    return naive_utc(pd.Timestamp.now(tz="UTC"))


def parse_timestamps(values: pd.Series, *, source: str, column: str, frame: pd.DataFrame) -> pd.Series:
    """Parse to naive UTC ``datetime64``; refuse unparsable values with example rows."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
        bad = parsed.isna() & values.notna()
        if bad.any():
            raise DataContractError(_message(source, column, "a timestamp such as 2025-03-01 12:00:00",
                                             f"{int(bad.sum())} unparsable values", frame.loc[bad]))
    parsed = naive_utc(parsed)
    missing = parsed.isna()
    if missing.any():
        raise DataContractError(_message(source, column, "a timestamp in every row",
                                         f"{int(missing.sum())} empty values", frame.loc[missing]))
    return parsed.astype("datetime64[ns]")


def _read_csv(path: Path, *, columns, delimiter, encoding, decimal) -> pd.DataFrame:
    try:
        with open(path, encoding=encoding, newline="") as handle:
            sample = handle.read(1 << 16)
    except UnicodeDecodeError as error:
        raise DataContractError(f"{path}: expected text encoded as {encoding}; byte {error.start} is not. "
                                "Save the export as UTF-8 (or set the encoding in the config).") from None
    delimiter = delimiter or detect_delimiter(sample)
    try:
        frame = pd.read_csv(path, sep=delimiter, encoding=encoding, usecols=columns, decimal=decimal,
                            low_memory=False)
    except (pd.errors.ParserError, ValueError) as error:
        raise DataContractError(f"{path}: could not read it as CSV with delimiter {delimiter!r}: {error}") from None
    trailing = [column for column in frame.columns
                if str(column).startswith("Unnamed: ") and frame[column].isna().all()]
    frame = frame.drop(columns=trailing)
    for column in frame.columns:
        if pd.api.types.is_object_dtype(frame[column]) or pd.api.types.is_string_dtype(frame[column]):
            text = frame[column].astype("string").str.strip()
            numbers = pd.to_numeric(_plain_numbers(text, decimal), errors="coerce")
            if text.notna().any() and numbers[text.notna()].notna().all():
                frame[column] = numbers.astype(float)
    return frame


def _plain_numbers(text: pd.Series, decimal: str) -> pd.Series:
    """Numbers written with thousands separators or a decimal comma, rewritten as '1234.5'; other text as is."""
    if decimal not in (".", ","):
        raise ValueError(f"The decimal mark must be '.' or ','. Got {decimal!r} instead.")
    group = "," if decimal == "." else "."
    grouped = text.str.fullmatch(rf"[+-]?\d{{1,3}}(?:\{group}\d{{3}})+(?:\{decimal}\d+)?").fillna(False)
    plain = text.str.fullmatch(rf"[+-]?\d+(?:\{decimal}\d+)?").fillna(False)
    cleaned = text.where(~grouped.astype(bool), text.str.replace(group, "", regex=False))
    return cleaned.where(~(grouped | plain).astype(bool), cleaned.str.replace(decimal, ".", regex=False))


def detect_delimiter(sample: str) -> str:
    """The delimiter that splits the first lines of ``sample`` into the most, equally many, fields."""
    lines = sample.splitlines()[:50]
    if len(sample) == 1 << 16 and len(lines) > 1:
        lines = lines[:-1]  # the last line of a cut sample may be incomplete
    best, best_fields = ",", 1
    for candidate in CSV_DELIMITERS:
        counts = {len(row) for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=candidate) if row}
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = candidate, fields
    return best


def _require_columns(frame: pd.DataFrame, columns, source: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataContractError(f"{source}: missing column(s) {missing}; expected {list(columns)}. "
                                f"Columns found: {list(frame.columns)}.")


def _require_present(frame: pd.DataFrame, column: str, source: str) -> None:
    missing = frame[column].isna()
    if missing.any():
        raise DataContractError(_message(source, column, "a value in every row",
                                         f"{int(missing.sum())} empty values", frame.loc[missing]))


def _refuse_future(frame: pd.DataFrame, column: str, source: str, now) -> None:
    now = naive_utc(now) if now is not None else utc_now()
    future = frame[column] > now
    if future.any():
        raise DataContractError(_message(source, column, f"no timestamp in the future (after {now})",
                                         f"{int(future.sum())} rows do not", frame.loc[future]))


def _message(source: str, column: str, expected: str, got: str, rows: pd.DataFrame) -> str:
    """One error shape: where, what was expected, what arrived, and a few offending rows."""
    example = _without_pii(rows.head(5)).to_string(max_colwidth=40)
    return f"{source}: column {column!r} must hold {expected}; {got}. Example rows:\n{example}"


def _without_pii(rows: pd.DataFrame) -> pd.DataFrame:
    """Error messages end up in logs: mask columns that look like e-mails, names or phones."""
    masked = rows.copy()
    for column in masked.columns:
        if any(token in str(column).lower() for token in ("email", "e-mail", "name", "phone", "mobile")):
            masked[column] = np.where(masked[column].notna(), "<redacted>", masked[column])
    return masked


def load_crm(leads_path, events_path=None, deals_path=None, *, now=None):
    """Read and validate the three tables; returns ``(leads, events, deals)``.

    The event log stays where it is (a path) and is checked by DuckDB, so a 20-million-row file
    never has to fit in pandas. Missing optional tables come back as None.
    """
    leads = validate_leads(read_table(leads_path), source=str(leads_path), now=now)
    deals = None
    if deals_path is not None:
        deals = validate_deals(read_table(deals_path), lead_ids=leads["lead_id"], source=str(deals_path), now=now)
    if events_path is not None:
        validate_events(events_path, lead_ids=leads["lead_id"], source=str(events_path), now=now)
    return leads, events_path, deals
