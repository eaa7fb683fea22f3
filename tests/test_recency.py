"""Recent snapshots weighing more, offered to the selection windows: the weights by hand, and the windows keep the
recency-weighted fit where the data moved and the plain fit where it did not."""

import numpy as np
import pandas as pd
import pytest

from features.spec import FeatureSpec
from training.config import TrainingConfig
from training.weights import recency_weights, training_weights

SPEC = FeatureSpec(categorical_columns=("Source",), numeric_columns=("Visits",), job_title_column=None,
                   email_column=None, event_log=False, lead_age=False)


def test_recency_weights_halve_every_half_life_and_average_one():
    times = pd.to_datetime(["2025-01-01", "2025-06-30", "2025-12-27"])  # 360, 180 and 0 days before the newest
    # Raw 0.25, 0.5, 1 (sum 1.75) rescaled by 3 / 1.75.
    np.testing.assert_allclose(recency_weights(times, 180), np.array([0.25, 0.5, 1.0]) * 3 / 1.75)
    # Times a lead's weight: lead 1 has two rows (1/2 each), lead 2 one; then the product, rescaled to mean one.
    both = training_weights([1, 1, 2], times, per_lead=True, half_life_days=180)
    raw = np.array([0.5, 0.5, 1.0]) * 1.5 * np.array([0.25, 0.5, 1.0]) * 3 / 1.75
    np.testing.assert_allclose(both, raw)
    assert training_weights([1, 1, 2], times, per_lead=False) is None
    with pytest.raises(ValueError, match="'recency_half_lives' parameter of TrainingConfig must be a list"):
        TrainingConfig(recency_half_lives="180d")
    assert TrainingConfig(recency_half_lives=["180d", 30]).recency_half_lives == (180.0, 30.0)


def moving_leads(*, moved: bool, n=4000, seed=0):
    """Leads over 600 days; where ``moved``, the source that converts swaps at day 150 (web, then ads)."""
    rng = np.random.default_rng(seed)
    day = np.sort(rng.uniform(0, 600, n))
    source = rng.choice(["web", "ads"], size=n)
    visits = rng.gamma(2.0, 5.0, n)
    good = np.where(moved & (day >= 150), source == "ads", source == "web")
    logit = -2.2 + 1.8 * good + 0.08 * (visits - 10)
    converted = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    leads = pd.DataFrame({"lead_id": [f"L{i}" for i in range(n)],
                          "created_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(day, unit="D"),
                          "Source": source, "Visits": visits})
    return leads, pd.Series(converted)


@pytest.mark.parametrize("moved, expected", [(True, "lightgbm_recent_60d"), (False, "logistic")])
def test_the_windows_keep_the_recent_fit_only_where_the_data_moved(moved, expected):
    from training.pipeline import train_on_table

    leads, labels = moving_leads(moved=moved)
    lines = []
    result = train_on_table(leads, labels, spec=SPEC, config=TrainingConfig(threads=1, recency_half_lives=["60d"]),
                            log=lines.append)
    table = result.tables["selection_windows"]
    assert set(table["candidate"]) == {"logistic", "lightgbm", "lightgbm_recent_60d"}
    assert result.params["model"] == expected
    assert result.params["recency_half_life_days"] == (60.0 if moved else None)
    assert any("(recent snapshots weighing more: half-life 60 days)" in line for line in lines)


def test_the_refit_fits_with_the_chosen_half_life():
    """The registered refit weighs its fitting rows as the chosen candidate was weighed: lead times recency."""
    from sklearn.linear_model import LogisticRegression

    from models.tiers import CapacityPolicy
    from training.refit import refit_on_known

    rng = np.random.default_rng(4)
    as_of = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.repeat(np.arange(0, 600, 15), 60), unit="D")
    groups = rng.integers(0, 400, as_of.size)
    features = pd.DataFrame({"x": rng.normal(size=as_of.size)})
    labels = (rng.random(as_of.size) < 1 / (1 + np.exp(-(features["x"] * np.where(as_of.year > 2024, 2.0, -1.0))
                                                        + 1.5))).astype(int)
    refit = refit_on_known(features, labels, as_of, groups=groups, candidate=LogisticRegression(), per_lead=True,
                           horizon_days=90, calibration_days=60, tier_policy=CapacityPolicy(), half_life_days=90)
    fit = as_of + pd.Timedelta(days=90) <= pd.Timestamp(refit["params"]["refit_calibration_first"])
    by_hand = LogisticRegression().fit(features[fit], labels[fit], sample_weight=training_weights(
        groups[fit], as_of[fit], per_lead=True, half_life_days=90))
    fitted = refit["model"].calibrated_classifiers_[0].estimator.estimator
    np.testing.assert_allclose(fitted.coef_, by_hand.coef_)
    plain = LogisticRegression().fit(features[fit], labels[fit], sample_weight=training_weights(
        groups[fit], as_of[fit], per_lead=True))
    assert not np.allclose(fitted.coef_, plain.coef_, atol=1e-3)
