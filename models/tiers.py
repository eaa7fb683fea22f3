"""Tiers: SQL / MQL / nurture thresholds on calibrated probabilities, and the policies that choose them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

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


def policy_from_dict(values: dict):
    """``{"kind": "capacity", "sql_share": 0.05, ...}`` -> a policy object."""
    values = dict(values)
    kind = values.pop("kind", "capacity")
    policies = {"capacity": CapacityPolicy, "precision": PrecisionPolicy}
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
