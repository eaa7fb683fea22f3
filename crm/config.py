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

from crm.readers import load_crm, parse_numbers, read_table
from features.contract import DataContractError, validate_deals, validate_events, validate_leads
from features.fit import BOOLEAN_VALUES
from features.spec import FeatureSpec

#: Values that mean "not filled in" in exports; init-config starts from these (compared lower-cased).
DEFAULT_MISSING_VALUES = ("", "select", "unknown", "n/a", "na", "none", "null", "nan", "-", "?", "not provided")
ROLES = ("categorical", "numeric", "numeric_raw", "boolean", "pii", "ignore")
_SECTIONS = {
    "data": {"leads", "events", "deals", "delimiter", "encoding", "decimal", "url"},
    "columns": {"id", "created_at", "label", "positive", "negative", "email", "job_title", "missing_values"},
    "roles": set(ROLES),
    "leakage": {"max_auc", "post_outcome", "keep"},
    "training": {"min_positives", "min_negatives", "min_split_positives", "split_shares", "seed", "model_name",
                 "horizon_days", "snapshot_every_days", "test_days", "calibration_days"},
}


@dataclass(frozen=True)
class ProjectConfig:
    """A parsed, checked project config. Build it with :func:`load_config` (or directly in tests)."""

    leads: Path | str
    id: str
    events: Path | str | None = None
    deals: Path | str | None = None
    #: A database URL: then leads, events and deals are table names or queries in it, not files.
    url: str | None = None
    delimiter: str | None = None
    encoding: str = "utf-8-sig"
    decimal: str = "."
    created_at: str | None = None
    label: str | None = None
    positive: tuple = ("1", "yes", "true", "won", "converted")
    negative: tuple = ("0", "no", "false", "lost", "not converted")
    email: str | None = None
    job_title: str | None = None
    missing_values: tuple = DEFAULT_MISSING_VALUES
    categorical: tuple = ()
    numeric: tuple = ()
    numeric_raw: tuple = ()
    boolean: tuple = ()
    pii: tuple = ()
    ignore: tuple = ()
    max_auc: float = 0.95
    post_outcome: tuple = ()
    keep: tuple = ()
    training: dict = field(default_factory=dict)

    def __post_init__(self):
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
        return tuple(value) if isinstance(value, tuple) else ((value,) if value else ())

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
        return FeatureSpec(
            categorical_columns=self.categorical, numeric_columns=self.numeric,
            raw_numeric_columns=self.numeric_raw, boolean_columns=self.boolean,
            job_title_column=self.job_title, email_column=self.email,
            missing_tokens=tuple(token.strip().lower() for token in self.missing_values),
            event_log=self.events is not None, lead_age=snapshots,
        )

    def training_options(self) -> dict:
        """Keyword arguments for :class:`training.pipeline.TrainingConfig` from ``[training]`` and ``[leakage]``."""
        options = {key: value for key, value in self.training.items() if key not in ("model_name", "split_shares")}
        if "split_shares" in self.training:
            options["lead_shares"] = tuple(self.training["split_shares"])
        return {**options, "leakage_max_auc": self.max_auc, "post_outcome_columns": self.post_outcome,
                "keep_columns": self.keep}

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
    if "leads" not in data or "id" not in columns:
        raise ValueError(f"{path}: the config needs [data] leads and [columns] id.")

    def located(value):
        return None if not value else (path.parent / value if not Path(value).is_absolute() else Path(value))

    if data.get("url"):  # tables or queries in a database; a relative DuckDB file is beside the config
        url = str(data["url"])
        if url.startswith("duckdb:///") and not url.startswith("duckdb:////"):
            url = f"duckdb:///{located(url[len('duckdb:///'):])}"
        elif "://" not in url:  # a DuckDB file path
            url = f"duckdb:///{located(url)}"
        values = {"leads": str(data["leads"]), "events": data.get("events") or None,
                  "deals": data.get("deals") or None, "url": url}
    else:
        values = {"leads": located(data["leads"]), "events": located(data.get("events")),
                  "deals": located(data.get("deals"))}
    values["training"] = dict(raw.get("training", {}))
    values.update({key: value for key, value in data.items() if key in ("delimiter", "encoding", "decimal")})
    for key, value in {**columns, **raw.get("roles", {}), **raw.get("leakage", {})}.items():
        values[key] = tuple(str(item) for item in value) if isinstance(value, list) else (value or None)
    names = {item.name for item in fields(ProjectConfig)}
    return ProjectConfig(**{key: value for key, value in values.items() if key in names})


