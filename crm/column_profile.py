"""What init-config sees in one column: its kind, its values, what its name says; shared by every table's inference."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

#: Values that read as the good outcome / the bad one (compared lower-cased, as whole values or words in them).
POSITIVE_WORDS = ("won", "win", "yes", "y", "true", "t", "1", "converted", "success", "successful", "paid",
                  "accepted", "approved", "purchased", "subscribed", "signed", "enrolled", "customer", "closed won")
NEGATIVE_WORDS = ("lost", "loss", "lose", "no", "n", "false", "f", "0", "not converted", "unconverted", "failure",
                  "failed", "fail", "rejected", "declined", "refused", "cancelled", "canceled", "churned",
                  "unpaid", "dead", "disqualified", "unqualified", "closed lost", "not interested")
#: Two values that any yes/no column has: an outcome only when the column's name says so.
GENERIC_PAIRS = ({"yes", "no"}, {"true", "false"}, {"1", "0"}, {"y", "n"}, {"t", "f"})

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^(?=(?:\D*\d){7,})\+?[\d\s().\-/]{7,}$")
PERSON_NAME = re.compile(r"^[A-Z][a-z'’\-]+(?:\s+[A-Z][a-z'’\-\.]+){1,3}$")


def name_tokens(column) -> list[str]:
    """The words of a column name, lower-cased: "OperatingSystems" -> [operating, systems]."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", str(column))
    return [token for token in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if token]


def name_has(column, words) -> bool:
    """Whether any word of ``words`` (single words or "two words") appears in the column's name."""
    tokens = name_tokens(column)
    joined = " " + " ".join(tokens) + " "
    return any((f" {word} " in joined) if " " in word else word in tokens for word in words)


def value_text(value):
    """One value as init-config compares it: trimmed, lower-cased; booleans "true"/"false"; 1.0 -> "1"."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer():
        value = int(value)
    text = " ".join(str(value).strip().lower().split())
    return text or None


def outcome_side(value: str) -> str | None:
    """"won" / "lost" for a value that reads as one side of an outcome, else None."""
    plain = value.replace("_", " ").replace("-", " ")
    for side, words in (("lost", NEGATIVE_WORDS), ("won", POSITIVE_WORDS)):  # "not converted" before "converted"
        if plain in words or any(" " in word and word in plain for word in words) or (
                len(plain) > 2 and any(len(word) > 2 and word in plain.split() for word in words)):
            return side
    return None


def outcome_mapping(values) -> tuple[tuple, tuple, tuple] | None:
    """``(won, lost, open)`` values of a column whose values read as an outcome, else None.

    Two values: one must read as won or lost (the other takes the other side). More values (a
    stage column: Won / Lost / Engaging): at least one of each side; the rest are still open.
    """
    values = sorted(values)
    sides = {value: outcome_side(value) for value in values}
    won = tuple(value for value in values if sides[value] == "won")
    lost = tuple(value for value in values if sides[value] == "lost")
    if len(values) == 2:
        if len(won) == 1 and len(lost) == 1:
            return won, lost, ()
        if len(won) == 1 and not lost:
            return won, tuple(value for value in values if value not in won), ()
        if len(lost) == 1 and not won:
            return tuple(value for value in values if value not in lost), lost, ()
        return None
    if 2 < len(values) <= 12 and won and lost:
        return won, lost, tuple(value for value in values if sides[value] is None)
    return None


def mostly_blank(profile: dict) -> bool:
    """Blank (or a placeholder) in more than half the rows: never an outcome, and a date to avoid."""
    return profile["present"] * 2 < profile["rows"]


def blank_note(column, profile: dict) -> str:
    """``'Engage Date' is blank in 500 of 8,800 rows`` (empty when none is)."""
    blank = profile["rows"] - profile["present"]
    return f"{column!r} is blank in {blank:,} of {profile['rows']:,} rows" if blank else ""


def profile_column(values: pd.Series, tokens: set) -> dict:
    """Kind (text, integer, float, date), distinct values, uniqueness, and shares of PII-looking values."""
    text = values.dropna().map(value_text).dropna()
    text = text[~text.isin(tokens)]
    n, distinct = len(text), int(text.nunique())
    profile = {"present": n, "rows": len(values), "distinct": distinct, "values": set(),
               "unique": n > 1 and distinct == n and n == len(values), "kind": "text", "email_share": 0.0,
               "phone_share": 0.0, "person_share": 0.0, "spaced_share": 0.0}
    if n == 0:
        return profile
    if distinct <= 12:
        profile["values"] = set(text.unique())
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    numbers = pd.to_numeric(values, errors="coerce") if numeric else pd.to_numeric(text, errors="coerce")
    if pd.api.types.is_bool_dtype(values):
        profile["kind"] = "boolean"
        return profile
    if numeric or (numbers.notna().mean() == 1.0 and not text.str.match(r"^\+|^0\d").any()):
        numbers = numbers.dropna()
        is_int = bool(np.all(np.mod(numbers, 1) == 0))
        profile.update(kind="integer" if is_int else "float", min=float(numbers.min()), max=float(numbers.max()))
        return profile
    raw = values.dropna().astype(str).str.strip()
    # Compared as value_text compares (spaces collapsed too: "Sales  Intern" is "sales intern"), so the rows
    # kept are exactly the n counted above.
    kept = raw[raw.map(value_text).isin(set(text.unique()))]
    sample = kept.sample(min(len(kept), 2000), random_state=0)
    profile["email_share"] = float(sample.str.match(EMAIL).mean())
    profile["phone_share"] = float(sample.str.match(PHONE).mean())
    profile["person_share"] = float(sample.str.match(PERSON_NAME).mean())
    profile["spaced_share"] = float(sample.str.contains(r"\s").mean())
    if sample.str.contains(r"\d").mean() > 0.9 and profile["email_share"] < 0.5 and not sample.str.match(
            r"^\+").any():
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
        if parsed.notna().mean() >= 0.95:  # "2017-01-01" also looks like a phone number: a date wins
            profile.update(kind="date", phone_share=0.0)
    return profile


def looks_personal(profile: dict) -> str | None:
    """Why a column's values look like personal data (e-mails, phones, person names), or None."""
    many = profile["distinct"] > 0.5 * max(profile["present"], 1)
    if profile["email_share"] >= 0.5:
        return "e-mail addresses"
    if profile["phone_share"] >= 0.8 and many:
        return "phone-number-like values"
    if profile["person_share"] >= 0.8 and many:
        return "person-name-like values (First Last)"
    return None
