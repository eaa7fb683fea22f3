"""init-config: guess each column's role in an unknown export and write a commented project config.

The lead table gets an id (or a row-number id), a creation date, a label (or a list of label
candidates) and a role per column; with ``--events`` / ``--deals`` the other two tables are read
by :mod:`crm.infer_tables`. Every guess carries its reason, and :class:`ProjectGuess` collects
what the user must check into a console summary.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from crm.column_profile import (GENERIC_PAIRS, blank_note, looks_personal, mostly_blank, name_has, outcome_mapping,
                                profile_column)
from crm.config_schema import DEFAULT_MISSING_VALUES
from crm.config_text import config_text, project_model_name
from crm.infer_tables import TablesGuess, infer_tables
from features.fit import BOOLEAN_VALUES

#: Words of a column name that make it an outcome whatever its values, or only with outcome-like values.
LABEL_NAMES = ("converted", "conversion", "convert", "target", "label", "outcome", "churn", "churned", "y", "won",
               "win", "success", "subscribed", "purchased", "enrolled", "is customer", "became customer",
               "closed won", "is won")
LABEL_NAMES_WITH_VALUES = ("revenue", "purchase", "purchases", "sale", "sold", "order", "ordered", "stage", "status",
                           "result", "deal", "closed", "paid", "approved", "accepted", "response", "responded")
ID_NAMES = ("id", "uuid", "guid", "key", "number", "no", "ref", "reference", "identifier", "code")
CREATED_WORDS = re.compile(r"creat|sign.?up|regist|first.?seen|submitted|added|opened", re.I)
JOB_TITLE_WORDS = re.compile(r"title|job|position|designation", re.I)
PII_NAMES = ("name", "phone", "mobile", "cell", "telephone", "tel", "fax", "address", "street", "zip", "postcode",
             "postal", "email", "e mail", "mail", "ip", "birth", "birthday", "dob", "passport", "ssn", "iban")
#: Integer columns with these words hold codes (a browser, a region), not amounts.
CODE_NAMES = ("browser", "region", "os", "operating", "system", "systems", "type", "code", "category", "class",
              "group", "segment", "channel", "platform", "device", "zone", "area", "country", "state", "city",
              "language", "cluster", "tier", "weekday", "brand", "version", "model", "kind", "article")
#: ... and integer columns with these words hold amounts, counts or scores.
MAGNITUDE_NAMES = ("count", "number", "num", "total", "age", "score", "size", "amount", "value", "revenue", "price",
                   "days", "hours", "minutes", "seconds", "year", "years", "qty", "quantity", "rate", "ratio",
                   "balance", "income", "salary", "employees", "points", "duration", "time", "visits", "views",
                   "pages", "clicks", "opens", "previous", "campaign", "children", "rank", "level", "percent")
#: Summarised behaviour: visits, time on site, page views, e-mail opens, last activity.
ENGAGEMENT_NAMES = ("visit", "visits", "session", "sessions", "time spent", "time on", "on site", "page views",
                    "pageviews", "views", "view", "clicks", "click", "opens", "opened", "open rate", "click rate",
                    "last activity", "activity", "activities", "duration", "bounce", "bounces", "exit", "exits",
                    "page value", "page values", "logins", "login", "downloads", "engagement", "recency",
                    "frequency", "last seen", "last visit", "interactions", "touches", "pages", "administrative",
                    "informational", "product related")
#: ... unless the name says it is a grade given by someone (an "activity score" is staff's judgement).
NOT_BEHAVIOUR_NAMES = ("score", "index", "grade", "rating", "quality", "profile", "rank")
#: Names of columns that are often written after the outcome: worth a look before training.
POST_OUTCOME_HINTS = ("tag", "tags", "quality", "grade", "rating", "notes", "note", "comment", "comments", "reason",
                      "verdict", "closed", "close", "lost reason", "owner", "stage", "status", "score", "profile",
                      "notable", "index")


@dataclass(frozen=True)
class ColumnRole:
    """The role guessed for one column and why, as init-config writes it into the config's comments."""

    column: str
    # id, created_at, label, email, job_title, categorical, numeric, numeric_raw, boolean, engagement,
    # engagement_categorical, pii, ignore
    role: str
    reason: str


