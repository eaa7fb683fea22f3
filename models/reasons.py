"""Reasons: the strongest positive and negative factors of each score, in plain words.

A *factor* is a family of features read as one thing: every ``events_demo_request_*``,
``days_since_demo_request`` and ``decayed_demo_request_*`` column is "demo requests"; a source
column and its one-hot pieces are one factor. A factor's impact is the sum of its features'
exact contributions (log-odds, see ``models.explain``); its text is written from the lead's
feature values, never from the contributions, so it says what the lead did or is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from features.spec import OTHER_EVENT_TYPE, FeatureSpec, count_feature, decayed_feature
from features.timing import duration_text

#: Factors whose summed contribution is smaller than this (in log-odds) are not worth a reason.
MIN_IMPACT = 0.01
ACTIVITY, TREND, CLICK_RATE, LEAD_AGE = "activity", "activity_trend", "email_click_rate", "lead_age"

#: (one, many, done) per event type of the synthetic contract: "demo request", "demo requests",
#: "requested a demo". A model's own types read as the words its config gives them, else as their names.
EVENT_WORDS = {
    "email_open": ("e-mail open", "e-mail opens", "opened an e-mail"),
    "email_click": ("e-mail click", "e-mail clicks", "clicked an e-mail"),
    "page_view": ("page view", "page views", "visited the website"),
    "pricing_page_view": ("pricing-page view", "pricing-page views", "viewed the pricing page"),
    "content_download": ("content download", "content downloads", "downloaded content"),
    "webinar_attended": ("webinar attended", "webinars attended", "attended a webinar"),
    "form_submit": ("form submission", "form submissions", "submitted a form"),
    "newsletter_signup": ("newsletter sign-up", "newsletter sign-ups", "signed up for the newsletter"),
    "free_trial_start": ("free-trial start", "free-trial starts", "started a free trial"),
    "demo_request": ("demo request", "demo requests", "requested a demo"),
    "unsubscribe": ("unsubscribe", "unsubscribes", "unsubscribed"),
    "email_bounce": ("e-mail bounce", "e-mail bounces", "had an e-mail bounce"),
    OTHER_EVENT_TYPE: ("other event", "other events", "had another event"),
}
SENIORITY_WORDS = {
    "vp": "VP-level title", "c_level": "C-level title", "director": "director-level title",
    "manager": "manager-level title", "entry": "entry-level title", "individual": "individual-contributor title",
}
COLUMN_WORDS = {"lead_source": "source", "company_size": "company size", "annual_revenue": "annual revenue"}
#: Last words of a behaviour column's name that make its value a count: "TotalVisits" 7 -> "7 visits".
COUNT_NOUNS = frozenset({"visits", "views", "opens", "clicks", "downloads", "sessions", "pages", "calls", "emails",
                         "e-mails", "messages", "events", "submissions", "logins", "purchases", "orders", "meetings",
                         "replies", "webinars", "contacts", "touches", "interactions", "activities", "actions"})


@dataclass(frozen=True)
class Reason:
    """One factor of one score: what it is, what the lead did or is, and its signed log-odds impact."""

    factor: str
    text: str
    impact: float

    def __str__(self) -> str:
        return f"{self.text} ({self.impact:+.2f})"

    def as_dict(self) -> dict:
        # Spelled out rather than dataclasses.asdict, which deep-copies: this runs six times per lead.
        return {"factor": self.factor, "text": self.text, "impact": self.impact,
                "direction": "up" if self.impact > 0 else "down"}


def top_reasons(contributions: pd.DataFrame, features: pd.DataFrame, spec: FeatureSpec, *, n: int = 3,
                min_impact: float = MIN_IMPACT) -> list[tuple[list[Reason], list[Reason]]]:
    """``(positive, negative)`` reasons of each row, strongest first, at most ``n`` of each.

    Deterministic: equal impacts keep the order of ``spec.feature_names``.
    """
    return ranked_reasons(contributions.to_numpy(), tuple(contributions.columns), _Columns(features).row, spec,
                          n=n, min_impact=min_impact)


def ranked_reasons(contributions: np.ndarray, columns: tuple, row_values, spec: FeatureSpec, *, n: int = 3,
                   min_impact: float = MIN_IMPACT) -> list[tuple[list[Reason], list[Reason]]]:
    """``top_reasons`` of contributions held as an array (rows x ``columns``).

    ``row_values(i)`` gives row ``i``'s ``value(name)`` function for the texts: a DataFrame's
    columns (``top_reasons``) or a lead's plain feature values (the single-lead route).
    """
    names, indicator = _family_matrix(spec, columns)
    impact = contributions @ indicator
    up = np.argsort(-impact, axis=1, kind="stable")[:, :n]
    down = np.argsort(impact, axis=1, kind="stable")[:, :n]
    result = []
    for row in range(len(impact)):
        def reasons(order, sign):
            chosen = [k for k in order if sign * impact[row, k] >= min_impact]
            return [Reason(names[k], describe_factor(names[k], row_values(row), spec), float(impact[row, k]))
                    for k in chosen]
        result.append((reasons(up[row], 1.0), reasons(down[row], -1.0)))
    return result


@lru_cache(maxsize=8)
def _family_matrix(spec: FeatureSpec, columns: tuple) -> tuple[list, np.ndarray]:
    """Factor names in spec order and the 0/1 matrix summing ``columns`` into them; cached per spec."""
    families = feature_families(spec)
    names = list(dict.fromkeys(families.values()))
    position = {name: i for i, name in enumerate(names)}
    indicator = np.zeros((len(columns), len(names)))
    indicator[np.arange(len(columns)), [position[families[c]] for c in columns]] = 1.0
    indicator.setflags(write=False)
    return names, indicator


def reason_columns(reasons, *, n: int = 3) -> dict:
    """Flat text columns for a CRM import: ``positive_reason_1..n``, ``negative_reason_1..n`` ('' when fewer)."""
    columns = {}
    for side, label in ((0, "positive"), (1, "negative")):
        for k in range(n):
            columns[f"{label}_reason_{k + 1}"] = [str(pair[side][k]) if k < len(pair[side]) else ""
                                                 for pair in reasons]
    return columns


def top_reason_columns(contributions: pd.DataFrame, features: pd.DataFrame, spec: FeatureSpec, *, n: int = 3,
                       min_impact: float = MIN_IMPACT) -> dict:
    """``reason_columns(top_reasons(...))`` for many rows at once: same texts, same order, as arrays.

    The same ranking, vectorised; each factor's text is written once per distinct value of what
    the text reads (days since are read as whole days, the trend as rising / flat / falling),
    not once per lead: texts repeat heavily (25,622 distinct in 300,000 cells measured), and
    the impact is formatted once per distinct cent value.
    """
    names, indicator = _family_matrix(spec, tuple(contributions.columns))
    impact = contributions.to_numpy() @ indicator
    rows = np.arange(len(impact))[:, None]
    chosen = {}
    for label, sign in (("positive", 1.0), ("negative", -1.0)):
        order = np.argsort(-sign * impact, axis=1, kind="stable")[:, :n]
        value = impact[rows, order]
        chosen[label] = (order, value, sign * value >= min_impact)
    # Text of each (row, factor) a reason needs, factor by factor.
    text_id = np.full((len(impact), len(names)), -1, dtype=np.int64)
    texts: list[str] = []
    values = _Columns(features)
    for k, name in enumerate(names):
        needed = np.zeros(len(impact), dtype=bool)
        for order, _, valid in chosen.values():
            needed |= ((order == k) & valid).any(axis=1)
        if not needed.any():
            continue
        where = np.flatnonzero(needed)
        group, first = _distinct_inputs(features, _factor_inputs(name, spec, features.columns), where,
                                        sub_day=_sub_day(spec))
        text_id[where, k] = len(texts) + group
        texts.extend(describe_factor(name, values.row(int(row)), spec) for row in where[first])
    columns = {}
    texts = np.array(texts + [""], dtype=object)
    for label, (order, value, valid) in chosen.items():
        ids = np.where(valid, text_id[rows, order], len(texts) - 1)
        cells = _with_impacts(texts, ids, value, valid)
        for j in range(n):
            columns[f"{label}_reason_{j + 1}"] = cells[:, j] if j < cells.shape[1] else np.full(len(impact), "", object)
    return columns


def _factor_inputs(factor: str, spec: FeatureSpec, available) -> list[str]:
    """The feature columns ``describe_factor`` reads for ``factor``."""
    if factor in spec.event_keys_with_other:
        inputs = [f"events_{factor}_total", f"days_since_{factor}", *(count_feature(factor, w) for w in spec.windows_days)]
    elif factor == ACTIVITY:
        inputs = ["events_any_total", "days_since_any_event", "active_days_30d"]
    elif factor == TREND:
        inputs = ["events_trend_30d"]
    elif factor == CLICK_RATE:
        inputs = ["email_click_rate"]
    elif factor == LEAD_AGE:
        inputs = ["lead_age_days"]
    elif factor in spec.categorical_feature_names:
        inputs = [factor]
    elif f"log_{factor}" in spec.numeric_fit_feature_names:
        inputs = [f"log_{factor}"]
    else:
        inputs = [factor]
    return [name for name in inputs if name in set(available)]


def _distinct_inputs(features: pd.DataFrame, inputs: list[str], where: np.ndarray, *, sub_day: bool = False):
    """Group id of each row in ``where`` by what its text reads, and the position of each group's first row.

    Days since are read only as whole days (``_ago``; under two days as whole minutes when the spec
    tells sub-day times), the trend only against +-0.2: rows equal on those keys get the same
    text, so they share one ``describe_factor`` call.
    """
    keys = {}
    for name in inputs:
        column = features[name].to_numpy()[where]
        if name.startswith("days_since_") or name == "lead_age_days":
            days = column.astype(float)
            column = np.floor(days)
            if sub_day:
                keys[f"{name} (minutes)"] = np.where(days < 2, np.trunc(days * 1440), 0.0)
        elif name == "events_trend_30d":
            column = np.select([column > 0.2, column < -0.2], [1, -1], 0)
        keys[name] = column
    if not keys:
        return np.zeros(len(where), dtype=np.int64), np.array([0])
    group = pd.DataFrame(keys).groupby(list(keys), sort=False, dropna=False).ngroup().to_numpy()
    _, first = np.unique(group, return_index=True)
    return group, first


def _with_impacts(texts: np.ndarray, ids: np.ndarray, impact: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``"text (+1.20)"`` cells (``""`` where not valid), each distinct (text, impact) written once."""
    cents = np.rint(impact * 100.0)
    # rint(x * 100) is the 2-decimal rounding Python's format applies unless x * 100 sits a hair
    # from a .5 boundary; those rare cells are formatted one by one.
    near_half = np.abs(np.abs(impact * 100.0 - np.trunc(impact * 100.0)) - 0.5) < 1e-6
    cells = np.empty(ids.shape, dtype=object)
    cells[~valid] = ""
    exact = valid & ~near_half
    if exact.any():
        key = ids[exact] * 1_000_003 + (cents[exact].astype(np.int64) % 1_000_003)
        distinct, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        made = np.array([f"{texts[i]} ({c / 100:+.2f})" for i, c in zip(ids[exact][first], cents[exact][first])],
                        dtype=object)
        cells[exact] = made[inverse.ravel()]
    for row, column in zip(*np.nonzero(valid & near_half)):
        cells[row, column] = f"{texts[ids[row, column]]} ({impact[row, column]:+.2f})"
    return cells


