"""init-config: guess each column's role in an unknown export and write a commented project config."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crm.config import DEFAULT_MISSING_VALUES
from features.fit import BOOLEAN_VALUES

#: Two-valued columns whose values read as an outcome, and the positive value of each pair.
LABEL_PAIRS = ({"1", "0"}, {"yes", "no"}, {"true", "false"}, {"won", "lost"}, {"converted", "not converted"})
POSITIVE_VALUES = ("1", "yes", "true", "won", "converted")
#: Words in a column name that suggest an outcome, an identifier, a creation date or personal data.
LABEL_WORDS = re.compile(r"convert|outcome|target|label|\bwon\b|\bwin\b|closed.?won|is.?customer", re.I)
ID_WORDS = re.compile(r"(^|[^a-z])id($|[^a-z])|uuid|guid|key|number|\bno\b", re.I)
CREATED_WORDS = re.compile(r"creat|sign.?up|register|first.?seen|submitted|added", re.I)
JOB_TITLE_WORDS = re.compile(r"title|job|position|designation", re.I)
PII_WORDS = re.compile(r"name|phone|mobile|\bcell\b|address|street|zip|postcode|e-?mail|\bip\b|birth|passport|ssn",
                       re.I)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[\d\s().\-/]{7,}$")


@dataclass(frozen=True)
class ColumnRole:
    """The role guessed for one column and why, as init-config writes it into the config's comments."""

    column: str
    role: str  # id, created_at, label, email, job_title, categorical, numeric, numeric_raw, boolean, pii, ignore
    reason: str


def infer_roles(frame: pd.DataFrame, *, missing_values=DEFAULT_MISSING_VALUES) -> list[ColumnRole]:
    """One :class:`ColumnRole` per column of ``frame``, in its order.

    Placeholder values (``missing_values``, e.g. "Select") count as missing while guessing.
    """
    tokens = {str(token).strip().lower() for token in missing_values}
    roles, taken = [], set()
    profiles = {column: _profile(frame[column], tokens) for column in frame.columns}
    chosen = {
        "id": _pick(profiles, lambda p: p["unique"] and p["kind"] in ("text", "integer"), ID_WORDS),
        "created_at": _pick(profiles, lambda p: p["kind"] == "date", CREATED_WORDS),
        "label": _pick(profiles, lambda p: p["label_pair"] is not None, LABEL_WORDS, name_required=True),
    }
    for column in frame.columns:
        profile = profiles[column]
        role = next((name for name, pick in chosen.items() if pick == column), None)
        if role == "id":
            reason = f"unique in every row ({profile['kind']}): the lead identifier"
        elif role == "created_at":
            reason = "dates; the name says creation: used to split by time"
        elif role == "label":
            reason = f"two values {sorted(profile['label_pair'])} and an outcome-like name: the label"
        else:
            role, reason = _attribute_role(column, profile, taken)
        taken.add(role)
        roles.append(ColumnRole(column=column, role=role, reason=reason))
    return roles


