"""Reading CRM exports: CSV in its many dialects and Parquet, into pandas, then through the contract."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from features.contract import DataContractError, contract_message, validate_deals, validate_events, validate_leads

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
CSV_DELIMITERS = (",", ";", "\t", "|")


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
        raise DataContractError(contract_message(
            source, column, f"numbers with {decimal!r} as decimal mark (thousands separators are fine; values "
            "listed as missing tokens in the config count as missing; set [data] decimal for the other "
            "convention)", f"{int(bad.sum())} other values such as {text[bad].drop_duplicates().head(3).tolist()}",
            values[bad].to_frame()))
    return numbers.astype(float)


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
