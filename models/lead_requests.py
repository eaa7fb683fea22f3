"""Leads as the HTTP service receives them, checked and turned into feature rows by ``build_features``."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.timing import naive_utc

Value = str | float | int | bool | None


class Event(BaseModel):
    """One engagement event; only events before ``as_of`` count."""

    model_config = ConfigDict(extra="forbid")
    occurred_at: datetime
    event_type: str = Field(min_length=1, examples=["demo_request"])


class Lead(BaseModel):
    """A lead to score: its attributes, ``created_at`` and recent events, or its built ``features``."""

    model_config = ConfigDict(extra="forbid")
    lead_id: str | int | None = None
    created_at: datetime | None = None
    attributes: dict[str, Value] = Field(default_factory=dict, examples=[{
        "job_title": "VP Marketing", "industry": "Software", "company_size": 500, "annual_revenue": 4.0e7,
        "country": "Germany", "lead_source": "Webinar", "email": "ana@example.com"}])
    events: list[Event] = Field(default_factory=list)
    features: dict[str, Value] | None = Field(
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
        event_type=(str, Field(min_length=1, examples=types[:3],
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

    parts = []
    if built:
        # Positions, not the callers' ids, join leads to events: ids may repeat or be absent.
        numeric = _numeric_columns(spec)
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
    elif lead.created_at is not None and naive_utc(lead.created_at) > as_of:
        problems.append({"field": f"body.{i}.created_at", "problem": f"must not be after as_of ({as_of})"})
    for key, value in lead.attributes.items():
        if key not in attributes:
            problems.append({"field": f"body.{i}.attributes.{key}",
                             "problem": f"unknown attribute; expected some of {attributes}"})
        elif key in _numeric_columns(spec) and not _number_or_missing(value):
            problems.append({"field": f"body.{i}.attributes.{key}", "problem": f"must be a number, got {value!r}"})


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
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return True
    try:
        float(value)
        return True
    except (TypeError, ValueError):
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