def write_config(frame: pd.DataFrame, *, leads_path, out_path, missing_values=DEFAULT_MISSING_VALUES) -> str:
    """The text of a commented project config for ``frame`` (read from ``leads_path``)."""
    roles = infer_roles(frame, missing_values=missing_values)
    by_role = {}
    for item in roles:
        by_role.setdefault(item.role, []).append(item)
    single = {role: by_role.get(role, [None])[0] for role in ("id", "created_at", "label", "email", "job_title")}
    leads_path, out_path = Path(leads_path).resolve(), Path(out_path).resolve()
    relative = os.path.relpath(leads_path, out_path.parent)
    placeholders = _placeholders_found(frame, missing_values)
    model_name = re.sub(r"[^a-z0-9]+", "-", leads_path.stem.lower()).strip("-") + "-conversion"

    lines = [
        f"# Project config for {leads_path.name}, written by `python -m training init-config`.",
        "# Every role below is a guess from the data, with the reason beside it: check each one,",
        "# move columns between lists, then train with `python -m training train --config <this file>`.",
        "",
        "[data]",
        f"leads = {_q(str(relative))}  # relative paths are relative to this file",
        "# events = \"events.parquet\"  # event log (lead_id, occurred_at, event_type); needs deals and created_at",
        "# deals = \"deals.csv\"        # closed deals (lead_id, closed_at, outcome won/lost) instead of a label",
        "# delimiter = \",\"            # detected from the file when left out",
        "# decimal = \",\"              # decimal mark, when numbers read 1.234,5 (default \".\": 1,234.5)",
        "",
        "[columns]",
        _single_line("id", single["id"], "the lead identifier: unique, never a feature"),
        _single_line("created_at", single["created_at"],
                     "no creation date found: the split is stratified, not by time"),
        _single_line("label", single["label"], "no outcome column found: name it here, or give [data] deals"),
    ]
    if single["label"] is not None:
        pair = _profile(frame[single["label"].column], set(missing_values))["label_pair"]
        positive = [value for value in pair if value in POSITIVE_VALUES]
        lines += [f"positive = {_list(positive)}  # label values that mean converted",
                  f"negative = {_list(sorted(pair - set(positive)))}  # label values that mean not converted"]
    lines += [
        _single_line("email", single["email"], "no e-mail column: no business/free domain feature"),
        _single_line("job_title", single["job_title"], "no job-title column: no seniority and function features"),
        "# Values that mean 'not filled in' (compared lower-cased)."
        + (f" Found in this file: {', '.join(repr(v) for v in placeholders)}." if placeholders else ""),
        f"missing_values = {_list(list(missing_values))}",
        "",
        "[roles]",
    ]
    for role, meaning in (
        ("categorical", "text with few distinct values: one category each (rare ones pooled)"),
        ("numeric", "non-negative numbers, counts and amounts: used as log(1 + x)"),
        ("numeric_raw", "numbers that can be negative: used as they are"),
        ("boolean", "yes/no, true/false or 1/0 columns"),
        ("pii", "personal data: dropped on reading, never a feature, never logged"),
        ("ignore", "not used: identifiers, constants, free text, other dates"),
    ):
        lines.append(f"# {meaning}")
        items = by_role.get(role, [])
        lines.append(f"{role} = [" + ("" if items else "]"))
        lines += [f"    {_q(item.column)},  # {item.reason}" for item in items]
        if items:
            lines.append("]")
    lines += [
        "",
        "[leakage]",
        "# Columns written after the outcome (sales-staff notes, tags, lead-quality grades, scores given",
        "# after a call): a model using them looks brilliant and is useless. List them here: they are",
        "# excluded. Any column that alone reaches max_auc on the training split is excluded too,",
        "# with a warning naming it, unless listed under keep.",
        "post_outcome = []",
        "max_auc = 0.95",
        "keep = []",
        "",
        "[training]",
        "min_positives = 40  # refuse to train with fewer converted examples",
        "min_negatives = 40  # ... or fewer non-converted ones",
        "min_split_positives = 20  # warn when a split has fewer converted examples",
        "split_shares = [0.6, 0.2, 0.2]  # train, calibration, test",
        "seed = 0",
        f"model_name = {_q(model_name)}",
        "",
    ]
    return "\n".join(lines)


