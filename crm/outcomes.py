"""The event log and the deals table as a company exports them, mapped onto the contract's columns.

The project config names the columns (``[events]``, ``[deals]``); nothing is renamed in code by
the user. A deals table of won deals only is a stated choice: leads without a deal stay open, or
count as lost once they have been inactive for a stated period.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from crm.readers import read_table
from features.contract import DataContractError, contract_message, event_relation, parse_timestamps
from features.timing import duration


@dataclass(frozen=True)
class EventColumns:
    """Where the contract's event columns are in a company's event log.

    ``type`` is one column or several joined with ``type_separator`` (activity + lifecycle:
    ``"A_SUBMITTED" + "complete"`` -> ``"A_SUBMITTED+complete"``; a missing part is left out).
    """

    id: str = "lead_id"
    timestamp: str = "occurred_at"
    type: tuple = ("event_type",)
    type_separator: str = "+"
    value: str | None = None

    @property
    def is_contract(self) -> bool:
        """The file already has the contract's names: it can stay a path that DuckDB reads in place."""
        return (self.id, self.timestamp, self.type, self.value) == ("lead_id", "occurred_at", ("event_type",), None)


@dataclass(frozen=True)
class DealColumns:
    """Where the contract's deal columns are, which outcome values mean won and lost, and won-only handling.

    ``won_only``: the table holds won deals only (``outcome`` may then be absent). Leads without a
    deal stay open, unless ``lost_after_days`` is set: then a lead without a deal whose last
    activity (its latest event, or its creation) lies that long before the end of the data counts
    as lost at that moment.
    """

    id: str = "lead_id"
    closed_at: str = "closed_at"
    outcome: str | None = "outcome"
    won: tuple = ("won",)
    lost: tuple = ("lost",)
    amount: str | None = None
    won_only: bool = False
    lost_after_days: float | None = None
    where: str = field(default="[deals]", compare=False)


def read_events(path, columns: EventColumns, *, where: str = "[events]", source: str | None = None,
                date_format=None):
    """The event log at ``path`` with the contract's columns: the path itself when its names already fit.

    Otherwise a frame with ``lead_id``, ``occurred_at`` (naive UTC), ``event_type`` and, when
    mapped, ``value``. A column named in the config and missing from the file is an error naming
    the file, the config section and key, and the columns found.
    """
    if columns.is_contract:
        return path
    wanted = {"id": [columns.id], "timestamp": [columns.timestamp], "type": list(columns.type),
              "value": [columns.value] if columns.value else []}
    # A frame: read from a database.
    frame = path if isinstance(path, pd.DataFrame) else read_table(path, text_columns=(columns.id,), table="events")
    source = source or str(path)
    for key, names in wanted.items():
        missing = [name for name in names if name not in frame.columns]
        if missing:
            where_key = where.replace(" in ", f" {key} in ", 1) if " in " in where else f"{where} {key}"
            raise DataContractError(f"{source}: missing column(s) {missing} named by {where_key}. "
                                    f"Columns found: {list(frame.columns)}.")
    parts = [frame[name].astype("string").str.strip().replace("", pd.NA) for name in columns.type]
    kind = parts[0]
    for part in parts[1:]:
        kind = pd.Series(np.where(kind.isna(), part, np.where(part.isna(), kind, kind + columns.type_separator
                                                                + part.fillna(""))), index=frame.index)
    events = pd.DataFrame({"lead_id": frame[columns.id],
                           "occurred_at": parse_timestamps(frame[columns.timestamp], source=source,
                                                           column=columns.timestamp, frame=frame,
                                                           date_format=date_format),
                           "event_type": pd.Series(kind, dtype=object).where(pd.notna(kind), None)})
    if columns.value:
        events["value"] = pd.to_numeric(frame[columns.value], errors="coerce")
    return events


