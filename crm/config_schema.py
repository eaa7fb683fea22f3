"""The project config's shape as pydantic models: one model per TOML section, unknown keys refused.

:func:`validate_config_file` checks a parsed TOML file against :class:`ConfigFile` (keys, types,
ranges) and turns pydantic's errors into one line that names the file and the key path
(``config.toml: [events] windows[2] must be a duration such as '6h' ... Got 'soon' instead.``).
What needs more than one key or the data (two roles for one column, a deals table without a
creation date) is checked by :class:`crm.config.ProjectConfig`. ``ConfigFile.model_json_schema()``
is the JSON Schema editors use to complete and check a config as it is typed (see
docs/data-scientist/config-reference.md). :class:`StrictSection` and :func:`describe_errors` are
shared with the points rules (``models.rules_schema``).
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator

from features.timing import duration_days


class StrictSection(BaseModel):
    """A config table: unknown keys refused, no silent conversions (``"5"`` is not 5, ``true`` is not 1)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _duration(value):
    try:
        duration_days(value)
    except ValueError as error:
        raise ValueError(str(error).removeprefix("duration ")) from None
    return value


#: ``"6h"``, ``"2d"``, ``"90d"``, ``"1w"``, ``"30m"``, or a plain number of days.
Duration = Annotated[str | float, BeforeValidator(_duration), WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(m|min|h|d|w)?\s*$"},
              {"type": "number", "exclusiveMinimum": 0}],
    "description": "A duration: '6h', '2d', '90d', '1w', '30m', or a plain number of days."})]
#: Values that mean "not filled in" in exports; init-config starts from these (compared lower-cased).
DEFAULT_MISSING_VALUES = ("", "select", "unknown", "n/a", "na", "none", "null", "nan", "-", "?", "not provided")
#: Label values that mean converted, and not converted, unless the config lists its own.
POSITIVE_VALUES = ("1", "yes", "true", "won", "converted")
NEGATIVE_VALUES = ("0", "no", "false", "lost", "not converted")
#: A label or outcome value as the export writes it: text, a number or a boolean (compared as text).
Value = str | int | float | bool
Columns = list[str]


class DataSection(StrictSection):
    """Where the export is: files (relative to the config file) or tables and queries in a database."""

    leads: str = Field(description="The lead table: a CSV or Parquet file, or with url a table name or query.")
    events: str | None = Field(None, description="An event log with the contract's column names (else [events]).")
    deals: str | None = Field(None, description="A closed-deals table with the contract's names (else [deals]).")
    url: str | None = Field(None, description="A database URL (SQLAlchemy), or a DuckDB file path.")
    delimiter: str | None = Field(None, description="CSV delimiter; detected from the file when left out.")
    encoding: str = Field("utf-8-sig", description="CSV text encoding.")
    decimal: str | None = Field(None, description="Decimal mark ('.' or ','); detected from the values when left out.")
    date_format: str | None = Field(None, description="strftime format, for dates whose day/month order is ambiguous.")


class ColumnsSection(StrictSection):
    """Which lead columns are the id, the creation date, the outcome, the e-mail and the job title."""

    id: str | None = Field(None, description="The column that identifies a lead (unique).")
    row_number_id: bool = Field(False, description="No id column: each lead's row number is its id.")
    created_at: str | None = Field(None, description="The lead's creation date: enables temporal splits.")
    undated_leads: Literal["refuse", "leave_out"] = Field(
        "refuse", description="Leads whose creation date is blank: refused (an error naming them), or left out of "
                              "training and scoring and counted on every read.")
    label: str | None = Field(None, description="The outcome column (or give a deals table instead).")
    positive: list[Value] = Field(list(POSITIVE_VALUES), description="Label values meaning converted.")
    negative: list[Value] = Field(list(NEGATIVE_VALUES), description="Label values meaning not converted.")
    open: list[Value] = Field([], description="Label values of leads still undecided: left out of training.")
    email: str | None = Field(None, description="E-mail column (PII): only its domain type becomes a feature.")
    job_title: str | None = Field(None, description="Job-title column: seniority and function are parsed from it.")
    missing_values: list[str] = Field(list(DEFAULT_MISSING_VALUES),
                                      description="Values that mean 'not filled in' (compared lower-cased).")