def _attribute_role(column, profile, taken: set):
    n, distinct, kind = profile["present"], profile["distinct"], profile["kind"]
    if n == 0:
        return "ignore", "always empty"
    if distinct == 1:
        return "ignore", "a single value: carries no information"
    if profile["email_share"] >= 0.5:
        if "email" not in taken:
            return "email", "e-mail addresses (PII): only business vs. free domain becomes a feature"
        return "pii", "e-mail addresses"
    if PII_WORDS.search(str(column)) and kind == "text" and distinct > 0.2 * n:
        return "pii", "personal data by its name and many distinct values"
    if profile["phone_share"] >= 0.8 and distinct > 0.5 * n:
        return "pii", "phone-number-like values"
    if profile["unique"] and kind in ("text", "integer"):
        return "ignore", "unique in every row: another identifier"
    if kind == "date":
        return "ignore", "dates other than the creation date: possibly written after the outcome"
    if kind == "text" and "job_title" not in taken and JOB_TITLE_WORDS.search(str(column)) and distinct > 20:
        return "job_title", f"free-text job titles ({distinct} distinct): parsed into seniority and function"
    if profile["boolean"]:
        return "boolean", f"two values {sorted(profile['values'])}"
    if kind in ("integer", "float"):
        if profile["min"] >= 0:
            return "numeric", f"numbers {profile['min']:g}..{profile['max']:g}, {distinct} distinct"
        return "numeric_raw", f"numbers {profile['min']:g}..{profile['max']:g}, some negative"
    if distinct > max(100, 0.5 * n):
        return "ignore", f"free text: {distinct} distinct values in {n} rows"
    return "categorical", f"text, {distinct} distinct values"


def _profile(values: pd.Series, tokens: set) -> dict:
    text = values.dropna().astype(str).str.strip()
    text = text[~text.str.lower().isin(tokens)]
    n, distinct = len(text), text.nunique()
    profile = {"present": n, "distinct": distinct, "unique": n > 1 and distinct == n and n == len(values),
               "values": set(text.str.lower().unique()[:3]), "label_pair": None, "boolean": False,
               "email_share": 0.0, "phone_share": 0.0, "kind": "text"}
    if n == 0:
        return profile
    lowered = set(text.str.lower().map(lambda v: re.sub(r"\.0$", "", v)).unique()[:3])
    if len(lowered) == 2:
        profile["label_pair"] = next((pair for pair in LABEL_PAIRS if lowered == pair), None)
        profile["boolean"] = lowered <= set(BOOLEAN_VALUES)
    numbers = pd.to_numeric(values, errors="coerce") if pd.api.types.is_numeric_dtype(values) \
        else pd.to_numeric(text, errors="coerce")
    if pd.api.types.is_numeric_dtype(values) or numbers.notna().mean() == 1.0:
        numbers = numbers.dropna()
        is_int = bool(np.all(np.mod(numbers, 1) == 0))
        profile.update(kind="integer" if is_int else "float", min=float(numbers.min()), max=float(numbers.max()))
        return profile
    sample = text.sample(min(n, 2000), random_state=0)
    profile["email_share"] = float(sample.str.match(EMAIL).mean())
    profile["phone_share"] = float(sample.str.match(PHONE).mean())
    if sample.str.contains(r"\d").mean() > 0.9 and profile["email_share"] < 0.5:
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
        if parsed.notna().mean() >= 0.95:
            profile["kind"] = "date"
    return profile


def _pick(profiles: dict, fits, words: re.Pattern, *, name_required: bool = False):
    """The first fitting column whose name matches ``words``, else the first fitting one unless a name is required."""
    fitting = [column for column, profile in profiles.items() if fits(profile)]
    named = [column for column in fitting if words.search(str(column))]
    if named:
        return named[0]
    return None if name_required or not fitting else fitting[0]


def _placeholders_found(frame: pd.DataFrame, missing_values) -> list[str]:
    tokens = {str(token).strip().lower() for token in missing_values if str(token).strip()}
    found = set()
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            values = frame[column].dropna().astype(str).str.strip()
            found |= set(values[values.str.lower().isin(tokens)].unique())
    return sorted(found)


def _single_line(key: str, item: ColumnRole | None, absent: str) -> str:
    if item is None:
        return f"# {key} = \"...\"  # {absent}"
    return f"{key} = {_q(item.column)}  # {item.reason}"


def _q(text: str) -> str:
    """A TOML basic string (JSON escapes are valid TOML escapes)."""
    return json.dumps(str(text), ensure_ascii=False)


def _list(values) -> str:
    return "[" + ", ".join(_q(value) for value in values) + "]"
