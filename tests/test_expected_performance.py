"""Performance expected from calibrated probabilities: worked by hand, by brute force and by simulation."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models.expected_performance import ExpectedPerformance, expected_performance


def test_expected_conversions_and_interval_by_hand():
    result = expected_performance([0.1, 0.5, 0.9], ["nurture", "MQL", "SQL"])
    assert result["expected_conversions"] == pytest.approx(1.5)
    spread = math.sqrt(0.1 * 0.9 + 0.5 * 0.5 + 0.9 * 0.1)  # sum p (1 - p) = 0.43
    assert result["expected_conversions_low"] == pytest.approx(1.5 - 1.959964 * spread, abs=1e-5)
    assert result["expected_conversions_high"] == pytest.approx(1.5 + 1.959964 * spread, abs=1e-5)
    assert result["sql_leads"] == 1 and result["expected_sql_precision"] == pytest.approx(0.9)
    # Two leads, 0.2 and 0.8: the pair is ranked right when the 0.8 lead converts and the 0.2 one does not
    # (0.8 * 0.8), wrong in the reverse case (0.2 * 0.2): 0.64 / (0.64 + 0.04).
    assert expected_performance([0.2, 0.8])["expected_roc_auc"] == pytest.approx(0.64 / 0.68)
    assert math.isnan(expected_performance([0.2, 0.8])["expected_sql_precision"])


def _brute_force_auc(p):
    right = pairs = 0.0
    for i in range(len(p)):
        for j in range(len(p)):
            if i != j:
                weight = p[i] * (1 - p[j])
                pairs += weight
                right += weight * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    return right / pairs


def test_expected_auc_matches_brute_force_and_simulation():
    rng = np.random.default_rng(3)
    p = np.round(rng.beta(1, 6, size=150), 4)  # on the grid, so ties are exact ties
    estimate = expected_performance(p)["expected_roc_auc"]
    assert estimate == pytest.approx(_brute_force_auc(p), abs=1e-9)
    # Outcomes drawn from the calibrated probabilities: the realised AUC averages near the estimate.
    draws = rng.random((3000, len(p))) < p
    realised = [roc_auc_score(y, p) for y in draws if 0 < y.sum() < len(y)]
    assert np.mean(realised) == pytest.approx(estimate, abs=0.01)


def test_chunks_add_up_to_the_whole():
    rng = np.random.default_rng(0)
    p = rng.random(1_000)
    tiers = np.where(p > 0.8, "SQL", np.where(p > 0.5, "MQL", "nurture"))
    chunked = ExpectedPerformance()
    for start in range(0, 1_000, 300):
        chunked.add(p[start:start + 300], tiers[start:start + 300])
    assert chunked.estimate() == pytest.approx(expected_performance(p, tiers))
    with pytest.raises(ValueError, match="no scored probabilities"):
        ExpectedPerformance().estimate()