class RolesSection(StrictSection):
    """What each remaining lead column is; a column has one role."""

    categorical: Columns = Field([], description="Text with few distinct values, and integer codes.")
    numeric: Columns = Field([], description="Non-negative numbers, counts and amounts: used as log(1 + x).")
    numeric_raw: Columns = Field([], description="Numbers that can be negative: used as they are.")
    boolean: Columns = Field([], description="yes/no, true/false or 1/0 columns.")
    engagement: Columns = Field([], description="Summarised behaviour as numbers (visits, time on site).")
    engagement_categorical: Columns = Field([], description="Summarised behaviour as text (last activity).")
    pii: Columns = Field([], description="Personal data: dropped on reading, never a feature, never logged.")
    ignore: Columns = Field([], description="Not used.")


class LeakageSection(StrictSection):
    """Columns written after the outcome, declared or caught by their AUC alone."""

    max_auc: float = Field(0.95, gt=0.5, le=1, description="A column reaching this ROC AUC alone is excluded.")
    suspicious_auc: float = Field(0.80, gt=0.5, le=1, description="Above this a column is kept but flagged.")
    post_outcome: Columns = Field([], description="Columns known to be written after the outcome: excluded.")
    keep: Columns = Field([], description="Columns kept even if they reach max_auc.")


class TrainingSection(StrictSection):
    """Spans, guards and options of training (the command line's options win over these)."""

    horizon: Duration = Field("90d", description="A snapshot's label: won within this span.")
    snapshot_every: Duration = Field("15d", description="Spacing of the as_of dates.")
    test_span: Duration = Field("90d", description="The newest span, for the test split.")
    calibration_span: Duration = Field("60d", description="The span before it, for calibration.")
    horizon_days: Duration | None = Field(None, description="Older name of horizon.")
    snapshot_every_days: Duration | None = Field(None, description="Older name of snapshot_every.")
    test_days: Duration | None = Field(None, description="Older name of test_span.")
    calibration_days: Duration | None = Field(None, description="Older name of calibration_span.")
    min_positives: int = Field(40, ge=1, description="Refuse to train with fewer converted examples.")
    min_negatives: int = Field(40, ge=1, description="... or fewer non-converted ones.")
    min_split_positives: int = Field(20, ge=0, description="Warn when a split has fewer converted examples.")
    min_converted_leads: int = Field(20, ge=0, description="Distinct converting leads training needs.")
    min_split_converted_leads: int = Field(10, ge=0, description="... and each split.")
    min_validation_auc: float = Field(0.55, ge=0, le=1, description="At or below: not promoted, tiers uninformative.")
    split_shares: list[float] = Field([0.6, 0.2, 0.2], min_length=3, max_length=3,
                                      description="Train, calibration and test shares of an undated export.")
    seed: int = Field(0, description="Seed of splits and models.")
    model_name: str | None = Field(None, description="Registered model name in MLflow.")
    segment_by: str | None = Field(None, description="A column whose values get their own metrics.")
    search_seconds: float = Field(0.0, ge=0, description="Hyperparameter search budget (0: none).")
    per_lead_candidates: list[str] = Field(["lightgbm"], description="Candidates fitted with per-lead weights.")
    recency_half_lives: list[Duration] = Field(
        [], description='Offer LightGBM fitted with recent snapshots weighing more, e.g. ["180d"]; the windows choose.')


class EventsSection(StrictSection):
    """An event log in the company's own shape: its columns and its activity vocabulary."""

    file: str | None = Field(None, description="The event log file (or table / query with [data] url).")
    table: str | None = Field(None, description="A table in the [data] url database.")
    query: str | None = Field(None, description="A SELECT in the [data] url database.")
    id: str = Field("lead_id", description="The lead id column.")
    timestamp: str = Field("occurred_at", description="When the event happened.")
    type: str | list[str] = Field("event_type",
                                  description="The event type column, or several joined with type_separator.")
    type_separator: str = Field("+", description="Joins several type columns into one type.")
    value: str | None = Field(None, description="An optional numeric value column.")
    types: list[str] | None = Field(None, min_length=1, description="The types that get columns (else learned).")
    words: dict[str, str | list[str]] = Field(
        {}, description='Words for reasons per type: "sent the offer back", or [one, many, did].')
    max_types: int = Field(30, ge=1, description="Learned types: at most this many get columns.")
    min_count: int = Field(20, ge=1, description="Learned types: at least this many events.")
    min_share: float = Field(0.0, ge=0, lt=1, description="Learned types: at least this share of all events.")
    windows: list[Duration] | None = Field(None, min_length=1, description='Count windows, e.g. ["6h", "1d", "7d"].')
    half_lives: list[Duration] | None = Field(None, min_length=1, description="Half-lives of decayed intensity.")

    @field_validator("words", mode="before")
    @classmethod
    def _words(cls, words):
        if not isinstance(words, dict):
            raise ValueError(f'must be a table of type = "words", e.g. [events.words] O_SENT_BACK = "sent the offer '
                             f'back". Got {words!r} instead.')
        for kind, text in words.items():
            if not (isinstance(text, str) and text.strip()) and not (
                    isinstance(text, list) and len(text) == 3 and all(isinstance(t, str) and t.strip() for t in text)):
                raise ValueError(f'{kind!r} must be what the lead did ("sent the offer back") or three phrases '
                                 f'[one, many, did] (["demo request", "demo requests", "requested a demo"]). '
                                 f"Got {text!r} instead.")
        return words


