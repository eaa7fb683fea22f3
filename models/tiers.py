"""Tiers: SQL / MQL / nurture thresholds on calibrated probabilities, and the policies that choose them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

TIERS = ("SQL", "MQL", "nurture")


@dataclass(frozen=True)
class TierThresholds:
    """Probability cut-offs: ``probability >= sql`` is SQL, ``>= mql`` is MQL, else nurture."""

    mql: float
    sql: float

    def __post_init__(self):
        if not (0.0 < self.mql < self.sql < 1.0):
            raise ValueError(
                "Tier thresholds must satisfy 0 < mql < sql < 1. "
                f"Got mql={self.mql!r} and sql={self.sql!r} instead."
            )

    def assign(self, probabilities) -> np.ndarray:
        """The tier of each probability, as strings."""
        probabilities = np.asarray(probabilities, dtype=float)
        return np.where(probabilities >= self.sql, "SQL",
                        np.where(probabilities >= self.mql, "MQL", "nurture")).astype(object)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CapacityPolicy:
    """Sales can call the top ``sql_share`` of leads; marketing nurtures the next ``mql_share``."""

    sql_share: float = 0.05
    mql_share: float = 0.20

    def choose(self, probabilities) -> TierThresholds:
        if not (0 < self.sql_share < 1 and 0 < self.mql_share < 1 and self.sql_share + self.mql_share < 1):
            raise ValueError(
                "CapacityPolicy shares must be in (0, 1) and add up to less than 1. "
                f"Got sql_share={self.sql_share!r} and mql_share={self.mql_share!r} instead."
            )
        probabilities = _checked(probabilities)
        sql = float(np.quantile(probabilities, 1 - self.sql_share))
        mql = float(np.quantile(probabilities, 1 - self.sql_share - self.mql_share))
        return _strictly_ordered(mql, sql, probabilities)


@dataclass(frozen=True)
class PrecisionPolicy:
    """SQLs must convert at ``sql_precision`` or more (expected, from calibrated probabilities);
    MQLs and better at ``mql_precision`` or more."""

    sql_precision: float = 0.30
    mql_precision: float = 0.10

    def choose(self, probabilities) -> TierThresholds:
        if not (0 < self.mql_precision < self.sql_precision < 1):
            raise ValueError(
                "PrecisionPolicy needs 0 < mql_precision < sql_precision < 1. "
                f"Got mql_precision={self.mql_precision!r} and sql_precision={self.sql_precision!r} instead."
            )
        probabilities = _checked(probabilities)
        return _strictly_ordered(
            _lowest_threshold_with_precision(probabilities, self.mql_precision),
            _lowest_threshold_with_precision(probabilities, self.sql_precision),
            probabilities,
        )


@dataclass(frozen=True)
class ThresholdPolicy:
    """Fixed probability cut-offs: SQL from ``sql_probability``, MQL from ``mql_probability``."""

    sql_probability: float = 0.50
    mql_probability: float = 0.20

    def choose(self, probabilities) -> TierThresholds:
        _checked(probabilities)
        return TierThresholds(mql=self.mql_probability, sql=self.sql_probability)


@dataclass(frozen=True)
class LiftPolicy:
    """SQL from ``sql_lift`` times the base rate, MQL from ``mql_lift`` times it.

    The base rate is the mean calibrated probability on the calibration split, which a calibrated
    model keeps equal to the observed conversion rate there.
    """

    sql_lift: float = 3.0
    mql_lift: float = 1.5

    def choose(self, probabilities) -> TierThresholds:
        if not 0 < self.mql_lift < self.sql_lift:
            raise ValueError("LiftPolicy needs 0 < mql_lift < sql_lift. "
                             f"Got mql_lift={self.mql_lift!r} and sql_lift={self.sql_lift!r} instead.")
        base_rate = float(_checked(probabilities).mean())
        sql, mql = self.sql_lift * base_rate, self.mql_lift * base_rate
        if sql >= 1.0:
            raise ValueError(f"LiftPolicy: SQL at {self.sql_lift} x the base rate {base_rate:.3f} needs a probability "
                             f"of {sql:.3f}, which no lead can reach. Lower sql_lift below {1 / base_rate:.2f}.")
        return TierThresholds(mql=mql, sql=sql)


@dataclass(frozen=True)
class ExpectedValuePolicy:
    """Contact a lead when its expected value pays for the contact.

    A lead is SQL when ``probability x won_value >= sql_cost`` (the cost of a sales contact), MQL
    when it pays for ``mql_cost`` (a marketing touch): the cut-offs are ``cost / won_value``.
    ``won_value`` is the value of a won deal (from the config, or the median amount of won deals).
    """

    won_value: float = 10_000.0
    sql_cost: float = 500.0
    mql_cost: float = 50.0

    def choose(self, probabilities) -> TierThresholds:
        if not 0 < self.mql_cost < self.sql_cost < self.won_value:
            raise ValueError("ExpectedValuePolicy needs 0 < mql_cost < sql_cost < won_value. Got "
                             f"mql_cost={self.mql_cost!r}, sql_cost={self.sql_cost!r} and won_value={self.won_value!r} "
                             "instead.")
        _checked(probabilities)
        return TierThresholds(mql=self.mql_cost / self.won_value, sql=self.sql_cost / self.won_value)


POLICIES = {"capacity": CapacityPolicy, "precision": PrecisionPolicy, "threshold": ThresholdPolicy,
            "lift": LiftPolicy, "expected_value": ExpectedValuePolicy}


def policy_kind(policy) -> str:
    """The ``kind`` name of a policy object, as :func:`policy_from_dict` takes it."""
    return next(kind for kind, cls in POLICIES.items() if isinstance(policy, cls))


def tier_cutoffs(thresholds: TierThresholds, probabilities) -> pd.DataFrame:
    """Each tier's probability range, leads, share of leads and expected conversion on ``probabilities``.

    The way every policy's choice is reported: as probabilities and as volumes on the calibration split.
    """
    probabilities = _checked(probabilities)
    tiers = thresholds.assign(probabilities)
    rows = []
    for tier, low, high in (("SQL", thresholds.sql, 1.0), ("MQL", thresholds.mql, thresholds.sql),
                            ("nurture", 0.0, thresholds.mql)):
        members = probabilities[tiers == tier]
        rows.append({"tier": tier, "from_probability": round(low, 4), "below_probability": round(high, 4),
                     "leads": int(members.size), "share": members.size / probabilities.size,
                     "expected_conversion": float(members.mean()) if members.size else float("nan")})
    return pd.DataFrame(rows)


def policy_from_dict(values: dict):
    """``{"kind": "capacity", "sql_share": 0.05, ...}`` -> a policy object."""
    values = dict(values)
    kind = values.pop("kind", "capacity")
    policies = POLICIES
    if kind not in policies:
        raise ValueError(f"Tier policy kind must be one of {sorted(policies)}. Got {kind!r} instead.")
    return policies[kind](**values)


def _checked(probabilities) -> np.ndarray:
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.size == 0 or not np.all((probabilities >= 0) & (probabilities <= 1)):
        raise ValueError("Tier policies need a non-empty array of probabilities in [0, 1].")
    return probabilities


def _lowest_threshold_with_precision(probabilities: np.ndarray, precision: float) -> float:
    """The lowest cut-off whose leads at or above it have a mean probability >= ``precision``."""
    ordered = np.sort(probabilities)[::-1]
    running_mean = np.cumsum(ordered) / np.arange(1, ordered.size + 1)
    # A cut-off takes every lead tied at it: only the last of each tied run is a real cut point.
    last_of_tie = np.r_[ordered[1:] < ordered[:-1], True]
    reaching = np.flatnonzero((running_mean >= precision) & last_of_tie)
    if reaching.size == 0:
        raise ValueError(
            f"No threshold reaches an expected conversion of {precision:.3f}: the best lead has "
            f"probability {ordered[0]:.3f}. Lower the precision target or use a capacity policy."
        )
    return float(ordered[reaching[-1]])


def _strictly_ordered(mql: float, sql: float, probabilities: np.ndarray) -> TierThresholds:
    """Calibrated scores have plateaus; when both cut-offs land on one, MQL steps one value down."""
    if mql >= sql:
        below = probabilities[probabilities < sql]
        if below.size == 0:
            raise ValueError(f"Cannot place an MQL threshold below the SQL threshold {sql:.4f}: "
                             "every calibration probability is at or above it.")
        mql = float(below.max())
    sql = min(sql, float(np.nextafter(1.0, 0.0)))
    mql = max(mql, float(np.nextafter(0.0, 1.0)))
    return TierThresholds(mql=mql, sql=sql)