@dataclass(frozen=True)
class LabelChoice:
    """The label column, which of its values mean converted, not converted and still open, and why."""

    column: str
    positive: tuple
    negative: tuple
    open: tuple
    reason: str
    sure: bool  # False when the values do not say which side is converted


@dataclass
class LeadGuess:
    """Everything inferred about the lead table: roles, label choice, label candidates, things to check."""

    roles: list
    label: LabelChoice | None
    candidates: list = field(default_factory=list)  # (column, why) of every label candidate
    strength: dict = field(default_factory=dict)  # column -> candidate strength (see _label_candidates)
    checks: list = field(default_factory=list)
    blank_created: int = 0  # rows whose chosen creation date is blank (or a placeholder)

    def role_of(self, role: str) -> list:
        return [item for item in self.roles if item.role == role]

    def single(self, role: str) -> ColumnRole | None:
        found = self.role_of(role)
        return found[0] if found else None


def infer_roles(frame: pd.DataFrame, *, missing_values=DEFAULT_MISSING_VALUES, with_deals: bool = False
                ) -> list[ColumnRole]:
    """One :class:`ColumnRole` per column of ``frame``, in its order (see :func:`infer_leads`)."""
    return infer_leads(frame, missing_values=missing_values, with_deals=with_deals).roles


def infer_leads(frame: pd.DataFrame, *, missing_values=DEFAULT_MISSING_VALUES, with_deals: bool = False) -> LeadGuess:
    """Guess the lead table: id, creation date, label (none when a deals table gives the outcome), roles.

    Placeholder values (``missing_values``, e.g. "Select") count as missing while guessing. Label
    candidates (outcome-like names or values) are never features: the chosen one is the label,
    the other strong ones are ignored (they are often written with or after the outcome).
    """
    tokens = {str(token).strip().lower() for token in missing_values}
    profiles = {column: profile_column(frame[column], tokens) for column in frame.columns}
    personal = {column: _personal(column, profile) for column, profile in profiles.items()}
    candidates = _label_candidates(profiles)
    label = None if with_deals else _choose_label(candidates)
    chosen = {"id": _pick_id(profiles, personal),
              "created_at": _pick_created(profiles),
              "label": label.column if label else None}
    roles, taken, checks, blank_created = [], set(), [], 0
    for column in frame.columns:
        profile = profiles[column]
        role = next((name for name, pick in chosen.items() if pick == column), None)
        if role == "id":
            named = name_has(column, ID_NAMES)
            reason = (f"unique in every row ({profile['kind']})" + (" and named like an id" if named else "")
                      + ": the lead identifier")
            if not named:
                checks.append(f"id: {column!r} was taken as the lead id because it is unique in every row; its "
                              "name does not say id. Check it.")
        elif role == "created_at":
            reason = _created_reason(column, with_deals)
            if blank_note(column, profile):  # those leads have no snapshot and no place in a split by date
                blank_created = profile["rows"] - profile["present"]
                checks.append(f"created_at: {blank_note(column, profile)}: a lead needs a creation date to be "
                              "placed in time, so those leads are left out of training and scoring "
                              "(undated_leads = \"leave_out\"); fill them to use them, or choose another date "
                              "column.")
            if not CREATED_WORDS.search(str(column)):
                checks.append(f"created_at: {column!r} is the first date column, but its name does not say "
                              "creation. Check it is when the lead was created.")
        elif role == "label":
            reason = label.reason
        elif column in candidates and candidates[column]["strength"] >= 1:
            role, reason = "ignore", (f"a label candidate ({candidates[column]['why']}), not the label chosen: "
                                      "never a feature, as it may be written with the outcome")
        else:
            role, reason = _attribute_role(column, profile, taken, personal[column])
        taken.add(role)
        roles.append(ColumnRole(column=column, role=role, reason=reason))
    listed = [(column, info["why"]) for column, info in candidates.items() if column != chosen["label"]]
    guess = LeadGuess(roles=roles, label=label, candidates=listed, checks=checks, blank_created=blank_created,
                      strength={column: info["strength"] for column, info in candidates.items()})
    _add_checks(guess, profiles, with_deals=with_deals)
    return guess