class DealsSection(StrictSection):
    """A closed-deals table in the company's own shape."""

    file: str | None = Field(None, description="The deals file (or table / query with [data] url).")
    table: str | None = Field(None, description="A table in the [data] url database.")
    query: str | None = Field(None, description="A SELECT in the [data] url database.")
    id: str = Field("lead_id", description="The lead id column.")
    closed_at: str = Field("closed_at", description="When the deal closed.")
    outcome: str = Field("outcome", description="The outcome column.")
    won: Value | list[Value] = Field(["won"], description="Outcome values meaning won.")
    lost: Value | list[Value] = Field(["lost"], description="Outcome values meaning lost.")
    amount: str | None = Field(None, description="The deal amount column (expected-value tiers, revenue forecast).")
    won_only: bool = Field(False, description="The table holds won deals only.")
    lost_after: Duration | None = Field(None, description="With won_only: a lead this long inactive counts as lost.")


class TiersSection(StrictSection):
    """How the SQL / MQL cut-offs are chosen on the calibration split."""

    kind: Literal["capacity", "precision", "threshold", "lift", "expected_value"] = Field(
        "capacity", description="The business rule the cut-offs follow.")
    sql_share: float | None = Field(None, gt=0, lt=1, description="capacity: share of leads that are SQL.")
    mql_share: float | None = Field(None, gt=0, lt=1, description="capacity: share of leads that are SQL or MQL.")
    sql_precision: float | None = Field(None, gt=0, lt=1, description="precision: expected conversion of SQLs.")
    mql_precision: float | None = Field(None, gt=0, lt=1, description="precision: expected conversion of MQLs.")
    sql_probability: float | None = Field(None, gt=0, lt=1, description="threshold: SQL from this probability.")
    mql_probability: float | None = Field(None, gt=0, lt=1, description="threshold: MQL from this probability.")
    sql_lift: float | None = Field(None, gt=0, description="lift: SQL conversion this many times the base rate.")
    mql_lift: float | None = Field(None, gt=0, description="lift: MQL conversion this many times the base rate.")
    won_value: float | None = Field(None, gt=0, description="expected_value: a won deal's worth (default: median).")
    sql_cost: float | None = Field(None, ge=0, description="expected_value: cost of working an SQL.")
    mql_cost: float | None = Field(None, ge=0, description="expected_value: cost of working an MQL.")


class RuntimeSection(StrictSection):
    """How the machine is used."""

    threads: int | None = Field(None, ge=1, description="Threads for LightGBM and BLAS (--threads and "
                                                        "LEAD_SCORING_THREADS win over it).")


class ConfigFile(StrictSection):
    """A project config: maps a company's CRM export onto the data contract (``init-config`` writes one)."""

    model_config = ConfigDict(title="Lead-scoring project config")

    data: DataSection
    columns: ColumnsSection = ColumnsSection()
    roles: RolesSection = RolesSection()
    leakage: LeakageSection = LeakageSection()
    training: TrainingSection = TrainingSection()
    events: EventsSection | None = None
    deals: DealsSection | None = None
    tiers: TiersSection | None = None
    runtime: RuntimeSection = RuntimeSection()


def validate_config_file(raw: dict, *, source: str) -> ConfigFile:
    """``raw`` (a parsed TOML file) checked against :class:`ConfigFile`; a ValueError names file and key path."""
    try:
        return ConfigFile.model_validate(raw)
    except ValidationError as error:
        raise ValueError(describe_errors(error, ConfigFile, source=source)) from None


