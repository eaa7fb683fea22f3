"""The project config: a TOML file that maps a company's own export onto the data contract.

Written by ``python -m training init-config`` (see :mod:`crm.infer_config`), edited by the
user, read by ``python -m training train --config`` and ``python serve.py score --config``.
"""

from __future__ import annotations

import tomllib
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from crm.column_profile import value_text
from crm.outcomes import DealColumns, EventColumns, latest_moment, lost_after_inactivity, read_deals, read_events
from crm.readers import load_crm, parse_numbers, read_table
from features.contract import DataContractError, validate_deals, validate_events, validate_leads
from features.fit import BOOLEAN_VALUES
from features.spec import FeatureSpec
from features.timing import duration_days
from features.vocabulary import EventVocabulary

#: Values that mean "not filled in" in exports; init-config starts from these (compared lower-cased).
DEFAULT_MISSING_VALUES = ("", "select", "unknown", "n/a", "na", "none", "null", "nan", "-", "?", "not provided")
ROLES = ("categorical", "numeric", "numeric_raw", "boolean", "engagement", "engagement_categorical", "pii", "ignore")
#: Label spellings that mean the same answer: a reader may give a TRUE/FALSE column as booleans or as 1/0.
_LABEL_SYNONYMS = ({"true", "1", "1.0", "t"}, {"false", "0", "0.0", "f"})
_SECTIONS = {
    "data": {"leads", "events", "deals", "delimiter", "encoding", "decimal", "date_format", "url"},
    "columns": {"id", "row_number_id", "created_at", "label", "positive", "negative", "open", "email", "job_title",
                "missing_values"},
    "roles": set(ROLES),
    "leakage": {"max_auc", "suspicious_auc", "post_outcome", "keep"},
    "training": {"min_positives", "min_negatives", "min_split_positives", "split_shares", "seed", "model_name",
                 "horizon_days", "snapshot_every_days", "test_days", "calibration_days",
                 "horizon", "snapshot_every", "test_span", "calibration_span", "min_converted_leads",
                 "min_split_converted_leads", "min_validation_auc", "segment_by", "search_seconds",
                 "per_lead_candidates"},
    "events": {"file", "table", "query", "id", "timestamp", "type", "type_separator", "value", "types",
               "words", "max_types", "min_count", "min_share", "windows", "half_lives"},
    "deals": {"file", "table", "query", "id", "closed_at", "outcome", "won", "lost", "amount", "won_only", "lost_after"},
    # How tier cut-offs are chosen: kind = capacity | precision | threshold | lift | expected_value, and its values.
    "tiers": {"kind", "sql_share", "mql_share", "sql_precision", "mql_precision", "sql_probability",
              "mql_probability", "sql_lift", "mql_lift", "won_value", "sql_cost", "mql_cost"},
    "runtime": {"threads"},
}
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
    label: str | None = None
    positive: tuple = ("1", "yes", "true", "won", "converted")
    negative: tuple = ("0", "no", "false", "lost", "not converted")
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
    for section, values in raw.items():
        if section not in _SECTIONS or not isinstance(values, dict):
            raise ValueError(f"{path}: unknown section [{section}]; expected some of {sorted(_SECTIONS)}.")
        unknown = set(values) - _SECTIONS[section]
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {sorted(unknown)} in [{section}]; expected some of "
                             f"{sorted(_SECTIONS[section])}.")
    data, columns = raw.get("data", {}), raw.get("columns", {})
    if "leads" not in data or not ("id" in columns or columns.get("row_number_id")):
        raise ValueError(f"{path}: the config needs [data] leads and [columns] id (or row_number_id = true for an "
                         "export without an id column).")

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
    return ProjectConfig(**{key: value for key, value in values.items() if key in names})


