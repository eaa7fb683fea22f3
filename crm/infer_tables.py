"""init-config for the event log and the deals table: columns, event vocabulary, won/lost values, time scales."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crm.column_profile import (blank_note, mostly_blank, name_has, outcome_mapping, outcome_side, profile_column,
                                value_text)
from crm.config_text import quote, toml_list

ID_NAMES = ("id", "uuid", "guid", "key", "case", "lead", "contact", "account", "ref", "reference", "number")
EVENT_TIME_NAMES = ("timestamp", "time", "occurred", "date", "at", "when", "datetime")
CLOSED_NAMES = ("closed", "close", "resolved", "resolution", "won", "end", "ended", "decided", "date", "time")
TYPE_NAMES = ("activity", "event", "type", "action", "concept", "name", "step", "task", "kind")
LIFECYCLE_NAMES = ("lifecycle", "transition", "phase", "state", "status")
OUTCOME_NAMES = ("outcome", "result", "status", "stage", "resolution", "won", "state", "closed")
AMOUNT_NAMES = ("amount", "value", "revenue", "price", "total", "sum", "arr", "mrr")
#: Most snapshots a suggested spacing gives over the data's span.
MAX_SNAPSHOTS = 80


@dataclass
class EventGuess:
    id: str | None
    timestamp: str | None
    type: tuple
    value: str | None
    counts: pd.Series  # events per type (combined when the type is two columns), most frequent first
    rows: int


@dataclass
class DealGuess:
    id: str | None
    closed_at: str | None
    outcome: str | None
    won: tuple
    lost: tuple
    won_only: bool
    amount: str | None
    counts: pd.Series
    rows: int


@dataclass
class TablesGuess:
    """The events and deals guesses, the suggested time scales, and what the user must check."""

    events: EventGuess | None
    deals: DealGuess | None
    timing: dict = field(default_factory=dict)  # key -> (duration text, reason)
    checks: list = field(default_factory=list)

    def config_lines(self, paths: dict) -> list:
        lines = []
        if self.events is not None:
            lines += _event_lines(self.events, paths["events"], self.timing)
        if self.deals is not None:
            lines += ([""] if lines else []) + _deal_lines(self.deals, paths["deals"], self.timing)
        return lines

    def training_lines(self) -> list:
        lines = []
        for key in ("horizon", "snapshot_every", "test_span", "calibration_span"):
            if key in self.timing:
                text, reason = self.timing[key]
                lines.append(f"{key} = {quote(text)}  # {reason}")
        return lines


def infer_tables(*, lead_ids: pd.Series | None, created_at: pd.Series | None, events: pd.DataFrame | None = None,
                 deals: pd.DataFrame | None = None) -> TablesGuess:
    """Guess the columns of the event log and the deals table, and time scales that fit the data."""
    known = None if lead_ids is None else set(lead_ids.map(value_text).dropna())
    guess = TablesGuess(events=None, deals=None)
    if events is not None:
        guess.events = _infer_events(events, known, guess.checks)
    if deals is not None:
        guess.deals = _infer_deals(deals, known, guess.checks)
    if lead_ids is None and (events is not None or deals is not None):
        guess.checks.append("ids: the lead table has no id column, so the events and deals cannot be joined to "
                            "leads by row number; add an id column to the lead export.")
    if created_at is None and deals is not None:
        guess.checks.append("created_at: the lead table has no creation date; a deals table needs one (snapshots "
                            "start at creation). Name it under [columns] created_at.")
    guess.timing = _suggest_timing(guess, lead_ids, created_at, events, deals)
    if guess.timing:
        guess.checks.append("time scales: " + "; ".join(f"{key} = {text} ({reason})"
                                                         for key, (text, reason) in guess.timing.items()) + ".")
    return guess


# --- events -----------------------------------------------------------------------------------------


def _infer_events(frame: pd.DataFrame, known: set | None, checks: list) -> EventGuess:
    profiles = {column: profile_column(frame[column], set()) for column in frame.columns}
    identifier = _id_column(frame, profiles, known, "events", checks)
    timestamp = _date_column(profiles, EVENT_TIME_NAMES, exclude={identifier})
    rest = [column for column in frame.columns if column not in (identifier, timestamp)]
    texts = [column for column in rest
             if profiles[column]["kind"] == "text" and 1 < profiles[column]["distinct"] <= 500]
    kind = _prefer(texts, TYPE_NAMES)
    kinds = (kind,) if kind else ()
    lifecycle = _prefer([column for column in texts if column != kind and profiles[column]["distinct"] <= 10
                         and name_has(column, LIFECYCLE_NAMES)], LIFECYCLE_NAMES, named_only=True)
    if kind and lifecycle:
        kinds = (kind, lifecycle)
    numbers = [column for column in rest if profiles[column]["kind"] in ("integer", "float")]
    value = _prefer(numbers, AMOUNT_NAMES + ("score", "duration", "count"), named_only=True)
    if kind is None:
        counts = pd.Series(dtype=int)
        checks.append("events: no column looks like the event type (text with a few hundred values at most); "
                      "name it under [events] type.")
    else:
        combined = frame[kinds[0]].astype("string").str.strip()
        if len(kinds) == 2:
            combined = combined + "+" + frame[kinds[1]].astype("string").str.strip().fillna("")
        counts = combined.value_counts()
    if timestamp is None:
        checks.append("events: no timestamp column found; name it under [events] timestamp.")
    described = f"{len(counts)} types" + (f" from {' + '.join(kinds)}" if kinds else "")
    checks.append(f"events: id {identifier!r}, timestamp {timestamp!r}, type {' + '.join(kinds) or None} "
                  f"({described}; the most frequent: "
                  + ", ".join(f"{kind} {count:,}" for kind, count in counts.head(5).items()) + ")"
                  + (f", value {value!r}" if value else "") + ".")
    return EventGuess(id=identifier, timestamp=timestamp, type=kinds, value=value, counts=counts, rows=len(frame))


def _event_lines(guess: EventGuess, path: str, timing: dict) -> list:
    lines = ["[events]", f"file = {quote(path)}",
             f"id = {quote(guess.id)}  # the lead each event belongs to" if guess.id else '# id = "..."  # not found',
             f"timestamp = {quote(guess.timestamp)}  # when it happened" if guess.timestamp
             else '# timestamp = "..."  # not found']
    if len(guess.type) == 2:
        lines.append(f"type = {toml_list(guess.type)}  # activity + lifecycle, joined as \"activity+lifecycle\"")
    elif guess.type:
        lines.append(f"type = {quote(guess.type[0])}  # the event type, as the data names it")
    else:
        lines.append('# type = "..."  # not found')
    if guess.value:
        lines.append(f"value = {quote(guess.value)}  # a number per event")
    lines += [f"# The log's own vocabulary, {len(guess.counts)} types in {guess.rows:,} events (most frequent first):"]
    lines += [f"#   {kind}: {count:,}" for kind, count in guess.counts.head(40).items()]
    lines += ["# The frequent types get columns of their own, learned from the training data within these limits",
              "# (the rest count as 'other'); or list them yourself: types = [\"...\", ...].",
              "max_types = 30", "min_count = 20"]
    if "windows" in timing:
        lines.append(f"windows = {toml_list(timing['windows'][0])}  # {timing['windows'][1]}")
        lines.append(f"half_lives = {toml_list(timing['half_lives'][0])}  # {timing['half_lives'][1]}")
    lines += ["# Words for reasons, per type (what the lead did), e.g.:", "# [events.words]"]
    lines += [f"# {quote(kind)} = \"...\"" for kind in guess.counts.head(5).index]
    return lines


# --- deals ------------------------------------------------------------------------------------------


def _infer_deals(frame: pd.DataFrame, known: set | None, checks: list) -> DealGuess:
    profiles = {column: profile_column(frame[column], set()) for column in frame.columns}
    identifier = _id_column(frame, profiles, known, "deals", checks)
    closed_at = _date_column(profiles, CLOSED_NAMES, exclude={identifier})
    rest = [column for column in frame.columns if column not in (identifier, closed_at)]
    outcome, won, lost, counts = None, (), (), pd.Series(dtype=int)
    # A mostly blank column (a seller's note, a reason written sometimes) is never the outcome.
    rest = [column for column in rest if not mostly_blank(profiles[column])]
    mapped = {column: outcome_mapping(profiles[column]["values"]) for column in rest
              if profiles[column]["kind"] in ("text", "boolean", "integer") and 2 <= profiles[column]["distinct"] <= 12}
    mapped = {column: mapping for column, mapping in mapped.items() if mapping is not None}
    if mapped:
        outcome = _prefer(list(mapped), OUTCOME_NAMES)
        won, lost, still_open = mapped[outcome]
        lost = lost + still_open  # a closed deal is won or lost: anything not won is read as lost, and said so
        if still_open:
            checks.append(f"deals: outcome values {list(still_open)} were read as lost; move them if they mean won.")
    else:
        singles = [column for column in rest if profiles[column]["distinct"] == 1
                   and profiles[column]["kind"] in ("text", "boolean")]
        outcome = _prefer(singles, OUTCOME_NAMES, named_only=False) if singles else None
        if outcome is not None:
            won = tuple(profiles[outcome]["values"])
    if outcome is not None:
        counts = frame[outcome].map(value_text).value_counts()
    won_only = not lost
    amount = _prefer([column for column in rest if column != outcome
                      and profiles[column]["kind"] in ("integer", "float")], AMOUNT_NAMES, named_only=True)
    if won_only:
        side = ("" if not won or outcome_side(won[0]) == "won"
                else f" (its only value {won[0]!r} does not read as won: check)")
        checks.append(f"deals: won deals only{side}: no lost value in "
                      + (f"{outcome!r}" if outcome else "the table (no outcome column)")
                      + ". init-config proposes that leads without a deal count as lost after a period without "
                        "activity ([deals] lost_after); remove lost_after to keep them open instead.")
    else:
        checks.append(f"deals: id {identifier!r}, closed at {closed_at!r}, outcome {outcome!r}: won = {list(won)}, "
                      f"lost = {list(lost)} ("
                      + ", ".join(f"{value} {count:,}" for value, count in counts.items()) + ")"
                      + (f", amount {amount!r}" if amount else "") + ". Check which values mean won.")
    if closed_at is not None and blank_note(closed_at, profiles[closed_at]):
        checks.append(f"deals: {blank_note(closed_at, profiles[closed_at])}: a deal needs its closing date to "
                      "be placed in time; fill them, or remove those rows.")
    return DealGuess(id=identifier, closed_at=closed_at, outcome=outcome, won=won, lost=lost, won_only=won_only,
                     amount=amount, counts=counts, rows=len(frame))


def _deal_lines(guess: DealGuess, path: str, timing: dict) -> list:
    lines = ["[deals]", f"file = {quote(path)}",
             f"id = {quote(guess.id)}  # the lead each deal belongs to" if guess.id else '# id = "..."  # not found',
             f"closed_at = {quote(guess.closed_at)}  # when it was decided" if guess.closed_at
             else '# closed_at = "..."  # not found']
    shown = ", ".join(f"{value} {count:,}" for value, count in guess.counts.items())
    if guess.outcome:
        lines.append(f"outcome = {quote(guess.outcome)}  # values in this file: {shown}")
    if guess.won:
        lines.append(f"won = {toml_list(guess.won)}  # outcome values that mean won")
    if guess.won_only:
        lines.append("won_only = true  # the table holds won deals only")
        after, reason = timing.get("lost_after", ("90d", "no timing found in the data: a default"))
        lines.append(f"lost_after = {quote(after)}  # leads without a deal and without activity this long count as "
                     f"lost ({reason}); remove to keep them open")
    else:
        lines.append(f"lost = {toml_list(guess.lost)}  # outcome values that mean lost")
    if guess.amount:
        lines.append(f"amount = {quote(guess.amount)}  # the deal's value")
    return lines


# --- time scales ------------------------------------------------------------------------------------


def _suggest_timing(guess: TablesGuess, lead_ids, created_at, events, deals) -> dict:
    """Horizon, snapshot spacing, test and calibration spans (and windows for fast processes) from the data."""
    if created_at is None or lead_ids is None:
        return {}
    created = _moments(created_at)
    start, end = created.min(), created.max()
    decided = None
    if guess.deals is not None and guess.deals.closed_at and guess.deals.id:
        closed = _moments(deals[guess.deals.closed_at])
        end = max(end, closed.max())
        created_by_id = pd.Series(created.to_numpy(), index=lead_ids.map(value_text)).groupby(level=0).first()
        when = created_by_id.reindex(deals[guess.deals.id].map(value_text)).to_numpy()
        won_rows = deals[guess.deals.outcome].map(value_text).isin(guess.deals.won).to_numpy() \
            if guess.deals.outcome else np.ones(len(deals), dtype=bool)
        waited = (closed.to_numpy() - when)[won_rows] / np.timedelta64(1, "D")
        waited = waited[np.isfinite(waited) & (waited >= 0)]
        decided = waited if len(waited) else None
    if guess.events is not None and guess.events.timestamp:
        end = max(end, _moments(events[guess.events.timestamp]).max())
    if pd.isna(start) or pd.isna(end) or end <= start:
        return {}
    span = (end - start) / pd.Timedelta(days=1)
    timing = {}
    if decided is not None:
        p90 = float(np.quantile(decided, 0.9))
        # At most a quarter of the span: the horizon, test and calibration windows must leave older
        # snapshots to train on (a third left a year of won-only deals no conversion to train on).
        horizon = _nice(min(max(p90, 1 / 24), span / 4))
        timing["horizon"] = (_text(horizon), f"90 % of won deals close within {_text(_nice(p90))} of creation; "
                                             f"the data spans {_text(_nice(span))}"
                                             + ("; at most a quarter of it, to leave snapshots to train on"
                                                if p90 > span / 4 else ""))
    else:
        horizon = _nice(min(90.0, span / 4))
        timing["horizon"] = (_text(horizon), f"no closing times to measure: 90 days or a quarter of the "
                                             f"{_text(_nice(span))} span")
    every = _nice(max(horizon / 6, span / MAX_SNAPSHOTS))
    timing["snapshot_every"] = (_text(every), f"a sixth of the horizon, at most {MAX_SNAPSHOTS} snapshots over "
                                              "the span")
    window = _nice(min(max(0.15 * (span - horizon), 3 * every), max(365.0, 2 * horizon)))
    timing["test_span"] = (_text(window), "the newest part of the data, at least three snapshots")
    timing["calibration_span"] = (_text(window), "the part before the test window")
    if guess.deals is not None and guess.deals.won_only:
        timing["lost_after"] = (_text(_nice(2 * horizon)), "twice the horizon")
    if horizon < 30:
        windows = sorted({_nice(horizon / 12), _nice(horizon / 3), horizon})
        timing["windows"] = ([_text(days) for days in windows], "count windows on the horizon's scale")
        timing["half_lives"] = ([_text(days) for days in windows[:2]], "decay on the same scale")
    return timing


def _nice(days: float) -> float:
    """Round a duration up to a readable one: whole hours below a day, whole days below two weeks, then 5-day steps."""
    if days < 1:
        return max(1, math.ceil(days * 24 - 1e-9)) / 24
    if days < 14:
        return float(math.ceil(days - 1e-9))
    return float(5 * math.ceil(days / 5 - 1e-9))


def _text(days: float) -> str:
    return f"{round(days * 24)}h" if days < 1 else f"{days:g}d"


def _moments(values: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
    return parsed.dt.tz_localize(None)


# --- shared -----------------------------------------------------------------------------------------


def _id_column(frame, profiles, known, table: str, checks: list) -> str | None:
    """The column holding lead ids: the most values found among the lead table's ids, else one named like an id."""
    best, best_share = None, 0.0
    if known:
        for column in frame.columns:
            if profiles[column]["kind"] in ("date", "float"):
                continue
            share = float(frame[column].map(value_text).isin(known).mean())
            if share > best_share:
                best, best_share = column, share
        if best is not None and best_share >= 0.5:
            if best_share < 1.0:
                checks.append(f"{table}: {best!r} holds lead ids, but {1 - best_share:.1%} of its rows name leads "
                              "missing from the lead table: training will refuse them.")
            return best
        checks.append(f"{table}: no column holds the lead table's ids; name it under [{table}] id.")
    texts = [column for column in frame.columns if profiles[column]["kind"] in ("text", "integer")]
    return _prefer(texts, ID_NAMES)


def _date_column(profiles: dict, names, *, exclude) -> str | None:
    dates = [column for column, profile in profiles.items() if profile["kind"] == "date" and column not in exclude]
    return _prefer(dates, names)


def _prefer(columns: list, names, *, named_only: bool = False):
    """The first column whose name has one of ``names``, else the first column (None when ``named_only``)."""
    named = [column for column in columns if name_has(column, names)]
    if named:
        return named[0]
    return None if named_only or not columns else columns[0]
