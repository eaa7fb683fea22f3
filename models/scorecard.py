"""A learned points table: a binned logistic scorecard exported as points rules.

Each attribute band and behaviour band becomes one rule worth ``round(coef * pdo / ln 2)``
points (``pdo`` points double the odds, as credit scorecards scale them), so the table loads
through :func:`models.rules.load_rules` and scores with :func:`models.rules.points_from_inputs`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from features.spec import OTHER_EVENT_TYPE, FeatureSpec
from models.rules import AttributeRule, BehaviourRule, PointsRules, points_from_inputs


def fit_scorecard(table: pd.DataFrame, y, *, spec: FeatureSpec, thresholds_from: pd.DataFrame,
                  pdo: float = 20.0, sql_share: float = 0.05, mql_share: float = 0.20, n_bins: int = 4,
                  min_leads: int = 100, C: float = 0.1) -> PointsRules:
    """Fit a points table on rule inputs (:func:`models.rules.rule_inputs` of training snapshots).

    Bands: one per category level seen in ``min_leads`` rows or more; ``n_bins`` quantile bands
    of company numbers and lead age; for each event type, bands of its all-time count, 30-day
    count and 7-day-half-life intensity above zero (no activity is the zero-point reference).
    The MQL/SQL point thresholds put ``sql_share`` and ``sql_share + mql_share`` of the
    ``thresholds_from`` rows (the calibration snapshots) at or above them.
    """
    if pdo <= 0:
        raise ValueError(f"The 'pdo' parameter of fit_scorecard must be positive. Got {pdo!r} instead.")
    candidates = _candidate_rules(table, spec, n_bins=n_bins, min_leads=min_leads)
    probe = PointsRules(mql=0, sql=1, attributes=tuple(r for r in candidates if isinstance(r, AttributeRule)),
                        behaviours=tuple(r for r in candidates if isinstance(r, BehaviourRule)))
    # Candidates are worth one point each, so their points are the 0/1 design matrix.
    design = points_from_inputs(probe, table).filter(like="rule:")
    model = LogisticRegression(C=C, max_iter=2000).fit(design.to_numpy(), np.asarray(y, dtype=int))
    factor = pdo / math.log(2)
    points = dict(zip(design.columns.str.removeprefix("rule:"), np.rint(model.coef_[0] * factor).astype(int)))
    kept = [_with_points(rule, int(points[rule.name])) for rule in (*probe.attributes, *probe.behaviours)
            if points[rule.name] != 0]
    unscaled = PointsRules(mql=0, sql=1, attributes=tuple(r for r in kept if isinstance(r, AttributeRule)),
                           behaviours=tuple(r for r in kept if isinstance(r, BehaviourRule)))
    calibration_points = points_from_inputs(unscaled, thresholds_from)["points"].to_numpy()
    sql = float(np.ceil(np.quantile(calibration_points, 1 - sql_share)))
    mql = float(np.ceil(np.quantile(calibration_points, 1 - sql_share - mql_share)))
    mql = min(mql, sql - 1)
    return PointsRules(mql=mql, sql=sql, attributes=unscaled.attributes, behaviours=unscaled.behaviours,
                       description=f"Learned points table: binned logistic scorecard, {pdo:g} points double the odds")


def _candidate_rules(table, spec, *, n_bins, min_leads) -> list:
    rules = []
    for column in spec.categorical_feature_names:
        counts = table[column].dropna().astype(str).value_counts()
        for level in sorted(counts.index[counts >= min_leads]):
            rules.append(AttributeRule(name=f"{column} = {level}", column=column, points=1, equals=level))
    for column in [*spec.numeric_columns, "lead_age_days"]:
        values = pd.to_numeric(table[column], errors="coerce").dropna().to_numpy()
        for low, high in _bands(values, n_bins):
            rules.append(AttributeRule(name=f"{column} in [{low:g}, {high:g})", column=column, points=1,
                                       range=(low, high)))
    for event in (*spec.event_types, OTHER_EVENT_TYPE):
        for kind, key in (("all time", None), ("30 days", ("window_days", 30)), ("recent", ("half_life_days", 7.0))):
            probe = BehaviourRule(name="", event=event, points=0, **(dict([key]) if key else {}))
            if probe.feature not in table.columns:
                continue
            values = table[probe.feature].to_numpy(dtype=float)
            floor = 1.0 if key is None or key[0] == "window_days" else 0.05
            active = values[values >= floor]
            if active.size < min_leads:
                continue
            for low, high in _bands(active, n_bins - 1, low=floor):
                name = f"{event} {kind} in [{low:g}, {high:g})"
                rules.append(BehaviourRule(name=name, event=event, points=1, range=(low, high),
                                           **(dict([key]) if key else {})))
    return rules


def _bands(values: np.ndarray, n_bins: int, *, low: float = -math.inf) -> list[tuple]:
    """Quantile bands with edges rounded to two significant figures; the last is open-ended."""
    if values.size == 0:
        return []
    edges = np.unique([_round2(q) for q in np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1])])
    edges = [edge for edge in edges if edge > low]
    bounds = [low, *edges, math.inf]
    return [(float(a), float(b)) for a, b in zip(bounds[:-1], bounds[1:]) if a < b]


def _round2(value: float) -> float:
    if value == 0 or not np.isfinite(value):
        return float(value)
    digits = 1 - int(math.floor(math.log10(abs(value))))
    return float(round(value, digits))


def _with_points(rule, points: int):
    from dataclasses import replace

    return replace(rule, points=points)
