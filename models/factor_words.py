"""A factor in words: what a lead did or is, as its reasons and the monitoring page say it.

Written from the lead's feature values, never from contributions: "requested a demo 3 days ago",
"free e-mail domain". The words of event types come from the spec (a config's own vocabulary) or here.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd

from features.spec import OTHER_EVENT_TYPE, FeatureSpec, count_feature, decayed_feature
from features.timing import duration_text

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
        self.sub_day = sub_day(spec)
        self.categorical = frozenset(spec.categorical_feature_names)
        self.numeric_fit = frozenset(spec.numeric_fit_feature_names)
        self.behaviour = _behaviour_sources(spec)
        names = spec.event_names
        # Per event key: its configured words, its name in the data, and (count feature, window words)
        # from the narrowest window.
        self.events = {key: (spec.words_for(key) if key != OTHER_EVENT_TYPE else None, names.get(key, key),
                             [(count_feature(key, w), _window_text(w)) for w in sorted(spec.windows_days)])
                       for key in spec.event_keys_with_other}


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


def sub_day(spec: FeatureSpec) -> bool:
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


ACTIVITY, TREND, CLICK_RATE, LEAD_AGE = "activity", "activity_trend", "email_click_rate", "lead_age"


_SPEC_WORDS: dict = {}
