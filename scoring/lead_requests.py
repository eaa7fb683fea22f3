"""Leads as the HTTP service receives them, checked and turned into feature rows by ``build_features``."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from features.column_types import PLAUSIBLE_YEARS
from features.freshness import allowed_gap
from features.plausibility import created_problem, size_problem
from features.single_lead import FEW_LEADS, _microseconds, block_names, few_lead_features, few_lead_rows

#: Lone surrogates cannot be encoded in an answer; control characters have no place in CRM text.
_BAD_TEXT = re.compile(r"[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(value: str) -> str:
    """Refuse text holding lone surrogates or control characters (tab and line breaks are fine)."""
    if value.isascii() and value.isprintable():  # only U+0020-U+007E: nothing to find (the common case, 10x faster)
        return value
    bad = _BAD_TEXT.search(value)
    if bad:
        raise ValueError(f"text must not hold control characters or lone surrogates; found U+{ord(bad.group()):04X} "
                         f"at position {bad.start()}")
    return value


def finite_number(value: float) -> float:
    """Refuse NaN and infinities: JSON has no such numbers, and a model cannot score them."""
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    return value


_NUMBER_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def written_timestamp(value):
    """A timestamp must arrive as ISO 8601 text, not a number (or digits) a parser would read as seconds since 1970."""
    if isinstance(value, (int, float)) and not isinstance(value, datetime):
        raise ValueError(f"must be an ISO 8601 timestamp string such as 2025-10-01T10:00:00Z, got the number {value!r}")
    # A number's text holds no ":", as every timestamp with a time of day does: the pattern only where it can match.
    if isinstance(value, str) and ":" not in value and _NUMBER_TEXT.fullmatch(value):
        # "20250101" or "1735689600" in a query string: pydantic would read either as epoch seconds.
        raise ValueError(f"must be an ISO 8601 timestamp such as 2025-10-01T10:00:00Z, got the number {value!r}")
    return value


def plausible_timestamp(value: datetime) -> datetime:
    low, high = PLAUSIBLE_YEARS
    if not low <= value.year <= high:
        raise ValueError(f"must lie between the years {low} and {high}, got {value.isoformat()}")
    return value


def clean_value(value):
    """An attribute or feature value: clean text, a finite number, true/false or null."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float):
        return finite_number(value)
    return value


Text = Annotated[str, AfterValidator(clean_text)]
Timestamp = Annotated[datetime, BeforeValidator(written_timestamp), AfterValidator(plausible_timestamp)]
Value = Annotated[str | float | int | bool | None, AfterValidator(clean_value)]


class Event(BaseModel):
    """One engagement event; only events before ``as_of`` count."""

    model_config = ConfigDict(extra="forbid")
    occurred_at: Timestamp
    event_type: Text = Field(min_length=1, examples=["demo_request"])


class Lead(BaseModel):
    """A lead to score: its attributes, ``created_at`` and recent events, or its built ``features``."""

    model_config = ConfigDict(extra="forbid")
    lead_id: Annotated[str | int | None, AfterValidator(clean_value)] = None
    created_at: Timestamp | None = None
    attributes: dict[Text, Value] = Field(default_factory=dict, examples=[{
        "job_title": "VP Marketing", "industry": "Software", "company_size": 500, "annual_revenue": 4.0e7,
        "country": "Germany", "lead_source": "Webinar", "email": "ana@example.com"}])
    events: list[Event] = Field(default_factory=list)
    features: dict[Text, Value] | None = Field(
        default=None, description="Already-built feature row (all of the model's features); "
                                  "replaces created_at, attributes and events.")


def request_models(spec) -> type[Lead]:
    """The ``Lead`` request model of one model: its event types documented (and given as examples) are the model's own.

    Any other type is accepted and counts as ``other``, as in training.
    """
    from pydantic import create_model

    from features.spec import OTHER_EVENT_TYPE

    if not spec.event_log:
        return Lead
    types = list(spec.event_types)
    event = create_model(
        "Event", __base__=Event,
        event_type=(Text, Field(min_length=1, examples=types[:3],
                               description=f"One of the model's event types {types}; any other type counts "
                                           f"as {OTHER_EVENT_TYPE!r}.")))
    return create_model("Lead", __base__=Lead, events=(list[event], Field(default_factory=list)))


class InvalidLeads(ValueError):
    """Leads that parse as JSON but cannot be scored; ``problems`` is a list of {field, problem}."""

    def __init__(self, problems: list[dict]):
        super().__init__("; ".join(f"{p['field']}: {p['problem']}" for p in problems))
        self.problems = problems


