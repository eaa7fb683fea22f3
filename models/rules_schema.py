"""A points-rules file's shape as pydantic models: thresholds, attribute rules and behaviour rules.

:func:`validate_rules_file` checks a parsed TOML rules file (keys, types, one match per
attribute rule, positive caps and spans, ranges low below high) and names the file and the rule
in one line (``rules.toml: behaviour rule 1 ('demo'): points must be a number. Got 'lots'
instead.``). What needs the data (is the column known, is the event type the model's) is
checked by :func:`models.rules.rules_from_dict`. ``RulesFile.model_json_schema()`` is published
for editors (docs/data-scientist/config-reference.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator

from crm.config_schema import Duration, StrictSection, describe_errors, key_path, toml_place

MATCHES = ("equals", "in", "contains", "range")
#: Whole numbers stay whole (a rules file written back reads as it was written).
Points = Annotated[float, Field(allow_inf_nan=False)] | int
#: A range bound: a number, or "-inf" / "inf" for an open end (TOML's inf and -inf work too).
Bound = float | Literal["-inf", "inf", "+inf"]


class RulesError(ValueError):
    """A rules file that cannot be scored; the message names the file and the rule."""


class Thresholds(StrictSection):
    """Points from which a lead is MQL, and SQL."""

    mql: Points = Field(description="Points from which a lead is an MQL.")
    sql: Points = Field(description="Points from which a lead is an SQL (above mql).")

    @model_validator(mode="after")
    def _ordered(self):
        if self.sql <= self.mql:
            raise ValueError(f"sql must be above mql. Got mql={self.mql:g} and sql={self.sql:g} instead.")
        return self


def _range(bounds: list) -> list:
    low, high = (float(bound) for bound in bounds)
    if low >= high:
        raise ValueError(f"low must be below high. Got {bounds!r} instead.")
    return bounds


#: ``[low, high)`` with low below high: checked where it is declared, for every rule kind alike.
RangeBounds = Annotated[list[Bound], Field(min_length=2, max_length=2), AfterValidator(_range)]


class AttributeEntry(StrictSection):
    """Points when a lead column (or a derived fit feature) equals, is in, contains or lies in a range."""

    name: str | None = Field(None, description="The rule's name, shown in reports (unique).")
    column: str = Field(description="A lead column, or a derived fit feature such as seniority.")
    points: Points = Field(description="Points when the rule matches (negative points allowed).")
    equals: str | int | float | bool | None = Field(None, description="Matches this value (text compared lower-cased).")
    in_: list[str | int | float | bool] | None = Field(None, alias="in", min_length=1, description="Matches any of these.")
    contains: str | None = Field(None, description="Matches text containing this.")
    range: RangeBounds | None = Field(None, description='Matches numbers with low <= value < high ("-inf", "inf": '
                                                        "open ends).")

    @model_validator(mode="after")
    def _one_match(self):
        kinds = [kind for kind in MATCHES if getattr(self, "in_" if kind == "in" else kind) is not None]
        if len(kinds) != 1:
            raise ValueError(f"needs exactly one of {list(MATCHES)}. Got {kinds or 'none'}.")
        return self


class BehaviourEntry(StrictSection):
    """Points per event of a type (or once, for a count band), optionally capped, windowed or decayed."""

    name: str | None = Field(None, description="The rule's name, shown in reports (unique).")
    event: str = Field(description="One of the model's event types, by name or key, or 'other'.")
    points: Points = Field(description="Points per event (or once, with range).")
    cap: Points | None = Field(None, gt=0, description="At most this many points from the rule.")
    window_days: Points | None = Field(None, gt=0, description="Count events of the last this many days.")
    half_life_days: Points | None = Field(None, gt=0, description="Decay events with this half-life in days.")
    window: Duration | None = Field(None, description="window_days as a duration: '6h', '7d'.")
    half_life: Duration | None = Field(None, description="half_life_days as a duration.")
    range: RangeBounds | None = Field(None, description="Points once when the count (or intensity) lies in "
                                                        "[low, high), instead of per event.")

    @model_validator(mode="after")
    def _one_span(self):
        for key in ("window", "half_life"):
            if getattr(self, key) is not None and getattr(self, f"{key}_days") is not None:
                raise ValueError(f"use {key} or {key}_days, not both.")
        if {"window", "window_days"} & self.model_fields_set and {"half_life", "half_life_days"} & self.model_fields_set:
            raise ValueError("use window_days or half_life_days, not both.")
        return self


class RulesFile(StrictSection):
    """The marketing team's points rules: MQL/SQL thresholds, attribute rules and behaviour rules."""

    model_config = {"title": "Lead-scoring points rules"}

    description: str = Field("", description="What these rules are, shown in reports.")
    thresholds: Thresholds
    attribute: list[AttributeEntry] = Field([], description="Rules on who a lead is.")
    behaviour: list[BehaviourEntry] = Field([], description="Rules on what a lead did.")


def validate_rules_file(values: dict, *, source: str) -> RulesFile:
    """``values`` (a parsed rules file) checked against :class:`RulesFile`; a RulesError names file and rule."""
    try:
        return RulesFile.model_validate(values)
    except ValidationError as error:
        raise RulesError(describe_errors(error, RulesFile, source=source,
                                         place=lambda loc: _rule_place(loc, values))) from None


def _rule_place(loc: tuple, values: dict) -> str:
    """``("behaviour", 0, "points")`` -> ``behaviour rule 1 ('demo'): points``; else as in the config."""
    if len(loc) >= 2 and loc[0] in ("attribute", "behaviour") and isinstance(loc[1], int):
        raw = values[loc[0]][loc[1]]
        name = raw.get("name") if isinstance(raw, dict) else None
        place = f"{loc[0]} rule {loc[1] + 1}" + (f" ({name!r})" if name else "") + ":"
        return place + (f" {key_path(loc[2:])}" if len(loc) > 2 else "")
    return toml_place(loc)
