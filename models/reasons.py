"""Reasons: the strongest positive and negative factors of each score, in plain words.

A *factor* is a family of features read as one thing: every ``events_demo_request_*``,
``days_since_demo_request`` and ``decayed_demo_request_*`` column is "demo requests"; a source
column and its one-hot pieces are one factor. A factor's impact is the sum of its features'
exact contributions (log-odds, see ``models.explain``); its text is written from the lead's
feature values, never from the contributions, so it says what the lead did or is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from features.spec import FeatureSpec, count_feature
from models.factor_words import ACTIVITY, CLICK_RATE, LEAD_AGE, TREND, describe_factor, feature_families, sub_day

#: Factors whose summed contribution is smaller than this (in log-odds) are not worth a reason.
MIN_IMPACT = 0.01


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
    not once per lead: texts repeat heavily (25,622 distinct in 300,000 cells measured); rows are
    grouped by hashing (``pd.factorize``), not by a frame's groupby or a sort. Each distinct impact
    is formatted once and joined to each text it goes with; the strongest factors come from one
    compiled pass (``models.reason_ranking``). 0.26 s of CPU per 100,000 leads with their texts
    already written, against 0.63 s before (the benchmark's model, one chunk of its 1M base).
    """
    from models.reason_ranking import top_factors

    names, indicator = _family_matrix(spec, tuple(contributions.columns))
    impact = contributions.to_numpy() @ indicator
    rows = np.arange(len(impact))[:, None]
    chosen = top_factors(impact, n=n, min_impact=min_impact)  # argsort's order, without sorting every row
    # Which (row, factor) a reason shows: its text is needed there.
    shown = np.zeros(impact.shape, dtype=bool)
    for order, _, valid in chosen.values():
        shown[rows, order] |= valid
    # Text of each (row, factor) a reason needs, factor by factor.
    text_id = np.full((len(impact), len(names)), -1, dtype=np.int64)
    texts: list[str] = []
    values = _Columns(features)
    for k, name in enumerate(names):
        where = np.flatnonzero(shown[:, k])
        if not len(where):
            continue
        group, first, keys = _distinct_inputs(features, _factor_inputs(name, spec, features.columns), where,
                                              sub_day=sub_day(spec), counts=_event_counts(name, spec))
        text_id[where, k] = len(texts) + group
        # Equal keys mean equal texts: a text written for an earlier chunk of the same spec is reused.
        known = _written_texts(spec)
        for row, key in zip(where[first], keys):
            text = known.get((name, key))
            if text is None:
                text = known[(name, key)] = describe_factor(name, values.row(int(row)), spec)
            texts.append(text)
        if len(known) > _MAX_WRITTEN_TEXTS:
            known.clear()
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


#: Texts kept per spec across calls (batch scoring's chunks): cleared beyond this many, about 20 MB.
_MAX_WRITTEN_TEXTS = 200_000


@lru_cache(maxsize=8)
def _written_texts(spec: FeatureSpec) -> dict:
    """``(factor, key) -> text`` already written for ``spec``; a missing value in a key never matches (NaN)."""
    return {}


def _event_counts(factor: str, spec: FeatureSpec):
    """``(total column, count columns narrowest window first)`` of an event factor, else None."""
    if factor not in spec.event_keys_with_other:
        return None
    return f"events_{factor}_total", [count_feature(factor, w) for w in sorted(spec.windows_days)]


def _distinct_inputs(features: pd.DataFrame, inputs: list[str], where: np.ndarray, *, sub_day: bool = False,
                     counts=None):
    """Group id of each row in ``where`` by what its text reads, the position of each group's first row and
    each group's key (a tuple: equal keys, equal texts).

    Days since are read only as whole days (``_ago``; under two days as whole minutes when the spec
    tells sub-day times), the trend only against +-0.2: rows equal on those keys get the same
    text, so they share one ``describe_factor`` call; the activity's total only as some or none.
    An event factor's counts (``counts``: its total and window columns) are read as its text reads
    them: none, once, else the number in the narrowest window holding more than one (which window,
    and how many), else the total.
    """
    keys = {}
    if counts is not None and all(name in features.columns for name in (counts[0], *counts[1])):
        total_name, window_names = counts
        total = features[total_name].to_numpy()[where].astype(float)
        # which: 0 none, 1 once, 2 + i the narrowest window i with more than one, 2 + len(windows) the total.
        which = np.where(total >= 2, 2 + len(window_names), np.trunc(np.clip(total, 0, 1)))
        number = np.where(total >= 2, np.trunc(total), 0.0)
        for i in reversed(range(len(window_names))):  # the narrowest such window wins: visited last
            count = np.trunc(features[window_names[i]].to_numpy()[where].astype(float))
            wins = (total >= 2) & (count > 1)
            which, number = np.where(wins, 2 + i, which), np.where(wins, count, number)
        keys["(count read)"], keys["(count)"] = which, number
        inputs = [name for name in inputs if name != total_name and name not in window_names]
    for name in inputs:
        column = features[name].to_numpy()[where]
        if name.startswith("days_since_") or name == "lead_age_days":
            days = column.astype(float)
            column = np.floor(days)
            if sub_day:
                keys[f"{name} (minutes)"] = np.where(days < 2, np.trunc(days * 1440), 0.0)
        elif name == "events_trend_30d":
            column = np.select([column > 0.2, column < -0.2], [1, -1], 0)
        elif name == "events_any_total":  # the activity text reads only whether there was any
            column = column != 0
        keys[name] = column
    if not keys:
        return np.zeros(len(where), dtype=np.int64), np.array([0]), [()]
    # What groupby(sort=False, dropna=False).ngroup() gives, without a frame: each column's values as codes
    # (every missing value one code), the codes packed into one number per row, that numbered in order of
    # first appearance; a new group's first row is where the running highest number rises.
    packed, size = np.zeros(len(where), dtype=np.int64), 1
    for column in keys.values():
        codes, uniques = pd.factorize(column, use_na_sentinel=False)
        if size * len(uniques) >= 1 << 62:  # repack before the product could overflow
            packed, size = _first_seen_codes(packed)
        packed, size = packed * len(uniques) + codes, size * len(uniques)
    group, _ = _first_seen_codes(packed)
    first = np.flatnonzero(np.diff(np.maximum.accumulate(group), prepend=-1) > 0)
    columns = [np.asarray(column)[first] for column in keys.values()]
    return group, first, list(zip(*columns))


def _first_seen_codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Codes numbered in order of first appearance, and how many there are."""
    codes, uniques = pd.factorize(values)
    return codes.astype(np.int64, copy=False), max(len(uniques), 1)


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
        inverse, distinct = pd.factorize(key)  # hashed, not sorted: 300,000 keys a chunk
        first = np.flatnonzero(np.diff(np.maximum.accumulate(inverse), prepend=-1) > 0)
        # Each distinct impact formatted once, then joined to its text: no float formatting per pair.
        pair_cents = cents[exact][first]
        distinct_cents, cents_id = np.unique(pair_cents, return_inverse=True)
        suffix = np.array([f" ({c / 100:+.2f})" for c in distinct_cents], dtype=object)
        made = texts[ids[exact][first]] + suffix[cents_id]
        cells[exact] = made[inverse]
    for row, column in zip(*np.nonzero(valid & near_half)):
        cells[row, column] = f"{texts[ids[row, column]]} ({impact[row, column]:+.2f})"
    return cells


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