def load_tables(config: ProjectConfig, leads_path=None, *, for_training: bool = True, now=None):
    """Read the export the config describes; returns ``(leads, labels, events, deals)``.

    ``leads`` has ``lead_id`` (and ``created_at`` when dated) plus the attribute columns under
    their own names, numbers parsed; PII columns other than the e-mail are dropped on reading.
    ``labels`` is 1 / 0 / missing per lead, or None when the outcome comes from a deals table.
    For training every declared column must be present; for scoring only the id (and the
    creation date when the model uses it): other columns missing are treated as missing.
    """
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
        frame = read_table(path, delimiter=config.delimiter, encoding=config.encoding, decimal=config.decimal)
    required = config.declared_columns if for_training else [config.id, *([config.created_at] if config.dated
                                                                                  else [])]
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
                          "each a role (or list it under ignore) to silence this.", UserWarning, stacklevel=2)
    # Only columns with a use are kept: PII, ignored and undeclared columns go no further than here.
    used = {config.id, config.created_at, config.email, config.job_title, *config.categorical, *config.numeric,
            *config.numeric_raw, *config.boolean} - {None}
    if "lead_id" in used and config.id != "lead_id":
        raise DataContractError(f"{source}: has a column 'lead_id' that is not the id column {config.id!r}; "
                                "rename it in the export.")
    renames = {config.id: "lead_id", **({config.created_at: "created_at"} if config.dated else {})}
    leads = frame[[column for column in frame.columns if column in used]].rename(columns=renames)
    leads = validate_leads(leads, source=source, dated=config.dated, now=now)
    for column in (*config.numeric, *config.numeric_raw):
        if column in leads.columns:
            leads[column] = parse_numbers(leads[column], source=source, column=column,
                                          missing_tokens=config.feature_spec().missing_tokens, decimal=config.decimal)
    if for_training:
        _check_booleans(leads, config, source)
    labels = parse_labels(frame[config.label], config, source=source) if for_training and config.label else None
    events, deals = config.events, None
    if config.deals is not None:
        deals_frame = read_source(database, config.deals) if database else read_table(config.deals)
        deals = validate_deals(deals_frame, lead_ids=leads["lead_id"], now=now,
                               source=source_name(database, config.deals) if database else str(config.deals))
    if events is not None:
        if database is not None:
            events = read_source(database, config.events)
        validate_events(events, lead_ids=leads["lead_id"], now=now,
                        source=source_name(database, config.events) if database else str(events))
    return leads, labels, events, deals


def parse_labels(values: pd.Series, config: ProjectConfig, *, source: str) -> pd.Series:
    """1 for the config's positive values, 0 for its negative ones, missing when blank; anything else is refused."""
    text = values.map(_label_text)
    positive = {str(value).strip().lower() for value in config.positive}
    negative = {str(value).strip().lower() for value in config.negative}
    labels = pd.Series(np.where(text.isin(positive), 1.0, np.where(text.isin(negative), 0.0, np.nan)),
                       index=values.index)
    unknown = labels.isna() & text.notna()
    if unknown.any():
        raise DataContractError(
            f"{source}: column {config.label!r} must hold one of {sorted(positive)} (converted) or "
            f"{sorted(negative)} (not converted); {int(unknown.sum())} rows hold other values such as "
            f"{text[unknown].drop_duplicates().head(5).tolist()}. List them under positive / negative in [columns].")
    return labels


def _label_text(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer():
        value = int(value)
    text = str(value).strip().lower()
    return text or None


def _check_booleans(leads: pd.DataFrame, config: ProjectConfig, source: str) -> None:
    tokens = set(config.feature_spec().missing_tokens)
    for column in config.boolean:
        text = leads[column].dropna().map(_label_text).dropna()
        bad = ~text.isin(set(BOOLEAN_VALUES) | tokens)
        if bad.any():
            raise DataContractError(
                f"{source}: column {column!r} is declared boolean, so it must hold yes/no, true/false or 1/0; "
                f"{int(bad.sum())} rows hold other values such as {text[bad].drop_duplicates().head(5).tolist()}. "
                "Declare it categorical instead.")


def load_crm_or_config(config_path=None, *, leads=None, events=None, deals=None, for_training=True, now=None,
                       db=None):
    """The CLI's one door to the data: a config file, or the contract's three tables as files.

    ``db``, a database URL, makes ``leads``, ``events`` and ``deals`` table names or queries in it
    (with a config: it replaces the config's ``[data] url``).
    """
    if config_path is None:
        if db is not None:
            from crm.database import load_crm_from_database

            leads_frame, events, deals = load_crm_from_database(db, leads, events, deals, now=now)
        else:
            leads_frame, events, deals = load_crm(leads, events, deals, now=now)
        return None, leads_frame, None, events, deals
    config = load_config(config_path)
    if db is not None:
        config = replace(config, url=str(db))
    overrides = {key: value if config.url else Path(value)
                 for key, value in (("events", events), ("deals", deals)) if value is not None}
    config = replace(config, **overrides) if overrides else config
    return (config, *load_tables(config, leads, for_training=for_training, now=now))
