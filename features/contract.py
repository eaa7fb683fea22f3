"""The data contract: validate the leads, events and deals tables and refuse bad input clearly."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from features.timing import naive_utc, utc_now

LEAD_COLUMNS = ("lead_id", "created_at")
EVENT_COLUMNS = ("lead_id", "occurred_at", "event_type")
DEAL_COLUMNS = ("lead_id", "closed_at", "outcome")
DEAL_OUTCOMES = ("won", "lost")
#: DuckDB's memory for checking an event log (it streams the log; the leads' ids are its only state).
CHECK_MEMORY_LIMIT = "128MB"


class DataContractError(ValueError):
    """Input that breaks the data contract; the message names file, column, expectation and rows."""


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
        raise DataContractError(contract_message(
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
        raise DataContractError(contract_message(source, "outcome", f"one of {list(DEAL_OUTCOMES)}",
                                         f"{int(bad.sum())} other values", deals.loc[bad]))
    unknown = ~deals["lead_id"].isin(lead_ids)
    if unknown.any():
        raise DataContractError(contract_message(source, "lead_id", "ids present in the leads table",
                                         f"{int(unknown.sum())} deals of unknown leads", deals.loc[unknown]))
    if "amount" in deals:
        amount = pd.to_numeric(deals["amount"], errors="coerce")
        negative = amount < 0
        if negative.any():
            raise DataContractError(contract_message(source, "amount", "non-negative amounts",
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
        # A check, not a result: DuckDB may hold what it likes up to this (it spills beyond), so the
        # check's memory stays flat however long the log is.
        con.execute(f"SET memory_limit = '{CHECK_MEMORY_LIMIT}'")
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
        checks = [(column, expectation, condition.replace("{type}", id_type[0] if id_type else "VARCHAR"))
                  for column, expectation, condition in checks]
        # One scan of the log for every check (a 20M-event file is read once, not three times).
        counts = con.execute("SELECT " + ", ".join(f"count(*) FILTER (WHERE {condition})" for _, _, condition in checks)
                             + " FROM contract_events").fetchall()[0]
        for (column, expectation, condition), count in zip(checks, counts):
            if count:
                rows = con.sql(f"SELECT lead_id, occurred_at, event_type FROM contract_events "
                               f"WHERE {condition} LIMIT 5").df()
                raise DataContractError(contract_message(source, column, expectation, f"{count} rows do not", rows))


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


def parse_timestamps(values: pd.Series, *, source: str, column: str, frame: pd.DataFrame) -> pd.Series:
    """Parse to naive UTC ``datetime64``; refuse unparsable values with example rows."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
        bad = parsed.isna() & values.notna()
        if bad.any():
            raise DataContractError(contract_message(source, column, "a timestamp such as 2025-03-01 12:00:00",
                                             f"{int(bad.sum())} unparsable values", frame.loc[bad]))
    parsed = naive_utc(parsed)
    missing = parsed.isna()
    if missing.any():
        raise DataContractError(contract_message(source, column, "a timestamp in every row",
                                         f"{int(missing.sum())} empty values", frame.loc[missing]))
    return parsed.astype("datetime64[ns]")


def _require_columns(frame: pd.DataFrame, columns, source: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataContractError(f"{source}: missing column(s) {missing}; expected {list(columns)}. "
                                f"Columns found: {list(frame.columns)}.")


def _require_present(frame: pd.DataFrame, column: str, source: str) -> None:
    missing = frame[column].isna()
    if missing.any():
        raise DataContractError(contract_message(source, column, "a value in every row",
                                         f"{int(missing.sum())} empty values", frame.loc[missing]))


def _refuse_future(frame: pd.DataFrame, column: str, source: str, now) -> None:
    now = naive_utc(now) if now is not None else utc_now()
    future = frame[column] > now
    if future.any():
        raise DataContractError(contract_message(source, column, f"no timestamp in the future (after {now})",
                                         f"{int(future.sum())} rows do not", frame.loc[future]))


def contract_message(source: str, column: str, expected: str, got: str, rows: pd.DataFrame) -> str:
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