def _event_values(section: dict, path: Path, located) -> dict:
    """ProjectConfig fields from an ``[events]`` section; every value checked, errors name file, section, key."""
    where = f"{path}: [events]"
    if "file" not in section:
        raise ValueError(f"{where} needs file, the event log to read.")
    kinds = section.get("type", "event_type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if not kinds or not all(isinstance(kind, str) and kind for kind in kinds):
        raise ValueError(f"{where} type must be a column name or a list of them (joined with type_separator). "
                         f"Got {section.get('type')!r} instead.")
    for key in ("id", "timestamp", "value", "type_separator"):
        if key in section and not isinstance(section[key], str):
            raise ValueError(f"{where} {key} must be text. Got {section[key]!r} instead.")
    columns = EventColumns(id=section.get("id", "lead_id"), timestamp=section.get("timestamp", "occurred_at"),
                           type=tuple(kinds), type_separator=section.get("type_separator", "+"),
                           value=section.get("value") or None)
    values = {"events": located(section["file"]), "event_columns": columns}
    if "types" in section:
        if not isinstance(section["types"], list) or not section["types"]:
            raise ValueError(f"{where} types must be a non-empty list of the log's event types. "
                             f"Got {section['types']!r} instead.")
        values["event_types"] = tuple(str(kind) for kind in section["types"])
    words = section.get("words", {})
    if not isinstance(words, dict):
        raise ValueError(f'{where} words must be a table of type = "words", e.g. [events.words] '
                         f'O_SENT_BACK = "sent the offer back". Got {words!r} instead.')
    for kind, text in words.items():
        if not (isinstance(text, str) and text.strip()) and not (
                isinstance(text, list) and len(text) == 3 and all(isinstance(t, str) and t.strip() for t in text)):
            raise ValueError(f'{where}.words {kind!r} must be what the lead did ("sent the offer back") or three '
                             f'phrases [one, many, did] (["demo request", "demo requests", "requested a demo"]). '
                             f"Got {text!r} instead.")
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
            if not isinstance(section[key], list) or not section[key]:
                raise ValueError(f'{where} {key} must be a list of durations such as ["6h", "1d", "7d"]. '
                                 f"Got {section[key]!r} instead.")
            values[field_name] = tuple(duration_days(value, name=f"{where} {key}") for value in section[key])
    return values


def _deal_values(section: dict, path: Path, located) -> dict:
    """ProjectConfig fields from a ``[deals]`` section."""
    where = f"{path}: [deals]"
    if "file" not in section:
        raise ValueError(f"{where} needs file, the closed-deals table to read.")
    lists = {}
    for key in ("won", "lost"):
        value = section.get(key, [key])
        value = [value] if isinstance(value, (str, int, bool)) else value
        if not isinstance(value, list) or not value:
            raise ValueError(f"{where} {key} must list the outcome values that mean {key}. Got {value!r} instead.")
        lists[key] = tuple(str(item).lower() if isinstance(item, bool) else str(item) for item in value)
    overlap = {v.strip().lower() for v in lists["won"]} & {v.strip().lower() for v in lists["lost"]}
    if overlap:
        raise ValueError(f"{where} won and lost share the value(s) {sorted(overlap)}; each value means one outcome.")
    won_only = section.get("won_only", False)
    if not isinstance(won_only, bool):
        raise ValueError(f"{where} won_only must be true or false. Got {won_only!r} instead.")
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


def load_tables(config: ProjectConfig, leads_path=None, *, for_training: bool = True, now=None, date_format=None):
    """Read the export the config describes; returns ``(leads, labels, events, deals)``.

    ``leads`` has ``lead_id`` (and ``created_at`` when dated) plus the attribute columns under
    their own names, numbers parsed; PII columns other than the e-mail are dropped on reading.
    ``labels`` is 1 / 0 / missing per lead, or None when the outcome comes from a deals table.
    For training every declared column must be present; for scoring only the id (and the
    creation date when the model uses it): other columns missing are treated as missing.
    """
    date_format = date_format or config.date_format
    database = None
    if config.url is not None:
        from crm.database import connect, read_source, source_name

        database = connect(config.url)
        table = leads_path if leads_path is not None else config.leads
        source = source_name(database, table)
        frame = read_source(database, table)
    else:
        path = Path(leads_path) if leads_path is not None else config.leads
        source = str(path)
        frame = read_table(path, delimiter=config.delimiter, encoding=config.encoding, decimal=config.decimal,
                           text_columns=config._role_columns("id"), table="leads")
    raw_events = raw_deals = None
    if config.events is not None:
        raw_events = read_source(database, config.events) if database is not None else config.events
    if config.deals is not None:
        raw_deals = read_source(database, config.deals) if database is not None else config.deals
    leads, labels, events, deals = map_export(
        config, frame, events=raw_events, deals=raw_deals, source=source,
        events_source=_source(database, config.events) if config.events is not None else None,
        deals_source=_source(database, config.deals) if config.deals is not None else None,
        for_training=for_training, now=now, date_format=date_format, stacklevel=3)
    if deals is not None:
        deals = _without_deal(config, leads, events, deals)
    return leads, labels, events, deals


def map_export(config: ProjectConfig, frame: pd.DataFrame, *, events=None, deals=None, source: str = "leads",
               events_source: str | None = None, deals_source: str | None = None, for_training: bool = True,
               now=None, date_format=None, stacklevel: int = 2, bucket: bool = False):
    """The export's rows as the config maps them: ``(leads, labels, events, deals)`` with the contract's columns.

    ``frame`` holds the lead table's rows as read; ``events`` and ``deals`` the other tables' rows
    (frames, or files ``read_events`` / ``read_deals`` read). One definition of the mapping for every
    reader: ``load_tables`` gives it whole tables, Spark (``scoring.spark``) one bucket of leads with
    their own events and deals at a time (``bucket=True``: a bucket's leads may have no event or
    closed no deal, so an empty slice comes back as None instead of being refused as an empty table).
    A won-only deals table comes back as it is (see ``load_tables`` for ``lost_after``).
    """
    date_format = date_format or config.date_format
    required = config.declared_columns if for_training else [*config._role_columns("id"),
                                                              *([config.created_at] if config.dated else [])]
    if not for_training and config.label in required:
        required.remove(config.label)
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise DataContractError(f"{source}: missing column(s) {missing} named in the config. "
                                f"Columns found: {list(frame.columns)}.")
    if for_training:
        undeclared = [column for column in frame.columns if column not in set(config.declared_columns)]
        if undeclared:
            warnings.warn(f"{source}: column(s) {undeclared} have no role in the config and are ignored; give "
                          "each a role (or list it under ignore) to silence this.", UserWarning, stacklevel=stacklevel)
    # Only columns with a use are kept: PII, ignored and undeclared columns go no further than here.
    used = {config.id, config.created_at, config.email, config.job_title, *config.categorical, *config.numeric,
            *config.numeric_raw, *config.boolean, *config.engagement, *config.engagement_categorical} - {None}
    if "lead_id" in used and config.id != "lead_id":
        raise DataContractError(f"{source}: has a column 'lead_id' that is not the id column {config.id!r}; "
                                "rename it in the export.")
    renames = {**({config.id: "lead_id"} if config.id else {}), **({config.created_at: "created_at"}
                                                                   if config.dated else {})}
    leads = frame[[column for column in frame.columns if column in used]].rename(columns=renames)
    if config.row_number_id:
        leads.insert(0, "lead_id", row_number_ids(len(frame)))
        warnings.warn(f"{source}: no id column, so each lead's id is its row number (1 = the first data row). "
                      "The same file in the same row order gives the same ids; a re-sorted or filtered export "
                      "does not. Add an id column to the export when you can.", UserWarning, stacklevel=stacklevel)
    leads = validate_leads(leads, source=source, dated=config.dated, now=now, date_format=date_format)
    for column in (*config.numeric, *config.numeric_raw, *config.engagement):
        if column in leads.columns:
            leads[column] = parse_numbers(leads[column], source=source, column=column,
                                          missing_tokens=config.feature_spec().missing_tokens,
                                          decimal=frame.attrs.get("decimal", config.decimal))
    if for_training:
        _check_booleans(leads, config, source)
    labels = parse_labels(frame[config.label], config, source=source) if for_training and config.label else None
    mapped_events = mapped_deals = None
    if config.events is not None and not (bucket and events is not None and len(events) == 0):
        mapped_events = read_events(events, config.event_columns, where=f"[events] in {config.source}",
                                    source=events_source or str(config.events), date_format=date_format)
        validate_events(mapped_events, lead_ids=leads["lead_id"], source=events_source or str(config.events), now=now,
                        date_format=date_format)
    if config.deals is not None and not (bucket and deals is not None and len(deals) == 0):
        mapped_deals = validate_deals(read_deals(deals, config.deal_columns, config_source=config.source,
                                                 source=deals_source or str(config.deals)),
                                      lead_ids=leads["lead_id"], source=deals_source or str(config.deals), now=now,
                                      date_format=date_format)
    return leads, labels, mapped_events, mapped_deals


def row_number_ids(n: int) -> np.ndarray:
    """Ids 1..n for an export without an id column: stable as long as the row order is."""
    return np.arange(1, n + 1, dtype=np.int64)


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


def _source(database, table) -> str:
    """How messages name a table: its file, or the database (password hidden) and the table or query."""
    if database is None:
        return str(table)
    from crm.database import source_name

    return source_name(database, table)


def _without_deal(config: ProjectConfig, leads: pd.DataFrame, events, deals: pd.DataFrame) -> pd.DataFrame:
    """A won-only deals table, handled as the config states: open leads stay open, or are lost after inactivity."""
    columns = config.deal_columns
    if not columns.won_only:
        return deals
    if columns.lost_after_days is None:
        print(f"{config.deals}: won deals only (won_only = true); leads without a deal stay open, so they count as "
              "not converted within a horizon but never close. Set [deals] lost_after to close them after a "
              "period without activity.")
        return deals
    end = latest_moment(leads, events, deals)
    closed = lost_after_inactivity(leads, events, deals, after_days=columns.lost_after_days, data_end=end)
    print(f"{config.deals}: won deals only (won_only = true); {len(closed) - len(deals):,} leads without a deal and "
          f"without activity for {columns.lost_after_days:g} days before {end} count as lost (lost_after); "
          "the others stay open.")
    return closed


def parse_labels(values: pd.Series, config: ProjectConfig, *, source: str) -> pd.Series:
    """1 for the config's positive values, 0 for its negative ones, missing when blank or open; else refused.

    TRUE / FALSE, True / False (booleans as a reader gives them) and 1 / 0 are one answer each:
    a config listing "true" reads a column of booleans or of 1/0 alike.
    """
    text = values.map(value_text)
    positive, negative = _label_values(config.positive), _label_values(config.negative)
    still_open = _label_values(config.open)
    labels = pd.Series(np.where(text.isin(positive), 1.0, np.where(text.isin(negative), 0.0, np.nan)),
                       index=values.index)
    unknown = labels.isna() & text.notna() & ~text.isin(still_open)
    if unknown.any():
        raise DataContractError(
            f"{source}: column {config.label!r} must hold one of {sorted(positive)} (converted) or "
            f"{sorted(negative)} (not converted); {int(unknown.sum())} rows hold other values such as "
            f"{text[unknown].drop_duplicates().head(5).tolist()}. List them under positive / negative (or open, "
            "for leads still undecided) in [columns].")
    return labels


def _label_values(values) -> set:
    """The config's spellings, lower-cased, with their boolean synonyms."""
    spelled = {str(value).strip().lower() for value in values}
    for synonyms in _LABEL_SYNONYMS:
        if spelled & synonyms:
            spelled |= synonyms
    return spelled



def _check_booleans(leads: pd.DataFrame, config: ProjectConfig, source: str) -> None:
    tokens = set(config.feature_spec().missing_tokens)
    for column in config.boolean:
        text = leads[column].dropna().map(value_text).dropna()
        bad = ~text.isin(set(BOOLEAN_VALUES) | tokens)
        if bad.any():
            raise DataContractError(
                f"{source}: column {column!r} is declared boolean, so it must hold yes/no, true/false or 1/0; "
                f"{int(bad.sum())} rows hold other values such as {text[bad].drop_duplicates().head(5).tolist()}. "
                "Declare it categorical instead.")


def load_crm_or_config(config_path=None, *, leads=None, events=None, deals=None, for_training=True, now=None,
                       date_format=None, db=None):
    """The CLI's one door to the data: a config file, or the contract's three tables as files.

    ``db``, a database URL, makes ``leads``, ``events`` and ``deals`` table names or queries in it
    (with a config: it replaces the config's ``[data] url``).
    """
    if config_path is None:
        if db is not None:
            from crm.database import load_crm_from_database

            leads_frame, events, deals = load_crm_from_database(db, leads, events, deals, now=now)
        else:
            leads_frame, events, deals = load_crm(leads, events, deals, now=now, date_format=date_format)
        return None, leads_frame, None, events, deals
    config = load_config(config_path)
    if db is not None:
        config = replace(config, url=str(db))
    overrides = {key: value if config.url else Path(value)
                 for key, value in (("events", events), ("deals", deals)) if value is not None}
    config = replace(config, **overrides) if overrides else config
    return (config, *load_tables(config, leads, for_training=for_training, now=now, date_format=date_format))