def feature_families(spec: FeatureSpec) -> dict:
    """Feature name -> factor: the source column, the event type's key, or one of the activity summaries.

    A feature of no known kind is a factor of its own, so a new kind of column degrades to a
    plain "name: value" reason instead of failing.
    """
    families = {name: name for name in spec.categorical_feature_names}
    families.update({name: name.removeprefix("log_") for name in spec.numeric_fit_feature_names})
    families["lead_age_days"] = LEAD_AGE
    for key in spec.event_keys_with_other:
        families.update({count_feature(key, w): key for w in spec.windows_days})
        families[f"events_{key}_total"] = key
        families[f"days_since_{key}"] = key
        families.update({decayed_feature(key, h): key for h in spec.half_lives_days})
    families.update({count_feature("any", w): ACTIVITY for w in spec.windows_days})
    families.update({name: ACTIVITY for name in ("events_any_total", "days_since_any_event",
                                                  "active_days_total", "active_days_30d")})
    families["events_trend_30d"] = TREND
    if spec.has_email_click_rate:
        families["email_click_rate"] = CLICK_RATE
    return {name: families.get(name, name) for name in spec.feature_names}


def factor_words(factor: str, spec: FeatureSpec | None = None) -> str:
    """A factor's name for people: 'demo requests', 'overall activity', 'industry'.

    An event type of the model's own log reads as its name in the data ("O_Accepted"), else as the key.
    """
    fixed = {ACTIVITY: "overall activity", TREND: "activity trend (last 30 days vs the 30 before)",
             CLICK_RATE: "e-mail click-through rate", LEAD_AGE: "lead age", "email_domain_type": "e-mail domain",
             "seniority": "seniority (from job title)", "job_function": "job function (from job title)"}
    if factor in fixed:
        return fixed[factor]
    if factor in EVENT_WORDS:
        return EVENT_WORDS[factor][1]
    if spec is not None and factor in spec.event_keys_with_other:
        return f"{spec.event_names.get(factor, factor)} events"
    return COLUMN_WORDS.get(factor, factor.replace("_", " "))


