"""Reading CRM exports: CSV in its many dialects and Parquet, into pandas, then through the contract."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from features.column_types import decide_decimal, decimal_examples
from features.contract import (DataContractError, check_text_encoding, contract_message, encoding_label,
                               sniff_encoding, validate_deals, validate_events, validate_leads)
from features.spec import FeatureSpec

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
CSV_DELIMITERS = (",", ";", "\t", "|")


def read_table(path, *, columns=None, delimiter=None, encoding="utf-8-sig", decimal=None, text_columns=(),
               table=None) -> pd.DataFrame:
    """Read a CSV or Parquet file into pandas, by its suffix.

    CSV exports come in many dialects: the delimiter (comma, semicolon, tab or pipe) is detected
    unless given; a byte-order mark, CRLF line ends and quoted fields are handled; the empty
    column that a delimiter at the end of every line makes is dropped. Every cell is read as text
    and each column's type is decided once: a column whose every value is a number (thousands
    separators allowed) becomes numeric, unless it is one of ``text_columns`` (ids) or a value
    has a leading zero (``007`` is a code, not seven). ``decimal`` says which convention, ``"."``
    (``"1,234.5"``) or ``","`` (``"1.234,5"``); None detects it from the file's values and refuses a
    file that shows both. The decision is kept in ``frame.attrs["decimal"]``. A file without rows
    is refused, naming ``table``.
    """
    path = Path(path)
    if not path.exists():
        raise DataContractError(f"{path}: no such file.")
    if path.is_dir():
        raise DataContractError(f"{path}: is a folder; expected a .csv or .parquet file.")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path, columns=columns)
        except Exception as error:  # pyarrow raises its own types for a file that is not Parquet
            raise DataContractError(f"{path}: could not read it as Parquet: {str(error)[:200]}") from None
        frame.attrs["decimal"] = decimal or "."
    elif suffix in CSV_SUFFIXES:
        frame = _read_csv(path, columns=columns, delimiter=delimiter, encoding=encoding, decimal=decimal,
                          text_columns=text_columns)
    else:
        raise DataContractError(f"{path}: expected a .csv or .parquet file, got {suffix!r}.")
    if not len(frame):
        raise DataContractError(f"{path}: the {table or 'input'} table has no rows (a header only, or an empty "
                                "file); expected at least one row.")
    return frame


def parquet_problem(path) -> str | None:
    """Why a Parquet file, or any data file of a Parquet folder, cannot be read (empty, cut short, not Parquet), else None.

    Only each file's footer is read (pyarrow), so a folder of many files is checked in milliseconds. In a
    folder, names starting with ``_`` or ``.`` (``_SUCCESS``, temp files) are skipped, as Spark skips them.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    files = [path] if path.is_file() else sorted(
        file for file in path.rglob("*") if file.is_file()
        and not any(part.startswith(("_", ".")) for part in file.relative_to(path).parts))
    for file in files:
        try:
            if file.stat().st_size == 0:
                return f"{file}: the file is empty; expected Parquet."
            pq.ParquetFile(file).metadata
        except Exception as error:  # pyarrow raises its own types for a file that is not Parquet
            text = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
            return f"{file}: not a readable Parquet file ({text})."
    return None


def load_crm(leads_path, events_path=None, deals_path=None, *, now=None, date_format=None):
    """Read and validate the three tables; returns ``(leads, events, deals)``.

    The event log stays where it is (a path) and is checked by DuckDB, so a 20-million-row file
    never has to fit in pandas. Missing optional tables come back as None. Ids are read as text
    from CSV; the contract's numeric columns must hold numbers.
    """
    frame = read_table(leads_path, text_columns=("lead_id",), table="leads")
    leads = validate_leads(frame, source=str(leads_path), now=now, date_format=date_format)
    leads = read_contract_numbers(leads, source=str(leads_path), decimal=frame.attrs.get("decimal", "."))
    deals = None
    if deals_path is not None:
        deals = validate_deals(read_table(deals_path, text_columns=("lead_id",), table="deals"),
                               lead_ids=leads["lead_id"], source=str(deals_path), now=now, date_format=date_format)
    if events_path is not None:
        validate_events(events_path, lead_ids=leads["lead_id"], source=str(events_path), now=now,
                        date_format=date_format)
    return leads, events_path, deals


def contract_numbers(spec: FeatureSpec | None = None) -> tuple[tuple, tuple]:
    """``(columns, missing tokens)`` of a lead table's numbers: the spec's numeric columns and its placeholders.

    The spec's placeholders ("n/a", "null", ...) are missing; "NaN" written as a value is not.
    """
    spec = spec or FeatureSpec()
    return (*spec.numeric_columns, *spec.raw_numeric_columns), tuple(sorted(set(spec.missing_tokens) - {"nan"}))