def lead_features(spec, leads: list[Lead], as_of: pd.Timestamp) -> pd.DataFrame:
    """Feature rows of the leads as of ``as_of``, one per lead in order, through ``build_features``.

    Raises :class:`InvalidLeads` naming every wrong field.
    """
    from features.build import build_features

    built, given = _checked(spec, leads, as_of)
    parts = []
    if built and len(built) <= FEW_LEADS:
        # A handful of leads: the same features in plain Python, without pandas' per-call overhead.
        parts.append(few_lead_features(spec, _few_rows(spec, [leads[i] for i in built]), as_of).set_axis(built))
    elif built:
        # Positions, not the callers' ids, join leads to events: ids may repeat or be absent.
        numeric, attributes = _numeric_columns(spec), _attribute_columns(spec)
        table = pd.DataFrame({
            "lead_id": built,
            **({"created_at": _timestamps([leads[i].created_at for i in built])} if _needs_created_at(spec) else {}),
            **{column: np.array([_float(leads[i].attributes.get(column)) for i in built]) if column in numeric
               # object, not pandas' inferred arrow strings: on a few rows those cost more than they save
               else pd.Series([leads[i].attributes.get(column) for i in built], dtype=object)
               for column in attributes},
        })
        history = [(i, event) for i in built for event in leads[i].events]
        events = pd.DataFrame({
            "lead_id": np.array([i for i, _ in history], dtype=np.int64),
            "occurred_at": _timestamps([event.occurred_at for _, event in history]),
            "event_type": pd.Series([event.event_type for _, event in history], dtype=object),
        })
        snapshots = pd.DataFrame({"lead_id": built, "as_of": np.full(len(built), as_of.to_datetime64())})
        parts.append(build_features(snapshots, table, events, spec).set_axis(built))
    if given:
        rows = [leads[i].features for i in given]
        categorical = spec.categorical_feature_names
        number_names = [name for name in spec.feature_names if name not in set(categorical)]
        # Two blocks instead of one column per feature: a hundred Series cost a millisecond.
        numbers = pd.DataFrame(np.array([[row[name] for name in number_names] for row in rows], dtype=float),
                               index=given, columns=number_names)
        categories = pd.DataFrame(np.array([[row[name] for name in categorical] for row in rows], dtype=object),
                                  index=given, columns=categorical)
        parts.append(pd.concat([categories, numbers], axis=1)[spec.feature_names])
    return (parts[0] if len(parts) == 1 else pd.concat(parts)).sort_index()


def lead_blocks(spec, leads: list[Lead], as_of: pd.Timestamp) -> tuple[list, np.ndarray] | None:
    """``lead_features`` of a few leads as ``(labels, numbers)`` blocks (``features.single_lead.few_lead_rows``).

    The single-lead route of the service (``models.lead_scorer``): the same values without a
    DataFrame. None for more than ``FEW_LEADS`` leads, or feature rows holding numbers as text
    (``lead_features`` decides those). Raises :class:`InvalidLeads` as ``lead_features`` does.
    """
    if len(leads) > FEW_LEADS:
        return None
    built, given = _checked(spec, leads, as_of)
    categorical, numeric = block_names(spec)
    for i in given:
        if not all(type(leads[i].features[name]) in (int, float, type(None)) for name in numeric):
            return None
    labels, numbers = [None] * len(leads), np.empty((len(leads), len(numeric)))
    if built:
        few_labels, few_numbers = few_lead_rows(spec, _few_rows(spec, [leads[i] for i in built]), as_of)
        for k, i in enumerate(built):
            labels[i] = few_labels[k]
        numbers[built] = few_numbers
    for i in given:
        row = leads[i].features
        labels[i] = [row[name] for name in categorical]
        numbers[i] = [np.nan if row[name] is None else row[name] for name in numeric]
    return labels, numbers


def stale_warnings(leads: list[Lead], as_of: pd.Timestamp, *, horizon_days=None) -> list[str]:
    """Warnings for leads whose newest event (or creation) lies long before ``as_of``: scored, but say so."""
    warnings = []
    as_of_ns = pd.Timestamp(as_of).value
    # Times since the epoch (naive is UTC) compared as integers, and the gap in days: no Timestamp per lead.
    allowed_ns = _allowed_gap_ns(horizon_days)
    for i, lead in enumerate(leads):
        if lead.features is not None:
            continue
        moments = [_microseconds(event.occurred_at) for event in lead.events] or \
            ([_microseconds(lead.created_at)] if lead.created_at is not None else [])
        newest = max((moment for moment in moments if moment * 1_000 < as_of_ns), default=None)
        if newest is None or as_of_ns - newest * 1_000 <= allowed_ns:  # fresh: stale_gap would say None
            continue
        days = (as_of_ns - newest * 1_000) // _DAY_NS  # stale_gap's gap in whole days, as Timedelta.days gives it
        warnings.append(f"body.{i}: the newest event is {days} days before as_of {as_of}; the score treats "
                        "the lead as idle since then (send ?as_of= for historical data)")
    return warnings


