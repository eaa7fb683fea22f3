"""The project config: a TOML file that maps a company's own export onto the data contract.

Written by ``python -m training init-config`` (see :mod:`crm.infer_config`), edited by the
user, read by ``python -m training train --config`` and ``python serve.py score --config``. Its
keys and types are checked against :mod:`crm.config_schema` (pydantic); what needs several keys
together is checked here. :mod:`crm.export` reads the export the way a config maps it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from crm.config_schema import (DEFAULT_MISSING_VALUES, NEGATIVE_VALUES, POSITIVE_VALUES, RolesSection,
                               validate_config_file)
from crm.outcomes import DealColumns, EventColumns
from features.spec import FeatureSpec
from features.timing import duration_days
from features.vocabulary import EventVocabulary

ROLES = tuple(RolesSection.model_fields)
#: [training] duration keys -> TrainingConfig fields (the older *_days names are kept and mean the same).
_TRAINING_SPANS = {"horizon": "horizon_days", "snapshot_every": "snapshot_every_days", "test_span": "test_days",
                   "calibration_span": "calibration_days", "horizon_days": "horizon_days",
                   "snapshot_every_days": "snapshot_every_days", "test_days": "test_days",
                   "calibration_days": "calibration_days"}


@dataclass(frozen=True)
class ProjectConfig:
    """A parsed, checked project config. Build it with :func:`load_config` (or directly in tests)."""

    leads: Path | str
    id: str | None = None
    row_number_id: bool = False
    events: Path | str | None = None
    deals: Path | str | None = None
    #: A database URL: then leads, events and deals are table names or queries in it, not files.
    url: str | None = None
    delimiter: str | None = None
    encoding: str = "utf-8-sig"
    decimal: str | None = None  # None: detected from the file's values
    date_format: str | None = None  # strftime, for dates whose day/month order the values cannot show
    created_at: str | None = None
    #: Leads whose ``created_at`` is blank: "refuse" (an error) or "leave_out" (left out, counted on every read).
    undated_leads: str = "refuse"
    label: str | None = None
    positive: tuple = POSITIVE_VALUES
    negative: tuple = NEGATIVE_VALUES
    open: tuple = ()
    email: str | None = None
    job_title: str | None = None
    missing_values: tuple = DEFAULT_MISSING_VALUES
    categorical: tuple = ()
    numeric: tuple = ()
    numeric_raw: tuple = ()
    boolean: tuple = ()
    engagement: tuple = ()
    engagement_categorical: tuple = ()
    pii: tuple = ()
    ignore: tuple = ()
    max_auc: float = 0.95
    suspicious_auc: float = 0.80
    post_outcome: tuple = ()
    keep: tuple = ()
    training: dict = field(default_factory=dict)
    tiers: dict = field(default_factory=dict)
    #: ``threads``: threads for LightGBM and BLAS (see ``models.threads``); --threads and
    #: LEAD_SCORING_THREADS win over it.
    runtime: dict = field(default_factory=dict)
    event_columns: EventColumns = field(default_factory=EventColumns)
    #: The event types that get columns: listed in the config, else None (learned from the data
    #: within ``vocabulary``'s limits, or the contract's twelve for a ``[data] events`` log).
    event_types: tuple | None = None
    event_words: tuple = ()
    vocabulary: EventVocabulary | None = None
    windows_days: tuple | None = None
    half_lives_days: tuple | None = None
    deal_columns: DealColumns = field(default_factory=DealColumns)
    #: The config file, for messages that point back at a section and key.
    source: str = field(default="the config", compare=False)

    def __post_init__(self):
        if (self.id is None) == (not self.row_number_id):
            raise ValueError("The config must identify leads one way: a [columns] id column, or, for an export "
                             "without one, row_number_id = true (each lead's row number is its id).")
        if self.label is None and self.deals is None:
            raise ValueError("The config must name the outcome: a [columns] label column, or a [data] deals table.")
        if self.label is not None and self.deals is not None:
            raise ValueError("The config names two outcomes, a [columns] label and a [data] deals table; keep one.")
        if self.deals is not None and self.created_at is None:
            raise ValueError("A deals table needs a [columns] created_at column: training takes point-in-time "
                             "snapshots between creation and closing.")
        if self.events is not None and (self.deals is None or self.created_at is None):
            raise ValueError("An event log needs a deals table and a [columns] created_at column: training then "
                             "takes point-in-time snapshots. Without them, leave events out.")
        seen = {}
        for role in (*ROLES, "email", "job_title", "id", "created_at", "label"):
            for column in self._role_columns(role):
                if column in seen:
                    raise ValueError(f"Column {column!r} has two roles in the config: {seen[column]} and {role}. "
                                     "Give it one.")
                seen[column] = role

    def _role_columns(self, role: str) -> tuple:
        value = getattr(self, role)
        return tuple(value) if isinstance(value, tuple) else ((value,) if isinstance(value, str) else ())

    @property
    def dated(self) -> bool:
        """Leads carry a creation date."""
        return self.created_at is not None

    @property
    def declared_columns(self) -> list[str]:
        return [column for role in (*ROLES, "email", "job_title", "id", "created_at", "label")
                for column in self._role_columns(role)]

    def feature_spec(self) -> FeatureSpec:
        """The feature spec this config asks for; PII other than the e-mail domain never becomes a feature."""
        snapshots = self.deals is not None  # dated leads + closed deals: point-in-time snapshots
        events = {}
        if self.event_types is not None:
            events["event_types"] = self.event_types
        if self.event_words and self.event_types is not None:  # learned types get their words in training
            events["event_words"] = self.event_words
        if self.windows_days is not None:
            events["windows_days"] = self.windows_days
        if self.half_lives_days is not None:
            events["half_lives_days"] = self.half_lives_days
        return FeatureSpec(
            categorical_columns=(*self.categorical, *self.engagement_categorical),
            numeric_columns=(*self.numeric, *self.engagement),
            raw_numeric_columns=self.numeric_raw, boolean_columns=self.boolean,
            job_title_column=self.job_title, email_column=self.email,
            missing_tokens=tuple(token.strip().lower() for token in self.missing_values),
            event_log=self.events is not None, lead_age=snapshots, **events,
            engagement_columns=(*self.engagement, *self.engagement_categorical),
        )

    def event_vocabulary(self) -> EventVocabulary | None:
        """How training picks the event types: learned within these limits, or None when they are fixed."""
        if self.event_types is not None or self.events is None or self.vocabulary is None:
            return None
        return replace(self.vocabulary, words=self.event_words)

    def training_options(self) -> dict:
        """Keyword arguments for :class:`training.pipeline.TrainingConfig` from ``[training]`` and ``[leakage]``."""
        options = {_TRAINING_SPANS.get(key, key): value for key, value in self.training.items()
                   if key not in ("model_name", "split_shares")}
        if "split_shares" in self.training:
            options["lead_shares"] = tuple(self.training["split_shares"])
        return {**options, "leakage_max_auc": self.max_auc, "leakage_suspicious_auc": self.suspicious_auc,
                "post_outcome_columns": self.post_outcome, "keep_columns": self.keep}

    @property
    def model_name(self) -> str | None:
        return self.training.get("model_name")


def load_config(path) -> ProjectConfig:
    """Read and check a project config; relative data paths are relative to the config file."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such config file. Write one with `python -m training init-config --leads FILE`.")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None
    validate_config_file(raw, source=str(path))  # keys and types; what needs several keys is checked below
    data, columns = raw["data"], raw.get("columns", {})
    if not ("id" in columns or columns.get("row_number_id")):
        raise ValueError(f"{path}: the config needs [columns] id (or row_number_id = true for an export without an "
                         "id column).")

    def located(value):
        return None if not value else (path.parent / value if not Path(value).is_absolute() else Path(value))

    for table in ("events", "deals"):
        if table in raw and data.get(table):
            raise ValueError(f"{path}: the {table} table is named twice, as [data] {table} and [{table}] file; "
                             f"keep [{table}].")
    training = dict(raw.get("training", {}))
    spans = {}
    for key in [key for key in training if key in _TRAINING_SPANS]:
        field_name = _TRAINING_SPANS[key]
        if field_name in spans:
            raise ValueError(f"{path}: [training] sets {field_name.removesuffix('_days')} twice ({spans[field_name]} "
                             f"and {key}); keep one.")
        spans[field_name] = key
        duration_days(training[key], name=f"{path}: [training] {key}")
    url = _database_url(data, path, located)
    if url is not None:  # tables or queries in a database, not files
        values = {"leads": str(data["leads"]), "events": data.get("events") or None,
                  "deals": data.get("deals") or None, "url": url}
    else:
        values = {"leads": located(data["leads"]), "events": located(data.get("events")),
                  "deals": located(data.get("deals"))}
    values.update(training=training, source=str(path), tiers=dict(raw.get("tiers", {})),
                  runtime=dict(raw.get("runtime", {})))
    for table, read_section in (("events", _event_values), ("deals", _deal_values)):
        if table in raw:
            section = raw[table]
            sources = [key for key in ("file", "table", "query") if key in section]
            if len(sources) != 1:
                raise ValueError(f"{path}: [{table}] needs one of file, table or query (table and query with "
                                 f"[data] url). Got {sources or 'none'}.")
            if (sources[0] == "file") == (url is not None):
                raise ValueError(f"{path}: [{table}] {sources[0]} " + (
                    "needs [data] url, the database holding it." if url is None else
                    "is a file but [data] url names a database; use table or query."))
            values.update(read_section({**section, "file": section[sources[0]]}, path,
                                       located if url is None else (lambda value: value)))
    values.update({key: value for key, value in data.items() if key in ("delimiter", "encoding", "decimal",
                                                                        "date_format")})
    for key, value in {**columns, **raw.get("roles", {}), **raw.get("leakage", {})}.items():
        values[key] = (tuple(str(item) for item in value) if isinstance(value, list)
                       else value if isinstance(value, bool) else (value or None))
    names = {item.name for item in fields(ProjectConfig)}
    try:
        return ProjectConfig(**{key: value for key, value in values.items() if key in names})
    except ValueError as error:  # what needs several keys together: the message names the file too
        raise ValueError(f"{path}: {error}") from None