def read_contract_numbers(leads: pd.DataFrame, *, source: str, spec: FeatureSpec | None = None,
                          decimal: str | None = None) -> pd.DataFrame:
    """``leads`` with the spec's numeric columns read for certain: one rule for every reader of a lead table.

    Files, database tables, Parquet of text columns and Spark's buckets all come through here, so a
    value that is not a number is refused with the same line whatever carried it. ``decimal`` None
    decides the mark from the text columns' own values (``decide_decimal``: a table whose numbers
    read two ways stops and asks). The columns are replaced in ``leads`` (a frame the reader made).
    """
    columns, missing_tokens = contract_numbers(spec)
    present = [column for column in columns if column in leads.columns]
    if decimal is None:
        decimal = decide_decimal([leads[column].astype("string").str.strip() for column in present
                                  if not pd.api.types.is_numeric_dtype(leads[column])], source=source)
    for column in present:
        leads[column] = parse_numbers(leads[column], source=source, column=column, missing_tokens=missing_tokens,
                                      decimal=decimal)
    leads.attrs["decimal"] = decimal
    return leads


def parse_numbers(values: pd.Series, *, source: str, column: str, missing_tokens=(), decimal=".") -> pd.Series:
    """Numbers from a column of a lead table; thousands separators are removed, placeholders are missing.

    Refuses values that are neither a number nor a missing token, and infinities and ``NaN``
    written as values, with example rows, instead of silently turning them into missing values.
    """
    if pd.api.types.is_bool_dtype(values):
        raise DataContractError(f"{source}: column {column!r} must hold numbers; it holds true/false values. "
                                "Declare it boolean instead.")
    decimal = decimal or "."
    numbers, refused = _numbers_and_refused(values, decimal=decimal, missing_tokens=missing_tokens)
    if refused.any():
        raise DataContractError(unreadable_numbers(source, column, decimal, int(refused.sum()), values[refused],
                                                   values[refused].to_frame()))
    return numbers


def number_findings(part: pd.DataFrame, *, columns, missing_tokens=(), limit: int = 5) -> pd.DataFrame:
    """What :func:`parse_numbers` finds in one part of a lead table (a Spark partition), to be combined by
    :func:`check_number_findings`: each column's decimal-mark examples and, under either mark, the count
    and first ``limit`` values it refuses with their ``lead_id``. One row per finding; every value text.
    """
    rows = []
    for column in columns:
        values = part[column]
        if not pd.api.types.is_numeric_dtype(values):
            rows += [("example", "", column, example, "", 0)
                     for example in decimal_examples(values.astype("string").str.strip()) if example is not None]
        for decimal in (".", ","):
            refused = _numbers_and_refused(values, decimal=decimal, missing_tokens=missing_tokens)[1]
            count = int(refused.sum())
            rows += [("refused", decimal, column, str(value), str(lead_id), count if i == 0 else 0)
                     for i, (value, lead_id) in enumerate(zip(values[refused].head(limit),
                                                              part.loc[refused, "lead_id"].head(limit)))]
    return pd.DataFrame(rows, columns=["finding", "decimal", "column", "value", "lead_id", "count"])


def check_number_findings(findings: pd.DataFrame, *, source: str, columns, decimal: str | None = None) -> str:
    """The decimal mark of a lead table from every part's :func:`number_findings`; raises as ``parse_numbers``
    and ``decide_decimal`` would over the whole table (example rows named by ``lead_id``)."""
    examples = findings.loc[findings["finding"].eq("example"), "value"]
    decimal = decide_decimal([examples.astype("string")], source=source, configured=decimal)
    refused = findings[findings["finding"].eq("refused") & findings["decimal"].eq(decimal)]
    for column in columns:
        mine = refused[refused["column"].eq(column)]
        if len(mine):
            rows = pd.DataFrame({column: mine["value"].to_numpy()},
                                index=[f"with lead_id {lead_id}" for lead_id in mine["lead_id"]])
            raise DataContractError(unreadable_numbers(source, column, decimal, int(mine["count"].sum()),
                                                       mine["value"], rows))
    return decimal


def unreadable_numbers(source: str, column: str, decimal: str, count: int, values: pd.Series,
                       rows: pd.DataFrame) -> str:
    """The one line refusing a number column's unreadable values, whichever reader found them."""
    if pd.api.types.is_numeric_dtype(values):
        return contract_message(source, column, "finite numbers", f"{count} infinite values", rows)
    shown = values.astype("string").str.strip().drop_duplicates().head(3).tolist()
    return contract_message(
        source, column, f"numbers with {decimal!r} as decimal mark (thousands separators are fine; values listed as "
        "missing tokens in the config count as missing; set [data] decimal for the other convention)",
        f"{count} other values such as {shown}", rows)


def _numbers_and_refused(values: pd.Series, *, decimal: str, missing_tokens=()) -> tuple[pd.Series, pd.Series]:
    """The rule itself: ``(numbers, refused)``, where refused marks values neither a number nor a missing token.

    ``to_numeric`` only sees text ``_plain_numbers`` made plain: what it cannot read stays refused,
    never a silent missing value.
    """
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype(float)
        return numbers, pd.Series(np.isinf(numbers.to_numpy()), index=values.index)
    text = values.astype("string").str.strip()
    missing = text.isna() | text.str.lower().isin(set(missing_tokens) | {""})
    numbers = pd.to_numeric(_plain_numbers(text, decimal).where(~missing), errors="coerce")
    refused = (numbers.isna() | np.isinf(numbers.fillna(0.0))) & ~missing
    return numbers.astype(float), refused.fillna(False).astype(bool)


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


