"""Performance expected from calibrated probabilities alone, before any outcome is known (confidence-based estimation).

When the probabilities are calibrated, each lead converts with its probability ``p``: the number
of conversions among n scored leads is a sum of independent Bernoulli draws (mean ``sum p``,
variance ``sum p (1 - p)``), the SQL tier's precision is the mean ``p`` of its leads, and the ROC
AUC one would measure is, in expectation, the share of (converting, not converting) pairs ranked
right, each pair weighted by ``p_i (1 - p_j)``. This is NannyML's CBPE idea written in numpy:
NannyML itself estimates from a labelled reference frame of lead rows and brings its own pinned
stack, while this needs only the scored probabilities, chunk by chunk.

Probabilities are counted on a grid of ``GRID`` bins, so a run of any size is summarised in three
arrays; leads within one bin (1e-4 apart) count as tied for the AUC, which moves it by less than
the grid step.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd

GRID = 10_000


class ExpectedPerformance:
    """Adds scored chunks (probabilities and tiers); :meth:`estimate` gives the expected figures."""

    def __init__(self, *, level: float = 0.95, grid: int = GRID):
        self.level = level
        self.grid = grid

    def add(self, probability, tiers=None) -> ExpectedPerformance:
        p = np.clip(np.asarray(probability, dtype=float), 0.0, 1.0)
        if not hasattr(self, "sum_p_"):
            self.sum_p_ = np.zeros(self.grid + 1)
            self.sum_q_ = np.zeros(self.grid + 1)
            self.sum_pq_ = np.zeros(self.grid + 1)
            self.rows_ = 0
            self.sql_rows_, self.sql_sum_p_ = 0, 0.0
        bins = np.rint(p * self.grid).astype(np.int64)
        self.sum_p_ += np.bincount(bins, weights=p, minlength=self.grid + 1)
        self.sum_q_ += np.bincount(bins, weights=1 - p, minlength=self.grid + 1)
        self.sum_pq_ += np.bincount(bins, weights=p * (1 - p), minlength=self.grid + 1)
        self.rows_ += len(p)
        if tiers is not None:
            sql = np.asarray(tiers, dtype=object) == "SQL"
            self.sql_rows_ += int(sql.sum())
            self.sql_sum_p_ += float(p[sql].sum())
        return self

    def estimate(self) -> dict:
        """``leads``, ``expected_conversions`` with ``_low`` / ``_high`` (the ``level`` interval),
        ``expected_roc_auc``, ``sql_leads`` and ``expected_sql_precision`` (NaN without SQL leads)."""
        if not getattr(self, "rows_", 0):
            raise ValueError("Nothing to estimate: no scored probabilities were added.")
        expected = float(self.sum_p_.sum())
        spread = float(np.sqrt(self.sum_pq_.sum()))
        z = NormalDist().inv_cdf(0.5 + self.level / 2)
        return {"leads": int(self.rows_), "expected_conversions": expected,
                "expected_conversions_low": max(0.0, expected - z * spread),
                "expected_conversions_high": min(float(self.rows_), expected + z * spread),
                "expected_roc_auc": _expected_auc(self.sum_p_, self.sum_q_, self.sum_pq_),
                "sql_leads": int(self.sql_rows_),
                "expected_sql_precision": self.sql_sum_p_ / self.sql_rows_ if self.sql_rows_ else float("nan")}


def expected_performance(probability, tiers=None, *, level: float = 0.95) -> dict:
    """The expected figures of one scored base at once (see :class:`ExpectedPerformance`)."""
    return ExpectedPerformance(level=level).add(probability, tiers).estimate()


def expected_by_run(history: pd.DataFrame, keys, *, level: float = 0.95) -> pd.DataFrame:
    """Expected figures of every stored run of a score history (grouped by ``keys``), from its probabilities."""
    rows = []
    for run, group in history.groupby(list(keys), sort=True, dropna=False):
        rows.append({**dict(zip(keys, run if isinstance(run, tuple) else (run,))),
                     **expected_performance(group["probability"].to_numpy(dtype=float),
                                            group["tier"] if "tier" in group.columns else None, level=level)})
    return pd.DataFrame(rows)


def _expected_auc(sum_p: np.ndarray, sum_q: np.ndarray, sum_pq: np.ndarray) -> float:
    """Expected share of (positive, negative) pairs ranked right, ties half; a lead is never paired with itself."""
    q_below = np.concatenate([[0.0], np.cumsum(sum_q)[:-1]])
    right = np.sum(sum_p * q_below) + 0.5 * np.sum(sum_p * sum_q - sum_pq)
    pairs = sum_p.sum() * sum_q.sum() - sum_pq.sum()
    return float(right / pairs) if pairs > 0 else float("nan")
