"""Features of a few leads straight from their attributes and events, in plain Python (the HTTP route).

``build_features`` is built for millions of snapshots: its pandas and numpy calls cost a fixed
few milliseconds, which is all of a single lead's time. ``few_lead_features`` computes the same
columns for a handful of leads value by value, under the same rules (``features.fit`` for the
attributes, ``features.engagement`` for the events: only events strictly before ``as_of``, exact
duplicates once, types matched by key, unknown types as ``other``); a test checks every column
against ``build_features`` on the same leads.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from functools import lru_cache

import numpy as np
import pandas as pd

from features.fit import _boolean, _category, _email_domain_type, _job_function, _number, _seniority
from features.spec import FeatureSpec, count_feature, decayed_feature, event_key, feature_name

#: Up to this many leads the service takes this route; more go through ``build_features``.
FEW_LEADS = 8

_DAY_US = 86_400_000_000
_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=timezone.utc)


def few_lead_features(spec: FeatureSpec, leads, as_of) -> pd.DataFrame:
    """Feature rows of ``leads`` as of ``as_of``, indexed 0..n-1, columns ``spec.feature_names``.

    Each lead is ``(created_at, attributes, events)``: a datetime (naive is UTC; None when the
    spec has no lead age), a dict of lead column -> value (absent columns are missing) and a list
    of ``(occurred_at, event_type)`` pairs. Numeric attributes must already be numbers or None
    (the service checks them); categories, titles, e-mails and yes/no values are parsed here.
    """
    shape = _shape(spec)
    labels, numbers = few_lead_rows(spec, leads, as_of)
    n = len(labels)
    index = pd.RangeIndex(n)
    categorical = pd.DataFrame(np.array(labels, dtype=object).reshape(n, len(shape.categorical)),
                               index=index, columns=shape.categorical_index)
    numbers = pd.DataFrame(numbers, index=index, columns=shape.numeric_index)
    # A spec lists its categorical features first, then the numeric ones: two blocks side by side.
    return pd.concat([categorical, numbers], axis=1)


def few_lead_rows(spec: FeatureSpec, leads, as_of) -> tuple[list, np.ndarray]:
    """``few_lead_features`` as plain blocks, without pandas: ``(labels, numbers)``.

    ``labels`` is one list per lead of its ``spec.categorical_feature_names`` values (text or
    None); ``numbers`` is a float array, leads x the remaining features in ``spec.feature_names``
    order (the spec lists the categorical features first).
    """
    shape = _shape(spec)
    as_of = pd.Timestamp(as_of)
    if as_of.tzinfo is not None:
        as_of = as_of.tz_convert("UTC").tz_localize(None)
    as_of_us = as_of.value // 1_000
    rows = [_lead_row(spec, shape, lead, as_of_us) for lead in leads]
    labels = [row[0] for row in rows]
    numbers = np.array([row[1] for row in rows], dtype=float).reshape(len(rows), len(shape.numeric))
    return labels, numbers


def block_names(spec: FeatureSpec) -> tuple[list, list]:
    """The feature names of ``few_lead_rows``' two blocks: categorical, then numeric (remembered per spec)."""
    shape = _shape(spec)
    return shape.categorical, shape.numeric


class _Shape:
    """Column names and positions of one spec, worked out once (a spec's properties rebuild lists on every call)."""

    def __init__(self, spec: FeatureSpec):
        self.names = spec.feature_names
        self.categorical = spec.categorical_feature_names
        self.numeric = self.names[len(self.categorical):]
        if self.names[:len(self.categorical)] != self.categorical:
            raise RuntimeError("FeatureSpec.feature_names no longer lists the categorical features first; "
                               "update features/single_lead.py.")
        # Column labels as plain objects, built once: pandas would infer (slow) arrow strings per call.
        self.categorical_index = pd.Index(self.categorical, dtype=object)
        self.numeric_index = pd.Index(self.numeric, dtype=object)
        position = {name: i for i, name in enumerate(self.numeric)}
        self.log_numbers = [(column, position[f"log_{feature_name(column)}"]) for column in spec.numeric_columns]
        self.raw_numbers = [(column, position[feature_name(column)]) for column in spec.raw_numeric_columns]
        self.booleans = [(column, position[feature_name(column)]) for column in spec.boolean_columns]
        self.lead_age = position.get("lead_age_days")
        self.event_log = spec.event_log
        if not spec.event_log:
            return
        self.keys = spec.event_keys_with_other
        self.code = {key: k for k, key in enumerate(self.keys)}
        self.windows = tuple(float(w) for w in spec.windows_days)
        self.half_lives = tuple(float(h) for h in spec.half_lives_days)
        self.decay_rates = tuple(-1.0 / half_life for half_life in self.half_lives)  # as features.event_pass
        self.per_type = [
            ([position[count_feature(key, w)] for w in spec.windows_days], position[f"events_{key}_total"],
             position[f"days_since_{key}"], [position[decayed_feature(key, h)] for h in spec.half_lives_days])
            for key in self.keys]
        self.any_windows = [position[count_feature("any", w)] for w in spec.windows_days]
        self.any_total = position["events_any_total"]
        self.any_days_since = position["days_since_any_event"]
        self.active_total = position["active_days_total"]
        self.active_30 = position["active_days_30d"]
        self.trend = position["events_trend_30d"]
        self.click_rate = position.get("email_click_rate")
        self.opens = position.get("events_email_open_total")
        self.clicks = position.get("events_email_click_total")


