"""The text of a project config as init-config writes it: every guess with its reason, in TOML."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd


#: Config and folder names that say nothing about which project it is: the name is taken further up the path.
GENERIC_NAMES = frozenset({"config", "configs", "conf", "project", "projects", "settings", "lead-train", "training",
                           "lead-scoring", "data", "exports", "input", "inputs", "tmp", "home", "work", "src"})


def config_text(guess, tables, frame: pd.DataFrame, *, paths: dict, leads_path: Path, model_name: str,
                missing_values) -> str:
    """The commented TOML of a guessed project: ``guess`` (a LeadGuess), ``tables`` (a TablesGuess or None)."""
    by_role = {}
    for item in guess.roles:
        by_role.setdefault(item.role, []).append(item)
    single = {role: guess.single(role) for role in ("id", "created_at", "label", "email", "job_title")}
    placeholders = _placeholders_found(frame, missing_values)
    lines = [
        f"# Project config for {leads_path.name}, written by `python -m training init-config`.",
        "# Every role below is a guess from the data, with the reason beside it: check each one,",
        "# move columns between lists, then train with `python -m training train --config <this file>`.",
        "",
        "[data]",
        f"leads = {quote(paths['leads'])}  # relative paths are relative to this file",
        *([] if tables is not None else [
            "# events = \"events.parquet\"  # event log with the contract's names (lead_id, occurred_at, event_type);",
            "#                              # any other log: rerun init-config with --events for an [events] section",
            "# deals = \"deals.csv\"        # closed deals (lead_id, closed_at, outcome won/lost) instead of a label;",
            "#                              # any other table: rerun init-config with --deals for a [deals] section"]),
        "# delimiter = \",\"            # detected from the file when left out",
        "# decimal = \",\"              # decimal mark, when numbers read 1.234,5 (default \".\": 1,234.5)",
        "",
        "[columns]",
    ]
    if single["id"] is not None:
        lines.append(_single_line("id", single["id"], ""))
    else:
        lines += ["# No column is unique in every row: each lead's id is its row number (1 = first data row),",
                  "# the same as long as the file keeps its row order. Name an id column here when there is one.",
                  "row_number_id = true",
                  "# id = \"...\""]
    lines.append(_single_line("created_at", single["created_at"],
                              "no creation date found: the split is stratified, not by time"))
    if guess.blank_created:
        lines.append(f"undated_leads = \"leave_out\"  # {guess.blank_created:,} of {len(frame):,} leads have no "
                     "creation date: left out of training and scoring (\"refuse\": an error naming them)")
    if tables is not None and tables.deals is not None:
        lines.append("# label: none; the outcome comes from the [deals] table")
    elif guess.label is not None:
        label = guess.label
        lines += [f"label = {quote(label.column)}  # {label.reason}",
                  f"positive = {toml_list(label.positive)}  # label values that mean converted"
                  + ("" if label.sure else " (a guess: check)"),
                  f"negative = {toml_list(label.negative)}  # label values that mean not converted"]
        if label.open:
            lines.append(f"open = {toml_list(label.open)}  # values of leads still undecided: left out of training")
    else:
        lines.append("# label = \"...\"  # no outcome column chosen: name it here, or give a deals table"
                     + (f"; candidates: {', '.join(column for column, _ in guess.candidates)}"
                        if guess.candidates else ""))
    lines += [
        _single_line("email", single["email"], "no e-mail column: no business/free domain feature"),
        _single_line("job_title", single["job_title"], "no job-title column: no seniority and function features"),
        "# Values that mean 'not filled in' (compared lower-cased)."
        + (f" Found in this file: {', '.join(repr(v) for v in placeholders)}." if placeholders else ""),
        f"missing_values = {toml_list(list(missing_values))}",
        "",
        "[roles]",
    ]
    for role, meaning in (
        ("categorical", "text with few distinct values, and integer codes: one category each (rare ones pooled)"),
        ("numeric", "non-negative numbers, counts and amounts: used as log(1 + x)"),
        ("numeric_raw", "numbers that can be negative: used as they are"),
        ("boolean", "yes/no, true/false or 1/0 columns"),
        ("engagement", "summarised behaviour as numbers (visits, time on site): log(1 + x), counted as engagement"),
        ("engagement_categorical", "summarised behaviour as text (last activity): categories, counted as engagement"),
        ("pii", "personal data: dropped on reading, never a feature, never logged"),
        ("ignore", "not used: identifiers, constants, free text, other dates, other label candidates"),
    ):
        lines.append(f"# {meaning}")
        items = by_role.get(role, [])
        lines.append(f"{role} = [" + ("" if items else "]"))
        lines += [f"    {quote(item.column)},  # {item.reason}" for item in items]
        if items:
            lines.append("]")
    if tables is not None:
        lines += ["", *tables.config_lines(paths)]
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
        f"model_name = {quote(model_name)}  # registered in MLflow under this name (from this config's name or "
        "folder); each project its own",
    ]
    if tables is not None:
        lines += tables.training_lines()
    return "\n".join(lines) + "\n"


def project_model_name(config_path, *, leads_path) -> str:
    """The registered model's name for a project: its config's name, else the nearest folder with a name of its own.

    ``data/demo/config.toml`` -> ``demo-conversion``, ``data/export.toml`` -> ``export-conversion``. Never
    the lead file's name: exports whose lead table is called ``leads.csv`` each get their own model.
    """
    path = Path(config_path).resolve()
    for part in (path.stem, *(folder.name for folder in path.parents)):
        slug = _slug(part)
        if slug and slug not in GENERIC_NAMES:
            return f"{slug}-conversion"
    return f"{_slug(Path(leads_path).stem) or 'lead'}-conversion"  # a config at the root of generic folders


def _slug(text: str) -> str:
    """Lower-case letters and digits joined by hyphens: a name MLflow registers and a shell passes unquoted."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _placeholders_found(frame: pd.DataFrame, missing_values) -> list[str]:
    tokens = {str(token).strip().lower() for token in missing_values if str(token).strip()}
    found = set()
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column]):
            values = frame[column].dropna().astype(str).str.strip()
            found |= set(values[values.str.lower().isin(tokens)].unique())
    return sorted(found)


def _single_line(key: str, item, absent: str) -> str:
    if item is None:
        return f"# {key} = \"...\"  # {absent}"
    return f"{key} = {quote(item.column)}  # {item.reason}"


def quote(text) -> str:
    """A TOML basic string (JSON escapes are valid TOML escapes)."""
    return json.dumps(str(text), ensure_ascii=False)


def toml_list(values) -> str:
    return "[" + ", ".join(quote(value) for value in values) + "]"
