"""The data contract: validate the leads, events and deals tables and refuse bad input clearly."""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from features.column_types import (DataContractError, decide_timestamp_format,
                                    parse_timestamp_column, relation_with_timestamps, same_id_type)
from features.timing import naive_utc, utc_now

LEAD_COLUMNS = ("lead_id", "created_at")
EVENT_COLUMNS = ("lead_id", "occurred_at", "event_type")
DEAL_COLUMNS = ("lead_id", "closed_at", "outcome")
DEAL_OUTCOMES = ("won", "lost")
#: DuckDB's memory for checking an event log (it streams the log; the leads' ids are its only state).
CHECK_MEMORY_LIMIT = "128MB"


__all__ = ["DataContractError"]  # defined beside the column types, raised by both


def validate_leads(leads: pd.DataFrame, *, source="leads", required=(), now=None, dated=True,
                   date_format=None) -> pd.DataFrame:
    """Check the leads table and return a copy with ``created_at`` parsed (naive UTC).

    ``required`` adds attribute columns the model needs on top of the contract's own;
    ``dated=False`` accepts a lead table without ``created_at`` (a single export with a label);
    ``date_format`` (strftime) reads a date column whose day and month order the values cannot show.
    """
    _require_rows(leads, source, "leads")
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
                                               frame=leads, date_format=date_format)
        _refuse_future(leads, "created_at", source, now)
    return leads


def validate_deals(deals: pd.DataFrame, *, lead_ids: pd.Series, source="deals", now=None,
                   date_format=None) -> pd.DataFrame:
    """Check the closed-deals table against the leads and return a parsed copy.

    Ids match the leads' as text: a deal of ``7`` belongs to lead ``"7"``, never to ``"007"``.
    """
    _require_rows(deals, source, "deals")
    _require_columns(deals, DEAL_COLUMNS, source)
    deals = deals.copy()
    deals["lead_id"] = same_id_type(deals["lead_id"], pd.Series(lead_ids))
    deals["closed_at"] = parse_timestamps(deals["closed_at"], source=source, column="closed_at", frame=deals,
                                          date_format=date_format)
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
        unreadable = (amount.isna() & deals["amount"].notna() & deals["amount"].astype("string").str.strip().ne("")
                      ) | np.isinf(amount.fillna(0.0))
        if unreadable.any():
            raise DataContractError(contract_message(source, "amount", "numbers (or nothing)",
                                                     f"{int(unreadable.sum())} other values", deals.loc[unreadable]))
        negative = amount < 0
        if negative.any():
            raise DataContractError(contract_message(source, "amount", "non-negative amounts",
                                             f"{int(negative.sum())} negative", deals.loc[negative]))
        deals["amount"] = amount
    _refuse_future(deals, "closed_at", source, now)
    return deals


def validate_events(events, *, lead_ids: pd.Series, source=None, now=None, date_format=None) -> None:
    """Check an event log (a frame or a CSV/Parquet path) without loading it into pandas.

    Refuses an empty log, missing columns, unparsable, empty or future timestamps and events of
    unknown leads. Ids are compared as text, as the feature builder joins them.
    """
    source = source or (str(events) if isinstance(events, (str, os.PathLike)) else "events")
    now = naive_utc(now) if now is not None else utc_now()
    with duckdb.connect() as con:
        # A check, not a result: DuckDB may hold what it likes up to this (it spills beyond), so the
        # check's memory stays flat however long the log is.
        con.execute(f"SET memory_limit = '{CHECK_MEMORY_LIMIT}'")
        relation = event_relation(con, events, source=source, date_format=date_format)
        con.register("contract_events", relation)
        if not con.execute("SELECT count(*) FROM contract_events").fetchall()[0][0]:
            raise DataContractError(f"{source}: the events table has no rows; expected at least one event "
                                    "(leave --events out if there is no event log).")
        con.register("contract_leads", pd.DataFrame({"lead_id": pd.Series(lead_ids).drop_duplicates()}))
        event_type = str(relation.select("lead_id").types[0])
        lead_type = str(con.sql("SELECT lead_id FROM contract_leads").types[0])
        known = ("lead_id IN (SELECT lead_id FROM contract_leads)" if event_type == lead_type else
                 "CAST(lead_id AS VARCHAR) IN (SELECT CAST(lead_id AS VARCHAR) FROM contract_leads)")
        checks = (
            ("occurred_at", "a timestamp in every row", "occurred_at IS NULL"),
            ("occurred_at", f"no timestamp in the future (after {now})", f"occurred_at > TIMESTAMP '{now}'"),
            # Joined as the feature builder joins: as text when the tables' id types differ.
            ("lead_id", "ids present in the leads table", f"coalesce(NOT ({known}), true)"),
        )
        # One scan of the log for every check (a 20M-event file is read once, not three times).
        counts = con.execute("SELECT " + ", ".join(f"count(*) FILTER (WHERE {condition})" for _, _, condition in checks)
                             + " FROM contract_events").fetchall()[0]
        for (column, expectation, condition), count in zip(checks, counts):
            if count:
                # Row numbers only now: numbering millions of rows on every check would cost seconds.
                rows = con.sql(f"SELECT * FROM (SELECT row_number() OVER () AS contract_row, lead_id, occurred_at, "
                               f"event_type FROM contract_events) WHERE {condition} ORDER BY contract_row "
                               "LIMIT 5").df()
                rows = rows.set_index(rows.pop("contract_row") - 1)
                raise DataContractError(contract_message(source, column, expectation, f"{count} rows do not", rows))