@lru_cache(maxsize=16)
def _shape(spec: FeatureSpec) -> _Shape:
    return _Shape(spec)


def _lead_row(spec: FeatureSpec, shape: _Shape, lead, as_of_us: int):
    created_at, attributes, events = lead
    missing = set(spec.missing_tokens)
    labels = [_category(attributes.get(column), missing) for column in spec.categorical_columns]
    if spec.job_title_column:
        title = _category(attributes.get(spec.job_title_column), missing)
        labels += [_seniority(title), _job_function(title)]
    if spec.email_column:
        labels.append(_email_domain_type(attributes.get(spec.email_column)))
    numbers = [0.0] * len(shape.numeric)
    for column, at in shape.log_numbers:
        value = _number(attributes.get(column))
        # Negative sizes and revenues are data-entry errors, not small companies (as build_fit_features).
        numbers[at] = float(np.log1p(value)) if value >= 0 else math.nan
    for column, at in shape.raw_numbers:
        numbers[at] = _number(attributes.get(column))
    for column, at in shape.booleans:
        numbers[at] = _boolean(attributes.get(column))
    if shape.lead_age is not None:
        numbers[shape.lead_age] = ((as_of_us - _microseconds(created_at)) / _DAY_US
                                   if created_at is not None else math.nan)
    if shape.event_log:
        _engagement(shape, events, as_of_us, numbers)
    return labels, numbers


def _engagement(shape: _Shape, events, as_of_us: int, numbers: list) -> None:
    """``build_engagement_features`` for one lead's events, written into ``numbers``."""
    seen = {(_microseconds(moment), event_key(kind)) for moment, kind in events}  # exact duplicates once
    rows = sorted((ts, key) for ts, key in seen if ts < as_of_us)
    days = {ts // _DAY_US for ts, _ in rows}
    days_30 = set()
    other = len(shape.keys) - 1
    counts = [[0.0] * len(shape.windows) for _ in shape.keys]
    totals = [0.0] * len(shape.keys)
    nearest = [math.inf] * len(shape.keys)
    decayed = [[0.0] * len(shape.half_lives) for _ in shape.keys]
    n30 = n60 = 0.0
    for ts, key in rows:
        age = (as_of_us - ts) / _DAY_US
        k = shape.code.get(key, other)
        for f, window in enumerate(shape.windows):
            if age <= window:
                counts[k][f] += 1.0
        totals[k] += 1.0
        nearest[k] = min(nearest[k], age)
        for j, rate in enumerate(shape.decay_rates):
            decayed[k][j] += math.exp2(age * rate)  # libm's exp2, as the compiled batch pass calls it
        if age <= 30:
            n30 += 1.0
            days_30.add(ts // _DAY_US)
        if age <= 60:
            n60 += 1.0
    for k, (window_at, total_at, days_since_at, decayed_at) in enumerate(shape.per_type):
        for f, at in enumerate(window_at):
            numbers[at] = counts[k][f]
        numbers[total_at] = totals[k]
        numbers[days_since_at] = nearest[k] if nearest[k] != math.inf else math.nan
        for j, at in enumerate(decayed_at):
            numbers[at] = decayed[k][j]
    for f, at in enumerate(shape.any_windows):
        numbers[at] = float(sum(count[f] for count in counts))
    numbers[shape.any_total] = float(sum(totals))
    closest = min(nearest)
    numbers[shape.any_days_since] = closest if closest != math.inf else math.nan
    numbers[shape.active_total] = float(len(days))
    numbers[shape.active_30] = float(len(days_30))
    numbers[shape.trend] = (2 * n30 - n60) / n60 if n60 > 0 else 0.0
    if shape.click_rate is not None:
        clicks, opens = numbers[shape.clicks], numbers[shape.opens]
        denominator = max(opens, clicks)
        numbers[shape.click_rate] = clicks / denominator if denominator > 0 else math.nan


def _microseconds(moment) -> int:
    """Microseconds since the epoch of a datetime (naive = UTC), exactly, as the batch route's datetime64[us]."""
    if isinstance(moment, pd.Timestamp):  # its nanoseconds since the epoch (UTC when zoned), truncated
        return moment.value // 1_000
    delta = moment - (_EPOCH if moment.tzinfo is None else _EPOCH_UTC)  # aware minus aware: exact, any zone
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