def describe_factor(factor: str, value, spec: FeatureSpec) -> str:
    """Plain words for one factor of one lead; ``value(name)`` gives that lead's feature ``name``."""
    words = _spec_words(spec)
    if factor in words.event_keys:
        return _describe_events(factor, value, words)
    if factor == ACTIVITY:
        if not value("events_any_total"):
            return "no activity yet"
        last = _ago(value("days_since_any_event"), words.sub_day)
        days = int(value("active_days_30d"))
        if days == 0:
            return f"no activity in the last 30 days, last active {last}"
        return f"active on {_count(days, 'day', 'days')} in the last 30 days, last active {last}"
    if factor == TREND:
        trend = value("events_trend_30d")
        if trend > 0.2:
            return "activity rising over the last 30 days"
        if trend < -0.2:
            return "activity falling over the last 30 days"
        return "activity flat over the last 30 days"
    if factor == CLICK_RATE:
        rate = value("email_click_rate")
        return "no e-mails opened yet" if _missing(rate) else f"clicked {rate:.0%} of opened e-mails"
    if factor == LEAD_AGE:
        return f"lead created {_ago(value('lead_age_days'), words.sub_day)}"
    behaviour = words.behaviour
    if factor in behaviour and factor not in words.categorical:
        feature, column = behaviour[factor]
        return _describe_behaviour(column, value(feature), logged=feature.startswith("log_"))
    if factor in words.categorical:
        return _describe_category(factor, value(factor))
    if f"log_{factor}" in words.numeric_fit:
        return _describe_number(factor, value(f"log_{factor}"))
    label, raw = COLUMN_WORDS.get(factor, factor.replace("_", " ")), value(factor)
    if _missing(raw):
        return f"{label} unknown"
    return f"{label}: {raw:,.4g}" if isinstance(raw, (int, float, np.number)) else f"{label}: {raw}"