def write_config(frame: pd.DataFrame, *, leads_path, out_path, missing_values=DEFAULT_MISSING_VALUES,
                 events=None, deals=None, events_path=None, deals_path=None) -> str:
    """The text of a commented project config for ``frame`` (read from ``leads_path``)."""
    return guess_project(frame, leads_path=leads_path, out_path=out_path, missing_values=missing_values,
                         events=events, deals=deals, events_path=events_path, deals_path=deals_path).text


@dataclass
class ProjectGuess:
    """A written config and the console summary of what the user must check."""

    text: str
    summary: list
    leads: LeadGuess
    tables: TablesGuess | None = None
    model_name: str = ""  # the [training] model_name written: the registered model's name


def guess_project(frame: pd.DataFrame, *, leads_path, out_path, missing_values=DEFAULT_MISSING_VALUES,
                  events=None, deals=None, events_path=None, deals_path=None) -> ProjectGuess:
    """Infer every given table and write the config text plus a summary naming everything to check."""
    guess = infer_leads(frame, missing_values=missing_values, with_deals=deals is not None)
    tables = None
    if events is not None or deals is not None:
        created = guess.single("created_at")
        identifier = guess.single("id")
        tables = infer_tables(
            lead_ids=frame[identifier.column] if identifier else None,
            created_at=frame[created.column] if created else None, events=events, deals=deals)
    out_path = Path(out_path).resolve()
    paths = {name: _relative(path, out_path) for name, path in
             (("leads", leads_path), ("events", events_path), ("deals", deals_path)) if path is not None}
    model_name = project_model_name(out_path, leads_path=leads_path)
    text = config_text(guess, tables, frame, paths=paths, leads_path=Path(leads_path), model_name=model_name,
                       missing_values=missing_values)
    return ProjectGuess(text=text, summary=_summary(guess, tables), leads=guess, tables=tables, model_name=model_name)


# --- the label ------------------------------------------------------------------------------------


def _label_candidates(profiles: dict) -> dict:
    """column -> {strength, mapping, why} for every column that could be the outcome.

    strength 3: an outcome name (converted, y, target, churn...) and two values; 2: a name that is an
    outcome only with outcome values (Revenue TRUE/FALSE, deal_stage Won/Lost/...) and such values;
    1: two values that can only be an outcome (won/lost, converted/not converted, paid/...);
    0: a yes/no column or a stage-like column without an outcome name (a feature, listed when no label is found).
    """
    found = {}
    for column, profile in profiles.items():
        values = profile["values"]
        if (profile["kind"] == "date" or not 2 <= len(values) <= 12 or profile["distinct"] != len(values)
                or mostly_blank(profile)):  # a mostly blank column is a note someone sometimes wrote, not the outcome
            continue
        mapping = outcome_mapping(values)
        generic = len(values) == 2 and set(values) in GENERIC_PAIRS
        strong_name, value_name = name_has(column, LABEL_NAMES), name_has(column, LABEL_NAMES_WITH_VALUES)
        shown = "/".join(sorted(values)) if len(values) <= 4 else f"{len(values)} values"
        if strong_name and len(values) == 2:
            strength, why = 3, f"an outcome-like name and two values {shown}"
        elif strong_name and mapping:
            strength, why = 3, f"an outcome-like name and outcome values {shown}"
        elif value_name and mapping:
            strength, why = 2, f"a name that can mean the outcome and outcome values {shown}"
        elif mapping and not generic and len(values) == 2:
            strength, why = 1, f"values that read as an outcome: {shown}"
        elif mapping:
            strength, why = 0, f"values {shown}"
        else:
            continue
        found[column] = {"strength": strength, "mapping": mapping, "why": why, "values": values}
    return dict(sorted(found.items(), key=lambda item: -item[1]["strength"]))