def read_deals(path, columns: DealColumns, *, config_source: str = "the config",
               source: str | None = None) -> pd.DataFrame:
    """The deals table with ``lead_id``, ``closed_at``, ``outcome`` in {won, lost} and, when mapped, ``amount``.

    Outcome values are compared trimmed and case-insensitively with the config's ``won`` and
    ``lost`` lists; any other value is an error listing them, so nothing is read as lost by accident.
    """
    # A frame: read from a database.
    frame = path if isinstance(path, pd.DataFrame) else read_table(path, text_columns=(columns.id,), table="deals")
    source = source or str(path)
    where = columns.where
    named = {"id": columns.id, "closed_at": columns.closed_at, "outcome": columns.outcome, "amount": columns.amount}
    if columns.won_only and columns.outcome and columns.outcome not in frame.columns:
        named["outcome"] = None
    for key, name in named.items():
        if name is not None and name not in frame.columns:
            raise DataContractError(f"{source}: missing column {name!r} named by {where} {key} in {config_source}. "
                                    f"Columns found: {list(frame.columns)}.")
    deals = pd.DataFrame({"lead_id": frame[columns.id], "closed_at": frame[columns.closed_at]})
    if named["outcome"] is None:
        if not columns.won_only:
            raise DataContractError(f"{source}: {where} names no outcome column; name one, or set won_only = true "
                                    "when the table holds won deals only.")
        deals["outcome"] = "won"
    else:
        text = frame[named["outcome"]].astype("string").str.strip().str.lower()
        won = {str(value).strip().lower() for value in columns.won}
        lost = set() if columns.won_only else {str(value).strip().lower() for value in columns.lost}
        outcome = pd.Series(np.where(text.isin(won), "won", np.where(text.isin(lost), "lost", None)),
                            index=frame.index, dtype=object)
        bad = outcome.isna()
        if bad.any():
            expected = (f"one of the won values {sorted(won)} (won_only = true)" if columns.won_only else
                        f"one of the won values {sorted(won)} or lost values {sorted(lost)}")
            raise DataContractError(contract_message(
                source, named["outcome"], f"{expected} listed under {where} won / lost in {config_source}",
                f"{int(bad.sum())} rows hold others such as {text[bad].drop_duplicates().head(5).tolist()}",
                frame.loc[bad, [columns.id, named["outcome"]]]))
        deals["outcome"] = outcome
    if columns.amount:
        deals["amount"] = frame[columns.amount]
    return deals


def lost_after_inactivity(leads: pd.DataFrame, events, deals: pd.DataFrame, *, after_days, data_end) -> pd.DataFrame:
    """``deals`` plus a lost deal for every lead without one that was inactive for ``after_days`` before ``data_end``.

    A lead's last activity is its latest event, or its creation when it has none; it counts as
    lost at last activity + ``after_days`` when that moment is not after ``data_end``. Leads still
    inside the period stay open.
    """
    period = duration(after_days, name="[deals] lost_after")
    last = leads.set_index("lead_id")["created_at"]
    if events is not None:
        with duckdb.connect() as con:
            relation = event_relation(con, events)
            latest = relation.aggregate("lead_id, max(CAST(occurred_at AS TIMESTAMP)) AS latest", "lead_id").df()
        latest_at = pd.Series(pd.to_datetime(latest["latest"]).to_numpy(), index=latest["lead_id"])
        latest_at = latest_at.reindex(last.index)
        last = pd.Series(np.where(latest_at.notna() & (latest_at > last), latest_at, last), index=last.index)
    without = ~last.index.isin(deals["lead_id"])
    lost_at = last[without] + period
    lost_at = lost_at[lost_at <= pd.Timestamp(data_end)]
    extra = pd.DataFrame({"lead_id": lost_at.index, "closed_at": lost_at.to_numpy().astype("datetime64[ns]"),
                          "outcome": "lost"})
    if "amount" in deals.columns:
        extra["amount"] = np.nan
    return pd.concat([deals, extra], ignore_index=True) if len(extra) else deals


def latest_moment(leads: pd.DataFrame, events, deals: pd.DataFrame | None) -> pd.Timestamp:
    """The latest timestamp in any of the three tables: where the data ends."""
    candidates = [leads["created_at"].max()]
    if deals is not None and len(deals):
        candidates.append(deals["closed_at"].max())
    if events is not None:
        with duckdb.connect() as con:
            candidates.append(event_relation(con, events).aggregate(
                "max(CAST(occurred_at AS TIMESTAMP))").fetchall()[0][0])
    return max(pd.Timestamp(value) for value in candidates if value is not None and not pd.isna(value))