def _read_csv(path: Path, *, columns, delimiter, encoding, decimal, text_columns) -> pd.DataFrame:
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if not head.strip():
        raise DataContractError(f"{path}: the file is empty; expected a header line and rows.")
    found = sniff_encoding(head)
    if found is not None and not (found.startswith("UTF-16") and "16" in encoding) \
            and not (found.startswith("UTF-32") and "32" in encoding):
        check_text_encoding(path, source=str(path), encoding=encoding)  # raises, naming what it found
    try:
        with open(path, encoding=encoding, newline="") as handle:
            sample = handle.read(1 << 16)
    except UnicodeDecodeError:
        check_text_encoding(path, source=str(path), encoding=encoding)
        raise DataContractError(f"{path}: expected text encoded as {encoding_label(encoding)}. Save the export as "
                                "UTF-8 (or set [data] encoding in the config).") from None
    except LookupError:
        raise DataContractError(f"{path}: unknown encoding {encoding!r} in the config.") from None
    delimiter = delimiter or detect_delimiter(sample)
    try:
        frame = pd.read_csv(path, sep=delimiter, encoding=encoding, usecols=columns, dtype=str,
                            keep_default_na=False, na_values=[""], low_memory=False)
    except UnicodeDecodeError as error:
        raise DataContractError(f"{path}: expected text encoded as {encoding_label(encoding)}; byte {error.start} "
                                "of a later part is not. Save the export as UTF-8 (or set [data] encoding in the "
                                "config).") from None
    except (pd.errors.ParserError, ValueError) as error:
        raise DataContractError(f"{path}: could not read it as CSV with delimiter {delimiter!r}: "
                                f"{str(error)[:200]}") from None
    if len(frame):  # a header without rows (or a JSON line read as one) is refused as such by read_table
        _refuse_repeated_columns(path, sample, delimiter)
    trailing = [column for column in frame.columns
                if str(column).startswith("Unnamed: ") and frame[column].isna().all()]
    frame = frame.drop(columns=trailing)
    texts = {column: frame[column].astype("string").str.strip() for column in frame.columns
             if column not in text_columns}
    decimal = decide_decimal(texts.values(), source=str(path), configured=decimal)
    for column, text in texts.items():
        filled = text.notna() & text.ne("")
        if not filled.any() or text[filled].str.match(r"[+-]?0\d").fillna(False).any():
            continue  # empty, or zero-padded codes: text
        numbers = pd.to_numeric(_plain_numbers(text, decimal), errors="coerce")
        if numbers[filled].notna().all() and not np.isinf(numbers[filled]).any():
            frame[column] = numbers.astype(float)
    frame.attrs["decimal"] = decimal
    return frame


def _refuse_repeated_columns(path: Path, sample: str, delimiter: str) -> None:
    """A header naming a column twice is refused: pandas would rename the copy ``name.1`` and read on."""
    header = next(csv.reader(io.StringIO(sample), delimiter=delimiter), [])
    names = [name.strip() for name in header]
    repeated = {name: [i + 1 for i, other in enumerate(names) if other == name] for name in names
                if name and names.count(name) > 1}
    if repeated:
        where = "; ".join(f"{name!r} in columns {', '.join(map(str, places))}"
                          for name, places in list(repeated.items())[:3])
        raise DataContractError(f"{path}: the header names a column more than once ({where}); which copy holds the "
                                "data cannot be told. Rename or remove the copies.")


def _plain_numbers(text: pd.Series, decimal: str) -> pd.Series:
    """Numbers written with thousands separators or a decimal comma, rewritten as '1234.5'; other text as is."""
    if decimal not in (".", ","):
        raise ValueError(f"The decimal mark must be '.' or ','. Got {decimal!r} instead.")
    group = "," if decimal == "." else "."
    grouped = text.str.fullmatch(rf"[+-]?\d{{1,3}}(?:\{group}\d{{3}})+(?:\{decimal}\d+)?").fillna(False)
    plain = text.str.fullmatch(rf"[+-]?\d+(?:\{decimal}\d+)?").fillna(False)
    cleaned = text.where(~grouped.astype(bool), text.str.replace(group, "", regex=False))
    cleaned = cleaned.where(~(grouped | plain).astype(bool), cleaned.str.replace(decimal, ".", regex=False))
    # Only digits count as numbers: to_numeric would read "inf", "nan" or "1e400" as floats.
    scientific = text.str.fullmatch(r"[+-]?\d+(?:\.\d+)?[eE][+-]?\d{1,3}").fillna(False).astype(bool)
    return cleaned.where((grouped | plain).astype(bool) | scientific, "not a number")