def _choose_label(candidates: dict) -> LabelChoice | None:
    """The strongest candidate of strength >= 1 (two values preferred over a stage column), else None."""
    usable = [(column, info) for column, info in candidates.items() if info["strength"] >= 1]
    if not usable:
        return None
    column, info = max(usable, key=lambda item: (item[1]["strength"], len(item[1]["values"]) == 2))
    mapping = info["mapping"]
    if mapping is None:  # an outcome name with two values that do not say which side is which
        first, second = sorted(info["values"])
        return LabelChoice(column=column, positive=(second,), negative=(first,), open=(), sure=False,
                           reason=f"{info['why']}: the label (which value means converted is a guess: check it)")
    won, lost, still_open = mapping
    reason = f"{info['why']}: the label"
    if still_open:
        reason += f"; {', '.join(still_open)} read as still open (left out of training, scored)"
    return LabelChoice(column=column, positive=won, negative=lost, open=still_open, reason=reason, sure=True)


# --- id, creation date, attributes ----------------------------------------------------------------


def _personal(column, profile) -> str | None:
    by_values = looks_personal(profile)
    if by_values:
        return by_values
    if name_has(column, PII_NAMES) and profile["distinct"] > 0.2 * max(profile["present"], 1) \
            and profile["kind"] in ("text", "integer"):
        return "personal data by its name and many distinct values"
    return None


def _pick_id(profiles: dict, personal: dict) -> str | None:
    """A unique, non-personal column: named like an id first; an unnamed integer only when it counts rows."""
    fitting = []
    for order, (column, profile) in enumerate(profiles.items()):
        if not profile["unique"] or personal[column] or profile["kind"] not in ("text", "integer"):
            continue
        if _identifier_like(column, profile):
            fitting.append((not name_has(column, ID_NAMES), order, column))
    return min(fitting)[2] if fitting else None


def _identifier_like(column, profile) -> bool:
    """Unique values that identify rather than measure: named like an id, text without spaces, a running number."""
    if name_has(column, ID_NAMES):
        return profile["kind"] in ("text", "integer")
    if profile["kind"] == "text":
        return profile["spaced_share"] <= 0.1  # free text that happens to be unique is not an identifier
    return profile["kind"] == "integer" and profile["min"] >= 0 \
        and profile["max"] - profile["min"] + 1 <= 2 * profile["rows"]  # a running number, not measurements


def _pick_created(profiles: dict) -> str | None:
    # A mostly blank date column is taken only when no other date is filled.
    dates = sorted((column for column, profile in profiles.items() if profile["kind"] == "date"),
                   key=lambda column: mostly_blank(profiles[column]))
    named = [column for column in dates if CREATED_WORDS.search(str(column))]
    return (named or dates or [None])[0]


def _created_reason(column, with_deals: bool) -> str:
    use = ("snapshots of each lead start here, and the split is by time" if with_deals
           else "the split is by this date: oldest leads train, newest test")
    if CREATED_WORDS.search(str(column)):
        return f"dates, and the name says creation: the creation date; {use}"
    return f"the first date column (its name does not say creation: check it); {use}"


def _attribute_role(column, profile, taken: set, personal: str | None):
    n, distinct, kind = profile["present"], profile["distinct"], profile["kind"]
    if n == 0:
        return "ignore", "always empty"
    if distinct == 1:
        return "ignore", "a single value: carries no information"
    if profile["email_share"] >= 0.5:
        if "email" not in taken:
            return "email", "e-mail addresses (PII): only business vs. free domain becomes a feature"
        return "pii", "e-mail addresses"
    if personal:
        return "pii", f"{personal}: personal data, never an id or a feature"
    if profile["unique"] and _identifier_like(column, profile):
        return "ignore", "unique in every row: another identifier"
    if kind == "date":
        return "ignore", "dates other than the creation date: possibly written after the outcome"
    if kind == "text" and "job_title" not in taken and JOB_TITLE_WORDS.search(str(column)) and distinct > 20:
        return "job_title", f"free-text job titles ({distinct} distinct): parsed into seniority and function"
    engagement = name_has(column, ENGAGEMENT_NAMES) and not name_has(column, NOT_BEHAVIOUR_NAMES)
    if kind == "boolean" or (distinct == 2 and set(profile["values"]) <= set(BOOLEAN_VALUES)):
        return "boolean", f"two values {sorted(profile['values'])}"
    if kind == "integer" and _is_code(column, profile):
        return "categorical", (f"{distinct} distinct whole numbers {profile['min']:g}..{profile['max']:g} and a "
                               "name of codes, not amounts: one category each")
    if kind in ("integer", "float"):
        span = f"numbers {profile['min']:g}..{profile['max']:g}, {distinct} distinct"
        if profile["min"] >= 0 and engagement:
            return "engagement", f"{span}; the name says behaviour (visits, time, views): engagement, log(1 + x)"
        if profile["min"] >= 0:
            return "numeric", span
        return "numeric_raw", f"numbers {profile['min']:g}..{profile['max']:g}, some negative"
    if distinct > max(100, 0.5 * n):
        return "ignore", f"free text: {distinct} distinct values in {n} rows"
    if engagement:
        return "engagement_categorical", f"text, {distinct} distinct values; the name says behaviour: engagement"
    return "categorical", f"text, {distinct} distinct values"