def _describe_events(key: str, value, spec_words: _SpecWords) -> str:
    """What the lead did of one event type, in the words the config gives it, else the type's own name."""
    words, name, windows = spec_words.events[key]
    total = int(value(f"events_{key}_total"))
    last = _ago(value(f"days_since_{key}"), spec_words.sub_day)
    if isinstance(words, str):  # one phrase of what the lead did: "sent the offer back"
        if total == 0:
            return f"never {words}"
        if total == 1:
            return f"{words} {last}"
        return f"{words} {_times(total, value, windows)}, the latest {last}"
    if words is None and name == key and key in EVENT_WORDS:
        words = EVENT_WORDS[key]
    if name == key:  # a snake_case name reads as words; the data's own spelling ("Send Fine") stays
        name = key.replace("_", " ")
    one, many, done = words or (f"{name} event", f"{name} events", f"had a {name} event")
    if total == 0:
        return f"no {many} yet"
    if total == 1:
        return f"{done} {last}"
    for feature, window in windows:
        count = int(value(feature))
        if count > 1:
            return f"{count} {many} in the last {window}, the latest {last}"
    return f"{total} {many} in all, the latest {last}"


class _SpecWords:
    """What ``describe_factor`` reads off a spec, worked out once: its properties rebuild lists per call."""

    def __init__(self, spec: FeatureSpec):
        self.event_keys = frozenset(spec.event_keys_with_other)
        self.sub_day = _sub_day(spec)
        self.categorical = frozenset(spec.categorical_feature_names)
        self.numeric_fit = frozenset(spec.numeric_fit_feature_names)
        self.behaviour = _behaviour_sources(spec)
        names = spec.event_names
        # Per event key: its configured words, its name in the data, and (count feature, window words)
        # from the narrowest window.
        self.events = {key: (spec.words_for(key) if key != OTHER_EVENT_TYPE else None, names.get(key, key),
                             [(count_feature(key, w), _window_text(w)) for w in sorted(spec.windows_days)])
                       for key in spec.event_keys_with_other}