def event_relation(con: duckdb.DuckDBPyConnection, events, *, source=None,
                   date_format=None) -> duckdb.DuckDBPyRelation:
    """A DuckDB relation over an event log given as a DataFrame or a CSV/Parquet path.

    ``occurred_at`` comes back as naive-UTC ``TIMESTAMP``, its format decided once from the whole
    column (the decision for an unchanged file is remembered); a CSV is read as text, so ids keep
    their exact spelling. Refuses a missing file, another file type, a file that is not UTF-8
    text, or a log without the contract's columns.
    """
    key = None
    if isinstance(events, pd.DataFrame):
        relation, source = con.from_df(events), source or "events"
    elif isinstance(events, (str, os.PathLike)):
        path = Path(events)
        source = source or str(path)
        if not path.exists():
            raise DataContractError(f"{path}: no such file.")
        if path.is_dir():
            raise DataContractError(f"{path}: is a folder; expected a .csv or .parquet file.")
        suffix = path.suffix.lower()
        try:
            if suffix in (".parquet", ".pq"):
                relation = con.read_parquet(str(path))
            elif suffix == ".csv":
                check_text_encoding(path, source=source)
                relation = con.read_csv(str(path), all_varchar=True)
            else:
                raise DataContractError(f"{path}: expected a .csv or .parquet file, got {suffix!r}.")
        except duckdb.Error as error:
            raise DataContractError(f"{source}: could not read the events file: {_first_line(error)}") from None
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    else:
        raise TypeError(f"An event log must be a DataFrame or a path. Got {type(events).__name__} instead.")
    require_event_columns(relation.columns, source)
    given, fmt = _DECIDED.get(key, (None, None)) if key else (None, None)
    if fmt is not None and date_format not in (None, given):
        fmt = None  # decided under another date format: decide again
    if fmt is None:
        try:
            fmt = decide_timestamp_format(con, relation, "occurred_at", source=source, date_format=date_format)
        except duckdb.Error as error:
            raise DataContractError(f"{source}: could not read the events file: {_first_line(error)}") from None
        if key:
            _DECIDED.clear()  # one event log per run: remember the latest decision only
            _DECIDED[key] = (date_format, fmt)
    return relation_with_timestamps(con, relation, "occurred_at", fmt)


#: The occurred_at format decided for the latest event file, by (path, mtime, size): (date_format, format).
#: Readers after the contract (feature builder, data end) reuse it without being told the date format.
_DECIDED: dict[tuple, tuple] = {}


def encoding_label(encoding: str) -> str:
    """An encoding as a user names it: Python's ``utf-8-sig`` (UTF-8, a byte-order mark allowed) is UTF-8."""
    return "utf-8" if encoding.lower().replace("_", "-") == "utf-8-sig" else encoding


def check_text_encoding(path: Path, *, source: str, encoding: str = "utf-8") -> None:
    """Refuse a file that is not text in ``encoding``, naming the encoding it looks like."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    found = sniff_encoding(head)
    if found is None:
        try:
            head.decode(encoding)
            return
        except UnicodeDecodeError as error:
            if error.start >= len(head) - 4:  # a character cut by the sample's end
                return
            found = "Windows-1252 / Latin-1" if _decodes(head, "cp1252") else "not text"
    raise DataContractError(f"{source}: expected text encoded as {encoding_label(encoding)}; found {found}. Save the "
                            "export as UTF-8 (or set [data] encoding in the config).")


def sniff_encoding(head: bytes) -> str | None:
    """The encoding a file's first bytes reveal (byte-order mark, NUL bytes, known binary headers), or None."""
    for mark, name in ((b"\xff\xfe\x00\x00", "UTF-32 (byte-order mark)"), (b"\x00\x00\xfe\xff", "UTF-32 (byte-order mark)"),
                       (b"\xff\xfe", "UTF-16 (byte-order mark)"), (b"\xfe\xff", "UTF-16 (byte-order mark)")):
        if head.startswith(mark):
            return name
    for magic, name in ((b"PAR1", "a Parquet file"), (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx?)"),
                        (b"%PDF", "a PDF file"), (b"\xd0\xcf\x11\xe0", "an old Excel .xls file"),
                        (b"\x1f\x8b", "a gzip archive")):
        if head.startswith(magic):
            return f"binary data ({name})"
    if b"\x00" in head:
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if max(even, odd) > len(head) // 4:
            return "UTF-16 without a byte-order mark"
        return "binary data (NUL bytes)"
    return None


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__