def _is_code(column, profile) -> bool:
    """Integer codes: a code-like name (up to 100 codes), or up to 30 positive integers whose name says no amount."""
    if name_has(column, CODE_NAMES) and not name_has(column, MAGNITUDE_NAMES) and profile["distinct"] <= 100:
        return True
    return profile["min"] >= 1 and 3 <= profile["distinct"] <= 30 and not name_has(column, MAGNITUDE_NAMES) \
        and not name_has(column, ENGAGEMENT_NAMES)


def _add_checks(guess: LeadGuess, profiles: dict, *, with_deals: bool) -> None:
    checks = guess.checks
    if guess.single("id") is None:
        checks.append("id: no column is unique in every row (personal data such as phones never counts), so "
                      "row_number_id = true: each lead's id is its row number. Stable only while the row order "
                      "is; add an id column to the export if you can.")
    if guess.label is not None:
        label = guess.label
        note = (f"label: {label.column!r} ({label.reason.split(': the label')[0]}); converted = "
                f"{list(label.positive)}, not converted = {list(label.negative)}"
                + (f", still open = {list(label.open)}" if label.open else "") + ".")
        if not label.sure:
            note += " The values do not say which one means converted: check positive / negative."
        checks.append(note)
        strong = {column for column, info in guess.strength.items() if info >= 1}
        others = [f"{column!r} ({why})" for column, why in guess.candidates if column in strong]
        if others:
            checks.append("other label candidates, not used as the label: " + "; ".join(others) + ".")
    elif not with_deals:
        if guess.candidates:
            checks.append("label: none chosen. Candidates: " + "; ".join(
                f"{column!r} ({why})" for column, why in guess.candidates)
                          + ". Name one under [columns] label, or give a deals table (--deals).")
        else:
            checks.append("label: no outcome column found and no candidates (no two-valued or won/lost-like "
                          "column). Name it under [columns] label, or give a deals table (--deals).")
    for role, words in (("pii", "personal data, dropped on reading"),
                        ("categorical", None),
                        ("engagement", "summarised behaviour: counts as engagement in the sub-scores"),
                        ("engagement_categorical", "summarised behaviour: counts as engagement in the sub-scores")):
        items = guess.role_of(role)
        if role == "categorical":
            items = [item for item in items if "whole numbers" in item.reason]
            words = "integer codes used as categories, not amounts"
        if items:
            checks.append(f"{role}: {', '.join(repr(item.column) for item in items)} ({words}).")
    named = [item.column for item in guess.roles if item.role == "categorical"
             and profiles[item.column]["person_share"] >= 0.8]
    if named:
        checks.append(f"names: {', '.join(repr(column) for column in named)} hold person names that repeat (an owner, "
                      "an agent?): kept as categories. If they are the leads' own names, move them to pii.")
    hints = [item.column for item in guess.roles if item.role not in ("id", "label", "created_at", "pii", "ignore")
             and name_has(item.column, POST_OUTCOME_HINTS)]
    if hints:
        checks.append(f"leakage: {', '.join(repr(column) for column in hints)} may be written after the outcome "
                      "(names like tags, status, quality, score): if so, list them under [leakage] post_outcome.")


def _summary(guess: LeadGuess, tables) -> list:
    lines = list(guess.checks)
    if tables is not None:
        lines += tables.checks
    return lines


def _relative(path, out_path: Path) -> str:
    return os.path.relpath(Path(path).resolve(), out_path.parent)