_DAY_NS = 86_400 * 10**9


@lru_cache(maxsize=8)
def _allowed_gap_ns(horizon_days) -> int:
    return allowed_gap(horizon_days=horizon_days).value


def _checked(spec, leads: list[Lead], as_of) -> tuple[list[int], list[int]]:
    """Positions of the leads to build and of those with feature rows given; InvalidLeads naming every wrong field."""
    problems = []
    built = [i for i, lead in enumerate(leads) if lead.features is None]
    given = [i for i, lead in enumerate(leads) if lead.features is not None]
    attributes = _attribute_columns(spec)
    for i in built:
        _check_attributes(leads[i], i, attributes, spec, as_of, problems)
    for i in given:
        _check_features(leads[i].features, i, spec, problems)
    if problems:
        raise InvalidLeads(problems)
    return built, given


def _few_rows(spec, leads: list[Lead]) -> list[tuple]:
    """``(created_at, attributes, events)`` per lead, as ``features.single_lead`` takes them."""
    numeric = _numeric_columns(spec)
    return [(lead.created_at, {key: _float(value) if key in numeric else value for key, value in lead.attributes.items()},
             [(event.occurred_at, event.event_type) for event in lead.events]) for lead in leads]


def _numeric_columns(spec) -> set[str]:
    return set(spec.numeric_columns) | set(spec.raw_numeric_columns)


def _needs_created_at(spec) -> bool:
    """Lead age and event windows are measured from it; a model of a plain lead table needs neither."""
    return spec.lead_age or spec.event_log


def _attribute_columns(spec) -> list[str]:
    columns = [*spec.categorical_columns, *spec.numeric_columns, *spec.raw_numeric_columns, *spec.boolean_columns]
    columns += [column for column in (spec.job_title_column, spec.email_column) if column]
    return columns


def _check_attributes(lead: Lead, i: int, attributes: list[str], spec, as_of, problems: list) -> None:
    if lead.created_at is None and _needs_created_at(spec):
        problems.append({"field": f"body.{i}.created_at", "problem": "required unless 'features' is given"})
    elif lead.created_at is not None:
        problem = created_problem(lead.created_at, as_of)  # the rule batch scoring applies too
        if problem:
            problems.append({"field": f"body.{i}.created_at", "problem": problem})
    for key, value in lead.attributes.items():
        if key not in attributes:
            problems.append({"field": f"body.{i}.attributes.{key}",
                             "problem": f"unknown attribute; expected some of {attributes}"})
        elif key in _numeric_columns(spec) and not _number_or_missing(value):
            problems.append({"field": f"body.{i}.attributes.{key}", "problem": f"must be a number, got {value!r}"})
        elif key in spec.numeric_columns and value is not None and size_problem(value):
            # A size or an amount (read on a log scale): batch scoring refuses it as well (features.plausibility).
            problems.append({"field": f"body.{i}.attributes.{key}", "problem": size_problem(value)})


def _check_features(row: dict, i: int, spec, problems: list) -> None:
    categorical = set(spec.categorical_feature_names)
    expected = set(spec.feature_names)
    missing = [name for name in spec.feature_names if name not in row]
    if missing:
        problems.append({"field": f"body.{i}.features",
                         "problem": f"missing {len(missing)} feature(s), e.g. {missing[:5]}"})
    for name, value in row.items():
        field = f"body.{i}.features.{name}"
        if name not in expected:
            problems.append({"field": field, "problem": "unknown feature"})
        elif name in categorical and not (value is None or isinstance(value, str)):
            problems.append({"field": field, "problem": f"must be a string or null, got {value!r}"})
        elif name not in categorical and not _number_or_missing(value):
            problems.append({"field": field, "problem": f"must be a number or null, got {value!r}"})


def _number_or_missing(value) -> bool:
    """None, a finite number, or text spelling one; true/false are not numbers."""
    if isinstance(value, bool):
        return False
    if value is None:
        return True
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


def _timestamps(moments: list[datetime]) -> np.ndarray:
    """Naive-UTC ``datetime64[us]`` of many datetimes, without a Timestamp per value."""
    return np.array([m.astimezone(timezone.utc).replace(tzinfo=None) if m.tzinfo else m for m in moments],
                    dtype="datetime64[us]").astype("datetime64[ns]")


def _float(value) -> float:
    try:
        return float(value) if value is not None else np.nan
    except (TypeError, ValueError):
        return np.nan
