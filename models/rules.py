"""Points rules: the marketing team's lead scoring (points per attribute and per action) read from TOML.

A rules file has MQL/SQL point thresholds, ``[[attribute]]`` rules on who a lead is and
``[[behaviour]]`` rules on what it did::

    [thresholds]
    mql = 50
    sql = 80

    [[attribute]]
    name = "senior buyer"
    column = "seniority"          # a lead column, or a derived fit feature of build_features
    in = ["vp", "c_level", "director"]
    points = 15

    [[behaviour]]
    name = "demo request"
    event = "demo_request"
    points = 25                   # per event
    cap = 50                      # at most this many points from the rule
    half_life_days = 30           # or window_days = 30; neither means all time
                                  # (or half_life = "12h" / window = "6h": durations)

``event`` is one of the model's own event types, as the data names it (``"Send Fine"``) or by
its key (``send_fine``), or ``other``.

A behaviour rule with ``range = [low, high]`` gives its points once when the lead's count (or
decayed intensity) lies in ``[low, high)`` instead of per event: the bands of a scorecard.
Points are scored by :func:`score_rules` from the same feature builders as the model.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.build import build_features
from features.spec import OTHER_EVENT_TYPE, FeatureSpec, count_feature, decayed_feature, event_key
from features.timing import duration_days
from models.rules_schema import MATCHES, RulesError, validate_rules_file

#: The example rules shipped with the package: they fit the synthetic CRM's columns and event types.
EXAMPLE_RULES = Path(__file__).with_name("rules_example.toml")


@dataclass(frozen=True)
class AttributeRule:
    """Points when a lead column (or derived fit feature) equals, is in, contains or lies in a range."""

    name: str
    column: str
    points: float
    equals: object = None
    in_: tuple = None
    contains: str = None
    range: tuple = None

    @property
    def match(self) -> str:
        return next(kind for kind in MATCHES if getattr(self, _attr(kind)) is not None)

    def as_dict(self) -> dict:
        kind = self.match
        value = getattr(self, _attr(kind))
        return {"name": self.name, "column": self.column,
                kind: list(value) if isinstance(value, tuple) else value, "points": self.points}


@dataclass(frozen=True)
class BehaviourRule:
    """Points per event of a type (or once, for a count band), optionally capped, windowed or decayed."""

    name: str
    event: str
    points: float
    cap: float | None = None
    window_days: float | None = None
    half_life_days: float | None = None
    range: tuple | None = None

    @property
    def feature(self) -> str:
        """The build_features column this rule reads."""
        key = event_key(self.event)
        if self.half_life_days is not None:
            return decayed_feature(key, float(self.half_life_days))
        if self.window_days is not None:
            return count_feature(key, float(self.window_days))
        return f"events_{key}_total"

    def as_dict(self) -> dict:
        values = {"name": self.name, "event": self.event, "points": self.points}
        for key in ("cap", "window_days", "half_life_days", "range"):
            value = getattr(self, key)
            if value is not None:
                values[key] = list(value) if isinstance(value, tuple) else value
        return values


@dataclass(frozen=True)
class PointsRules:
    """A validated rule set: attribute and behaviour rules, and MQL/SQL point thresholds."""

    mql: float
    sql: float
    attributes: tuple = ()
    behaviours: tuple = ()
    description: str = ""
    source: str = field(default="<rules>", compare=False)

    def __post_init__(self):
        for key in ("mql", "sql"):
            _check_number(getattr(self, key), where=f"{self.source}: [thresholds] {key}")
        if self.sql <= self.mql:
            raise RulesError(f"{self.source}: [thresholds] sql must be above mql. "
                             f"Got mql={self.mql} and sql={self.sql} instead.")

    def feature_spec(self, base: FeatureSpec | None = None) -> FeatureSpec:
        """``base`` (default spec) widened with every window and half-life the rules ask for."""
        base = base or FeatureSpec()
        windows = {float(rule.window_days) for rule in self.behaviours if rule.window_days is not None}
        half_lives = {float(rule.half_life_days) for rule in self.behaviours if rule.half_life_days is not None}
        return FeatureSpec(**{**base.as_dict(),
                              "windows_days": sorted(set(base.windows_days) | windows),
                              "half_lives_days": sorted(set(base.half_lives_days) | half_lives)})

    def as_dict(self) -> dict:
        values = {"thresholds": {"mql": self.mql, "sql": self.sql},
                  "attribute": [rule.as_dict() for rule in self.attributes],
                  "behaviour": [rule.as_dict() for rule in self.behaviours]}
        if self.description:
            values = {"description": self.description, **values}
        return values

    def to_toml(self) -> str:
        """The rules as TOML that :func:`load_rules` reads back."""
        lines = []
        if self.description:
            lines += [f"description = {_toml(self.description)}", ""]
        lines += ["[thresholds]", f"mql = {_toml(self.mql)}", f"sql = {_toml(self.sql)}"]
        for table, rules in (("attribute", self.attributes), ("behaviour", self.behaviours)):
            for rule in rules:
                lines += ["", f"[[{table}]]"]
                lines += [f"{_key(key)} = {_toml(value)}" for key, value in rule.as_dict().items()]
        return "\n".join(lines) + "\n"

    def save(self, path) -> Path:
        path = Path(path)
        path.write_text(self.to_toml())
        return path


def load_rules(path, *, spec: FeatureSpec | None = None, lead_columns=None) -> PointsRules:
    """Read and validate a TOML rules file; errors name the file and the rule.

    ``lead_columns``, when given, are the raw lead columns attribute rules may use besides the
    derived fit features of ``spec``.
    """
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise RulesError(f"{path}: not valid TOML: {error}") from None
    return rules_from_dict(values, spec=spec, lead_columns=lead_columns, source=str(path))


def rules_from_dict(values: dict, *, spec: FeatureSpec | None = None, lead_columns=None,
                    source: str = "<rules>") -> PointsRules:
    """Validate parsed rules (the shape of :meth:`PointsRules.as_dict`)."""
    spec = spec or FeatureSpec()
    checked = validate_rules_file(values, source=source)  # keys, types, ranges; the data's names below
    columns = set(attribute_columns(spec)) | set(() if lead_columns is None else lead_columns)
    attributes = tuple(_attribute_rule(entry, i, source, columns) for i, entry in enumerate(checked.attribute))
    behaviours = tuple(_behaviour_rule(entry, i, source, spec) for i, entry in enumerate(checked.behaviour))
    names = [rule.name for rule in (*attributes, *behaviours)]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RulesError(f"{source}: rule names must be unique; {duplicates} appear more than once.")
    return PointsRules(mql=checked.thresholds.mql, sql=checked.thresholds.sql, attributes=attributes,
                       behaviours=behaviours, description=checked.description, source=source)


def attribute_columns(spec: FeatureSpec) -> list[str]:
    """Derived columns attribute rules may use: the fit features, raw lead numbers and lead age."""
    return [*spec.categorical_feature_names, *spec.numeric_columns, *spec.numeric_fit_feature_names,
            "lead_age_days"]


def score_rules(rules: PointsRules, snapshots: pd.DataFrame, leads: pd.DataFrame, events, *,
                spec: FeatureSpec | None = None, features: pd.DataFrame | None = None) -> pd.DataFrame:
    """Points, tier and per-rule points of each (lead_id, as_of) snapshot, on the snapshots' index.

    The features come from :func:`features.build.build_features` with ``rules.feature_spec(spec)``,
    so the rules see exactly the history the model sees (events strictly before ``as_of``).
    Pass ``features`` already built with a spec holding the rules' columns to skip building.
    """
    if features is None:
        features = build_features(snapshots, leads, events, rules.feature_spec(spec))
    table = rule_inputs(features, snapshots, leads)
    return points_from_inputs(rules, table)


def rule_inputs(features: pd.DataFrame, snapshots: pd.DataFrame, leads: pd.DataFrame) -> pd.DataFrame:
    """Feature rows plus the raw lead columns, aligned on the snapshots: what rules match on."""
    positions = pd.Index(leads["lead_id"]).get_indexer(snapshots["lead_id"])
    raw = leads.iloc[positions].set_index(features.index)
    extra = [column for column in raw.columns if column not in features.columns]
    return pd.concat([features, raw[extra]], axis=1)


def points_from_inputs(rules: PointsRules, table: pd.DataFrame) -> pd.DataFrame:
    """Score rules on a frame holding every column they read: ``points``, ``tier``, ``rule:<name>``."""
    per_rule = {}
    for rule in rules.attributes:
        per_rule[rule.name] = np.where(_attribute_mask(rule, table), float(rule.points), 0.0)
    for rule in rules.behaviours:
        if rule.feature not in table.columns:
            raise RulesError(f"{rules.source}: behaviour rule {rule.name!r} needs feature {rule.feature!r}; "
                             "build the features with rules.feature_spec(spec).")
        measure = table[rule.feature].to_numpy(dtype=float)
        if rule.range is not None:
            low, high = rule.range
            points = np.where((measure >= low) & (measure < high), float(rule.points), 0.0)
        else:
            points = float(rule.points) * measure
        if rule.cap is not None:
            points = np.clip(points, -abs(rule.cap), abs(rule.cap))
        per_rule[rule.name] = points
    contributions = pd.DataFrame({f"rule:{name}": values for name, values in per_rule.items()}, index=table.index)
    points = contributions.sum(axis=1) if per_rule else pd.Series(0.0, index=table.index)
    tier = np.where(points >= rules.sql, "SQL", np.where(points >= rules.mql, "MQL", "nurture")).astype(object)
    return pd.concat([pd.DataFrame({"points": points.to_numpy(), "tier": tier}, index=table.index), contributions],
                     axis=1)


def top_rules(scored: pd.DataFrame, *, n: int = 3) -> pd.Series:
    """The ``n`` rules that gave each lead the most points (by absolute value), as readable text."""
    columns = [column for column in scored.columns if column.startswith("rule:")]
    values = scored[columns].to_numpy()
    names = np.array([column[len("rule:"):] for column in columns], dtype=object)
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :n]
    texts = []
    for row, picks in zip(values, order):
        texts.append("; ".join(f"{names[j]} {row[j]:+.0f}" for j in picks if row[j] != 0) or "no rule fired")
    return pd.Series(texts, index=scored.index)


# --- validation ------------------------------------------------------------------------------


def _attribute_rule(entry, index, source, columns) -> AttributeRule:
    """An attribute rule from its checked entry (``models.rules_schema.AttributeEntry``), its column known."""
    where = f"{source}: attribute rule {index + 1}" + (f" ({entry.name!r})" if entry.name else "")
    if entry.column not in columns:
        raise RulesError(f"{where}: unknown column {entry.column!r}; expected one of {sorted(columns)}.")
    kind = next(kind for kind in MATCHES if getattr(entry, _attr(kind)) is not None)
    value = getattr(entry, _attr(kind))
    value = tuple(float(bound) for bound in value) if kind == "range" else tuple(value) if kind == "in" else value
    return AttributeRule(name=entry.name or f"attribute {index + 1}", column=entry.column, points=entry.points,
                         **{_attr(kind): value})


def _behaviour_rule(entry, index, source, spec: FeatureSpec) -> BehaviourRule:
    """A behaviour rule from its checked entry (``models.rules_schema.BehaviourEntry``), its event type the model's."""
    where = f"{source}: behaviour rule {index + 1}" + (f" ({entry.name!r})" if entry.name else "")
    if spec.event_key_of(entry.event) is None:
        raise RulesError(f"{where}: unknown event type {entry.event!r}; expected one of the model's event types "
                         f"{[*spec.event_types, OTHER_EVENT_TYPE]} (by name or key).")
    window = entry.window_days if entry.window is None else duration_days(entry.window)
    half_life = entry.half_life_days if entry.half_life is None else duration_days(entry.half_life)
    return BehaviourRule(name=entry.name or f"{entry.event} {index + 1}", event=entry.event, points=entry.points,
                         cap=entry.cap, window_days=window, half_life_days=half_life,
                         range=tuple(float(bound) for bound in entry.range) if entry.range is not None else None)


def _attribute_mask(rule: AttributeRule, table: pd.DataFrame) -> np.ndarray:
    values = table[rule.column]
    kind = rule.match
    if kind == "range":
        low, high = rule.range
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            return (numbers >= low) & (numbers < high)
    text = values.astype(object).where(values.notna(), None).map(
        lambda value: None if value is None else str(value).strip().lower())
    if kind == "equals":
        return (text == str(rule.equals).strip().lower()).to_numpy()
    if kind == "in":
        return text.isin({str(value).strip().lower() for value in rule.in_}).to_numpy()
    needle = rule.contains.strip().lower()
    return text.map(lambda value: value is not None and needle in value).to_numpy(dtype=bool)


def _check_number(value, *, where) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise RulesError(f"{where} must be a number. Got {value!r} instead.")


def _attr(kind: str) -> str:
    return "in_" if kind == "in" else kind


def _key(key: str) -> str:
    return key if key.replace("_", "").isalnum() else _toml(key)


def _toml(value) -> str:
    """A TOML literal for the plain values rules hold."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return str(value)