def json_schema_text(model: type[BaseModel]) -> str:
    """``model``'s JSON Schema as the published file holds it (editors read it to complete and check a file)."""
    return json.dumps(model.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


def reference_markdown(model: type[BaseModel]) -> str:
    """A table per section of ``model``'s JSON Schema (key, type, default, meaning): the config reference's body."""
    schema = model.model_json_schema()
    sections = [(None, schema)] + [(f"[[{name}]]" if field.get("type") == "array" else f"[{name}]",
                                    schema["$defs"][_ref_name(field)])
                                   for name, field in schema["properties"].items() if _ref_name(field)]
    lines = []
    for name, section in sections:
        rows = [(key, field) for key, field in section["properties"].items() if not _ref_name(field)]
        if not rows:
            continue
        lines += ["", f"### {name or 'Top level'}", "", section.get("description", ""), "",
                  "| key | type | default | meaning |", "|---|---|---|---|"]
        required = set(section.get("required", ()))
        for key, field in rows:
            default = ("required" if key in required else "\u2013" if field.get("default") is None
                       else f"`{json.dumps(field['default'], ensure_ascii=False)}`")
            lines.append(f"| `{key}` | {_type_words(field)} | {default} | {field.get('description', '')} |")
    return "\n".join(lines[1:]) + "\n"


def _ref_name(field: dict) -> str | None:
    refs = [item["$ref"] for item in (field, *field.get("anyOf", ()), field.get("items", {})) if "$ref" in item]
    return refs[0].rsplit("/", 1)[-1] if refs else None


def _type_words(field: dict) -> str:
    if "anyOf" in field:
        words = dict.fromkeys(_type_words(item) for item in field["anyOf"] if item.get("type") != "null")
        if "number" in words:  # a whole number is a number
            words.pop("whole number", None)
        return " or ".join(words)
    if "enum" in field or "const" in field:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in field.get("enum", [field.get("const")]))
    if field.get("type") == "array":
        return f"list of {_type_words(field.get('items', {}))}"
    if field.get("type") == "object":
        return "table"
    if "$ref" in field:
        return "table"
    return {"string": "text", "number": "number", "integer": "whole number", "boolean": "true / false"}.get(
        field.get("type", ""), "value")


def describe_errors(error: ValidationError, model: type[BaseModel], *, source: str, place=None) -> str:
    """pydantic's errors as one line: ``source: <key path> <problem>``, each problem in the project's words.

    ``place(loc)`` writes a key path for people (default: ``[section] key[2]``).
    """
    place = place or toml_place
    problems, seen = [], set()
    for item in error.errors():
        loc = tuple(part for part in item["loc"] if not _is_union_tag(part))
        if loc in seen:  # one problem per key: a value that fits no branch of a union is one mistake
            continue
        seen.add(loc)
        problems.append(f"{place(loc)} {_problem(item, model, loc)}".strip())
    return f"{source}: " + "; ".join(problem.removesuffix(".") for problem in problems) + "."


def toml_place(loc: tuple) -> str:
    """``("events", "windows", 1)`` -> ``[events] windows[2]``; the first key is the section."""
    if not loc:
        return ""
    return f"[{loc[0]}]" + (f" {key_path(loc[1:])}" if len(loc) > 1 else "")


def key_path(parts) -> str:
    """``("words", "x")`` -> ``words.x``; ``("windows", 1)`` -> ``windows[2]`` (positions count from 1)."""
    text = ""
    for part in parts:
        text += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


_PHRASES = {"float_type": "a number", "int_type": "a whole number", "string_type": "text", "bool_type": "true or false",
            "list_type": "a list", "dict_type": "a table", "model_type": "a table", "finite_number": "a finite number"}


def _problem(item: dict, model: type[BaseModel], loc: tuple) -> str:
    kind, message = item["type"], item["msg"]
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        allowed = sorted(field.alias or name for name, field in parent.model_fields.items()) if parent else []
        noun = "section" if len(loc) == 1 else "key"
        return f"is an unknown {noun}; expected one of {allowed}."
    if kind == "missing":
        return "is required."
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    if kind in ("too_short", "too_long"):
        bound = item["ctx"].get("min_length" if kind == "too_short" else "max_length")
        return f"must have {'at least' if kind == 'too_short' else 'at most'} {bound} item(s). " \
               f"Got {item['input']!r} instead."
    phrase = _PHRASES.get(kind) or message.removeprefix("Input should be ")
    return f"must be {phrase}. Got {item['input']!r} instead."


def _model_at(model, loc: tuple):
    """The section model a key path points into (for the keys an unknown key could have been)."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        model = next((arg for arg in (field.annotation, *getattr(field.annotation, "__args__", ()))
                      if isinstance(arg, type) and issubclass(arg, BaseModel)), None)
        if model is None:
            for arg in getattr(field.annotation, "__args__", ()):  # list[Model] | None
                inner = next((a for a in getattr(arg, "__args__", ()) if isinstance(a, type)
                              and issubclass(a, BaseModel)), None)
                if inner is not None:
                    model = inner
    return model


def _is_union_tag(part) -> bool:
    # pydantic names a union's branch in the location ("str", "list[str]", "function-before[...]").
    return isinstance(part, str) and (part in ("str", "int", "float", "bool") or "[" in part)
