"""The export read as a project config maps it: the contract's tables from a company's own files or database."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from crm.column_profile import value_text
from crm.config import ProjectConfig, load_config
from crm.export_names import named_as_exported
from crm.outcomes import latest_moment, lost_after_inactivity, read_deals, read_events
from crm.readers import load_crm, parse_numbers, read_table
from features.contract import DataContractError, validate_deals, validate_events, validate_leads
from features.fit import BOOLEAN_VALUES

#: Label spellings that mean the same answer: a reader may give a TRUE/FALSE column as booleans or as 1/0.
_LABEL_SYNONYMS = ({"true", "1", "1.0", "t"}, {"false", "0", "0.0", "f"})


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
    reader: ``load_tables`` gives it whole tables, Spark (``scoring.spark_features``) one bucket of leads with
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
    undated = _undated_leads(leads, config, source=source, say=not bucket)
    if undated is not None:
        leads = leads[~leads["lead_id"].isin(undated)]
    known_ids = leads["lead_id"] if undated is None else pd.concat([leads["lead_id"], undated])
    with named_as_exported({"lead_id": config.id, "created_at": config.created_at}):
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
        columns = config.event_columns
        with named_as_exported({"lead_id": columns.id, "occurred_at": columns.timestamp, "value": columns.value,
                                "event_type": columns.type_separator.join(columns.type)}):
            mapped_events = read_events(events, columns, where=f"[events] in {config.source}",
                                        source=events_source or str(config.events), date_format=date_format)
            validate_events(mapped_events, lead_ids=known_ids, source=events_source or str(config.events), now=now,
                            date_format=date_format)
        if undated is not None and isinstance(mapped_events, pd.DataFrame):
            # (A log read in place keeps their events: features join events to snapshots, which they have none of.)
            mapped_events = mapped_events[~_ids_in(mapped_events["lead_id"], undated)]
    if config.deals is not None and not (bucket and deals is not None and len(deals) == 0):
        columns = config.deal_columns
        with named_as_exported({"lead_id": columns.id, "closed_at": columns.closed_at, "outcome": columns.outcome,
                                "amount": columns.amount}):
            mapped_deals = validate_deals(read_deals(deals, columns, config_source=config.source,
                                                     source=deals_source or str(config.deals)),
                                          lead_ids=known_ids, source=deals_source or str(config.deals), now=now,
                                          date_format=date_format)
        if undated is not None:
            mapped_deals = mapped_deals[~mapped_deals["lead_id"].isin(undated)].reset_index(drop=True)
    return leads, labels, mapped_events, mapped_deals


def _undated_leads(leads: pd.DataFrame, config: ProjectConfig, *, source: str, say: bool) -> pd.Series | None:
    """The ids of leads whose creation date is blank, when the config leaves them out (and says how many); else None.

    Left out, not guessed: a lead needs its creation date to be placed in time (its snapshots start
    there, and the split is by time). With the default ``undated_leads = "refuse"`` the contract's
    check refuses them, naming the rows.
    """
    if not config.dated or config.undated_leads != "leave_out":
        return None
    tokens = set(config.feature_spec().missing_tokens)
    text = leads["created_at"].map(lambda value: None if pd.isna(value) else value_text(value))
    blank = text.isna() | text.isin(tokens)
    if not blank.any():
        return None
    if say:
        print(f"{source}: {int(blank.sum()):,} of {len(leads):,} leads have a blank {config.created_at!r}: left out "
              "of training and scoring (undated_leads = \"leave_out\" in [columns]), with their events and deals.")
    return leads.loc[blank, "lead_id"]


def _ids_in(ids: pd.Series, chosen: pd.Series) -> pd.Series:
    """``ids.isin(chosen)``, compared as text when the two tables read their ids as different types."""
    if ids.dtype == chosen.dtype:
        return ids.isin(chosen)
    return ids.astype(str).str.strip().isin(set(chosen.astype(str).str.strip()))


def row_number_ids(n: int) -> np.ndarray:
    """Ids 1..n for an export without an id column: stable as long as the row order is."""
    return np.arange(1, n + 1, dtype=np.int64)


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