def _event_values(section: dict, path: Path, located) -> dict:
    """ProjectConfig fields from an ``[events]`` section; every value checked, errors name file, section, key."""
    where = f"{path}: [events]"
    kinds = section.get("type", "event_type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if not kinds or not all(kinds):
        raise ValueError(f"{where} type must be a column name or a list of them (joined with type_separator). "
                         f"Got {section.get('type')!r} instead.")
    columns = EventColumns(id=section.get("id", "lead_id"), timestamp=section.get("timestamp", "occurred_at"),
                           type=tuple(kinds), type_separator=section.get("type_separator", "+"),
                           value=section.get("value") or None)
    values = {"events": located(section["file"]), "event_columns": columns}
    if "types" in section:
        values["event_types"] = tuple(section["types"])
    words = section.get("words", {})
    values["event_words"] = tuple((str(kind), text if isinstance(text, str) else tuple(text))
                                  for kind, text in words.items())
    if "event_types" in values:  # listed types: their keys, and the words' types, are checked now
        try:
            FeatureSpec(event_types=values["event_types"], event_words=values["event_words"])
        except ValueError as error:
            raise ValueError(f"{where} types: {error}") from None
    limits = {key: section[key] for key in ("max_types", "min_count", "min_share") if key in section}
    try:
        values["vocabulary"] = EventVocabulary(**limits)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    if "types" in section and limits:
        raise ValueError(f"{where} lists types and sets {sorted(limits)}; the limits only apply when the types "
                         "are learned from the data. Keep one.")
    for key, field_name in (("windows", "windows_days"), ("half_lives", "half_lives_days")):
        if key in section:
            values[field_name] = tuple(duration_days(value, name=f"{where} {key}") for value in section[key])
    return values


def _deal_values(section: dict, path: Path, located) -> dict:
    """ProjectConfig fields from a ``[deals]`` section."""
    where = f"{path}: [deals]"
    lists = {}
    for key in ("won", "lost"):
        value = section.get(key, [key])
        value = value if isinstance(value, list) else [value]
        if not value:
            raise ValueError(f"{where} {key} must list the outcome values that mean {key}. Got {value!r} instead.")
        lists[key] = tuple(str(item).lower() if isinstance(item, bool) else str(item) for item in value)
    overlap = {v.strip().lower() for v in lists["won"]} & {v.strip().lower() for v in lists["lost"]}
    if overlap:
        raise ValueError(f"{where} won and lost share the value(s) {sorted(overlap)}; each value means one outcome.")
    won_only = section.get("won_only", False)
    lost_after = section.get("lost_after")
    if lost_after is not None:
        if not won_only:
            raise ValueError(f"{where} lost_after applies to a table of won deals only; set won_only = true "
                             "or remove lost_after.")
        lost_after = duration_days(lost_after, name=f"{where} lost_after")
    if won_only and "lost" in section:
        raise ValueError(f"{where} lists lost values but won_only = true; a won-only table has none. Keep one.")
    columns = DealColumns(id=section.get("id", "lead_id"), closed_at=section.get("closed_at", "closed_at"),
                          outcome=section.get("outcome", "outcome"), won=lists["won"], lost=lists["lost"],
                          amount=section.get("amount") or None, won_only=won_only, lost_after_days=lost_after,
                          where="[deals]")
    return {"deals": located(section["file"]), "deal_columns": columns}


def _database_url(data: dict, path: Path, located) -> str | None:
    """``[data] url``, a relative DuckDB file made relative to the config file; None without one."""
    if not data.get("url"):
        return None
    url = str(data["url"])
    if url.startswith("duckdb:///") and not url.startswith("duckdb:////"):
        return f"duckdb:///{located(url[len('duckdb:///'):])}"
    if "://" not in url:  # a DuckDB file path
        return f"duckdb:///{located(url)}"
    return url