_SPEC_WORDS: dict = {}


def _spec_words(spec: FeatureSpec) -> _SpecWords:
    """``_SpecWords`` of ``spec``, remembered by identity (hashing a spec costs more than a reason's text)."""
    entry = _SPEC_WORDS.get(id(spec))
    if entry is None or entry[0] is not spec:
        if len(_SPEC_WORDS) >= 16:
            _SPEC_WORDS.clear()
        entry = _SPEC_WORDS[id(spec)] = (spec, _SpecWords(spec))
    return entry[1]


@lru_cache(maxsize=8)
def _behaviour_sources(spec: FeatureSpec) -> dict:
    """Factor -> (feature, lead column) of the lead columns that summarise behaviour."""
    sources = spec.source_columns
    return {name.removeprefix("log_"): (name, sources[name]) for name in spec.summarised_engagement_feature_names}


def _describe_behaviour(column: str, number, *, logged: bool) -> str:
    """A summarised behaviour in the lead's own numbers: "7 visits", "time on site: 1,234"."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(column))  # TotalVisits -> Total Visits
    label = " ".join(re.sub(r"[^0-9A-Za-z%-]+", " ", words).lower().split()) or str(column)
    if _missing(number):
        return f"{label} unknown"
    amount = round(float(np.expm1(number)) if logged else float(number), 6)  # log1p and back is not exact
    if amount.is_integer() and label.split()[-1] in COUNT_NOUNS:
        noun = re.sub(r"^(?:total|number of|num|no of|count of|#)\s+", "", label)
        return f"{amount:,.0f} {noun}"
    text = f"{amount:,.0f}" if amount.is_integer() else f"{amount:,.2f}".rstrip("0").rstrip(".")
    return f"{label}: {text}"


def _times(total: int, value, windows: list) -> str:
    """'3 times in the last 7 days' from the narrowest window holding more than one, else '5 times in all'."""
    for feature, window in windows:
        count = int(value(feature))
        if count > 1:
            return f"{count} times in the last {window}"
    return f"{total} times in all"


def _window_text(days) -> str:
    """7 -> '7 days' (as before), 0.25 -> '6 hours'."""
    return f"{days} days" if float(days).is_integer() else duration_text(days)


def _sub_day(spec: FeatureSpec) -> bool:
    """A spec with windows below a day tells times in hours: "today" would hide what matters."""
    return min(spec.windows_days, default=1) < 1


def _describe_category(column: str, value) -> str:
    if column == "seniority":
        return "no job title" if _missing(value) else SENIORITY_WORDS.get(value, f"{value} title")
    if column == "job_function":
        return "job function unknown" if _missing(value) else f"job function: {value}"
    if column == "email_domain_type":
        return "no usable e-mail domain" if _missing(value) else f"{value} e-mail domain"
    label = COLUMN_WORDS.get(column, column.replace("_", " "))
    return f"{label} unknown" if _missing(value) else f"{label}: {value}"


def _describe_number(column: str, log_value) -> str:
    """A ``log_<column>`` feature back in the column's own units."""
    label = COLUMN_WORDS.get(column, column.replace("_", " "))
    if _missing(log_value):
        return f"{label} unknown"
    amount = float(np.expm1(log_value))  # the builders store log1p of the raw number
    if column == "company_size":
        return f"company size: {amount:,.0f} employees"
    if column == "annual_revenue":
        return f"annual revenue: {_compact(amount)}"
    return f"{label}: {amount:,.0f}"


def _ago(days, hours: bool = False) -> str:
    if _missing(days):
        return "never"
    if hours and days < 2:
        minutes = int(days * 1440)
        return _count(minutes, "minute", "minutes") + " ago" if minutes < 60 else \
            _count(minutes // 60, "hour", "hours") + " ago"
    if days < 1:
        return "today"
    if days < 2:
        return "yesterday"
    return f"{int(days)} days ago"


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _compact(amount: float) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if amount >= size:
            return f"{amount / size:.1f}{suffix}"
    return f"{amount:,.0f}"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


class _Columns:
    """Feature values by name and row, pulling each column out of the frame once, only when asked."""

    def __init__(self, features: pd.DataFrame):
        self.features, self.cache = features, {}

    def row(self, i: int):
        def value(name):
            if name not in self.cache:
                self.cache[name] = self.features[name].to_numpy()
            return self.cache[name][i]
        return value
