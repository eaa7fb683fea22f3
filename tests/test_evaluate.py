import numpy as np
import pytest

from training.evaluate import (
    decile_table,
    evaluate_probabilities,
    expected_calibration_error,
    tier_table,
    top_share_lift,
)


def test_ece_by_hand():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.3, 0.6, 0.8])
    # Two equal-frequency bins: {0.1, 0.3} observed 0 vs mean 0.2; {0.6, 0.8} observed 1 vs 0.7.
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx((2 * 0.2 + 2 * 0.3) / 4)


def test_top_share_lift_by_hand():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    p = np.linspace(1, 0, 10)
    # The top 10 % is one lead, converted; base rate 0.2 -> lift 5.
    assert top_share_lift(y, p, share=0.1) == pytest.approx(5.0)


def test_metrics_are_named_for_mlflow():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=1000)
    y = (rng.uniform(size=1000) < p).astype(int)
    metrics = evaluate_probabilities(y, p)
    assert {"test_roc_auc", "test_pr_auc", "test_log_loss", "test_brier", "test_ece", "test_top_decile_lift",
            "test_base_rate"} <= set(metrics)
    # Probabilities drawn as the true ones are calibrated: ECE is small.
    assert metrics["test_ece"] < 0.05


def test_tier_and_decile_tables_count_every_lead():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    p = np.linspace(0.9, 0.0, 10)
    tiers = np.array(["SQL", "MQL", "MQL"] + ["nurture"] * 7, dtype=object)
    table = tier_table(y, p, tiers).set_index("tier")
    assert table.loc["SQL", "leads"] == 1 and table.loc["SQL", "conversion_rate"] == 1.0
    assert table.loc["MQL", "conversions"] == 1 and table.loc["nurture", "conversions"] == 0
    assert table.loc["SQL", "lift"] == pytest.approx(1.0 / 0.2)
    deciles = decile_table(y, p)
    assert deciles["leads"].tolist() == [1] * 10
    assert deciles.set_index("decile").loc[1, "conversions"] == 1