def require_event_columns(columns, source) -> None:
    """Refuse an event log without the contract's columns, naming what is missing and what is there."""
    missing = [column for column in EVENT_COLUMNS if column not in columns]
    if missing:
        raise DataContractError(
            f"{source}: missing column(s) {missing}; the event log needs {list(EVENT_COLUMNS)}. "
            f"Columns found: {sorted(columns)}.")


def parse_timestamps(values: pd.Series, *, source: str, column: str, frame: pd.DataFrame,
                     date_format=None) -> pd.Series:
    """Parse to naive UTC ``datetime64``, one format decided for the whole column; refuse what does not fit."""
    parsed = parse_timestamp_column(values, source=source, column=column, date_format=date_format)
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


def _require_rows(frame: pd.DataFrame, source: str, table: str) -> None:
    if not len(frame):
        raise DataContractError(f"{source}: the {table} table has no rows (a header only, or an empty file); "
                                "expected at least one row.")


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
    """One error shape on one line: where, what was expected, what arrived, and a few offending rows (masked)."""
    return bounded(f"{source}: column {column!r} must hold {expected}; {got}. Example rows: {example_rows(rows)}")


#: Longest error message: an export read the wrong way must not pour its content into a log.
MAX_MESSAGE_CHARS = 800
#: Column names whose values are personal data, masked in every message (compared lower-cased).
PII_COLUMN_TOKENS = ("email", "e-mail", "mail", "name", "phone", "mobile", "tel", "fax", "contact", "address",
                     "street", "zip", "postcode", "birth", "ssn", "iban")
EMAIL_PATTERN = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
#: A URL with a scheme (``postgresql://crm:pw@db.example.com:5432/crm``) and its password.
URL_PATTERN = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
URL_PASSWORD = re.compile(r"^([^:/]+://[^:/@]+):[^@/]*@")
PHONE_PATTERN = re.compile(r"(?<![\w])(?:\+\d[\d\s().-]{6,}\d|\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4})(?![\w])")


def example_rows(rows: pd.DataFrame, *, limit: int = 5) -> str:
    """``row 3: lead_id=L-1, created_at='x'; row 9: ...`` with personal data masked, each value cut short."""
    masked = _without_pii(rows.head(limit))
    parts = []
    for index, row in masked.iterrows():
        label = f"row {index + 1}" if isinstance(index, (int, np.integer)) else f"row {index}"
        cells = ", ".join(f"{column}={_short(value)}" for column, value in row.items())
        parts.append(f"{label}: {cells}")
    return "; ".join(parts) or "(none)"


def mask_personal_data(text: str) -> str:
    """E-mail addresses and phone numbers in free text replaced by placeholders.

    A URL's ``user@host`` is not an e-mail address: it stays, so a user sees which server failed,
    with its password replaced by ``***``.
    """
    parts, last = [], 0
    for url in URL_PATTERN.finditer(text):
        parts += [_mask_free_text(text[last:url.start()]), URL_PASSWORD.sub(r"\1:***@", url.group())]
        last = url.end()
    return "".join([*parts, _mask_free_text(text[last:])])


def _mask_free_text(text: str) -> str:
    return PHONE_PATTERN.sub("<phone>", EMAIL_PATTERN.sub("<e-mail>", text))


def bounded(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """A message safe to print or log: one line, personal data masked, at most ``limit`` characters."""
    text = mask_personal_data(" ".join(str(text).split()))
    return text if len(text) <= limit else text[:limit - 25] + f" ... ({len(text):,} chars)"


def _short(value, width: int = 40) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _without_pii(rows: pd.DataFrame) -> pd.DataFrame:
    """Error messages end up in logs: mask columns named like personal data, and values that look like it."""
    masked = rows.copy()
    for column in masked.columns:
        if any(token in str(column).lower() for token in PII_COLUMN_TOKENS):
            masked[column] = np.where(masked[column].notna(), "<redacted>", masked[column])
        elif masked[column].dtype == object or pd.api.types.is_string_dtype(masked[column]):
            masked[column] = masked[column].map(lambda v: mask_personal_data(v) if isinstance(v, str) else v)
    return masked
