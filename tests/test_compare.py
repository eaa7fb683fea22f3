"""Comparison pieces: equal-volume tiers, cross-tab, lift, forecast interval, scorecard round trip."""

import numpy as np
import pandas as pd
import pytest

from analysis.compare import equal_volume_tiers, lift_table, tier_comparison, tier_crosstab
from analysis.forecast import (
    conversion_interval,
    forecast_table,
    level_check,
    poisson_binomial_pmf,
    shift_probabilities,
)


def test_equal_volume_tiers_copy_the_reference_counts():
    probability = np.array([0.9, 0.1, 0.5, 0.7, 0.2, 0.05])
    rules = np.array(["nurture", "SQL", "MQL", "nurture", "MQL", "nurture"], dtype=object)
    tiers = equal_volume_tiers(probability, rules)
    assert list(tiers) == ["SQL", "nurture", "MQL", "MQL", "nurture", "nurture"]
    assert {t: (tiers == t).sum() for t in ("SQL", "MQL")} == {t: (rules == t).sum() for t in ("SQL", "MQL")}


def test_crosstab_counts_every_cell_with_its_conversion():
    y = [1, 0, 1, 0, 0]
    table = tier_crosstab(y, ["SQL", "SQL", "MQL", "nurture", "nurture"], ["SQL", "MQL", "SQL", "nurture", "nurture"])
    assert len(table) == 9 and table["leads"].sum() == 5
    cell = table.set_index(["rule_tier", "model_tier"])
    assert cell.loc[("SQL", "SQL"), "conversion_rate"] == 1.0
    assert cell.loc[("nurture", "nurture"), ["leads", "conversions"]].tolist() == [2, 0]
    assert np.isnan(cell.loc[("MQL", "MQL"), "conversion_rate"])


def test_tier_comparison_and_lift():
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 1])
    tiers = tier_comparison(y, {"rules": ["SQL"] * 2 + ["nurture"] * 8})
    assert tiers.set_index("tier").loc["SQL", "conversion_rate"] == 1.0
    assert tiers["leads"].sum() == 10 and tiers["share_of_conversions"].sum() == pytest.approx(1)
    lift = lift_table(y, {"perfect": y.astype(float)}, shares=(0.2,))
    assert lift.loc[0, "capture"] == pytest.approx(2 / 3) and lift.loc[0, "lift"] == pytest.approx(1 / 0.3)


def test_poisson_binomial_is_exact():
    np.testing.assert_allclose(poisson_binomial_pmf([0.5, 0.5]), [0.25, 0.5, 0.25])
    np.testing.assert_allclose(poisson_binomial_pmf([0.2, 0.5, 1.0]), [0, 0.4, 0.5, 0.1], atol=1e-12)
    expected, low, high = conversion_interval(np.full(1000, 0.1), level=0.9)
    assert expected == pytest.approx(100)
    # Binomial(1000, 0.1): 5 % and 95 % quantiles are 85 and 116.
    assert (low, high) == (85, 116)


def test_forecast_interval_covers_simulated_outcomes():
    rng = np.random.default_rng(0)
    probability = rng.beta(0.5, 6, size=800)
    inside = []
    for _ in range(300):
        actual = rng.random(probability.size) < probability
        table = forecast_table(probability, actual=actual, level=0.9)
        inside.append(table.loc[0, "inside"])
    assert 0.85 <= np.mean(inside) <= 0.96


def test_forecast_per_group_with_revenue():
    table = forecast_table([0.5, 0.5, 0.1], groups=["SQL", "SQL", "nurture"], amounts=[100.0, 100.0, 100.0],
                           actual=[1, 0, 0], actual_revenue=[100.0, 0, 0], shift=0.0, level_sd=0.1)
    rows = table.set_index("group")
    assert list(rows.index) == ["all", "SQL", "nurture"]
    assert rows.loc["all", "expected_conversions"] == pytest.approx(1.1)
    assert rows.loc["SQL", "expected_revenue"] == pytest.approx(100.0)
    assert rows.loc["all", "actual_conversions"] == 1 and rows.loc["all", "inside"]
    assert rows.loc["all", "expected_adjusted"] == pytest.approx(1.1)  # no shift, same expectation
    assert rows.loc["all", "low_adjusted"] <= rows.loc["all", "low"]
    with pytest.raises(ValueError, match="'level' parameter of conversion_interval"):
        conversion_interval([0.1], level=1.5)


def test_level_check_finds_the_shift_that_matches_history():
    rng = np.random.default_rng(2)
    true = rng.beta(0.5, 6, size=20000)
    y = rng.random(true.size) < true
    biased = shift_probabilities(true, -0.4)  # a calibration map that came out too low
    shift, relative_sd = level_check(y, biased)
    assert shift == pytest.approx(0.4, abs=0.06) and 0 < relative_sd < 0.05
    assert shift_probabilities(biased, shift).sum() == pytest.approx(y.sum())


def test_scorecard_round_trips_through_the_rules_reader(tmp_path):
    from features.spec import FeatureSpec
    from models.rules import load_rules, points_from_inputs
    from models.scorecard import fit_scorecard

    rng = np.random.default_rng(1)
    n = 3000
    spec = FeatureSpec(event_types=("demo_request", "page_view"), categorical_columns=("industry",),
                       numeric_columns=("company_size",), job_title_column=None, email_column=None)
    table = pd.DataFrame({"industry": rng.choice(["software", "retail", "education"], n),
                          "company_size": rng.lognormal(4, 1.5, n), "lead_age_days": rng.uniform(1, 300, n)})
    for name in spec.engagement_feature_names:
        table[name] = 0.0
    demos = rng.poisson(0.3, n).astype(float)
    table["events_demo_request_total"] = demos
    table["events_demo_request_30d"] = demos
    table["decayed_demo_request_hl7d"] = demos * 0.5
    logit = -3 + 1.5 * demos + np.where(table["industry"].eq("software"), 1.0, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    rules = fit_scorecard(table, y, spec=spec, thresholds_from=table, min_leads=50)
    again = load_rules(rules.save(tmp_path / "learned.toml"), spec=spec)
    assert again == rules
    points = points_from_inputs(again, table)
    assert (points["tier"] == "SQL").mean() == pytest.approx(0.05, abs=0.03)
    assert any(rule.points > 0 for rule in again.behaviours if rule.event == "demo_request")
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(y, points["points"]) > 0.7


@pytest.mark.parametrize("make", ["logistic", "lightgbm"])
def test_model_reasons_name_the_largest_contributions(make):
    from analysis.compare import model_reasons
    from crm.synthetic import generate_crm
    from features.build import build_features
    from features.snapshots import build_snapshots
    from features.spec import FeatureSpec
    from models.bundle import ModelBundle
    from models.estimators import make_lightgbm, make_logistic_regression
    from models.tiers import TierThresholds

    crm = generate_crm(1500, months=8, seed=4)
    snapshots = build_snapshots(crm.leads, crm.deals, as_of_dates=[pd.Timestamp("2025-05-01")], horizon_days=90)
    spec = FeatureSpec()
    features = build_features(snapshots, crm.leads, crm.events, spec)
    estimator = make_logistic_regression(spec) if make == "logistic" else make_lightgbm(spec, n_estimators=40)
    from training.calibrate import calibrate
    model, _ = calibrate(estimator.fit(features, snapshots["label"]), features, snapshots["label"], n_folds=2)
    bundle = ModelBundle(spec=spec, model=model, thresholds=TierThresholds(mql=0.1, sql=0.3))
    reasons = model_reasons(bundle, features.head(5))
    assert len(reasons) == 5
    for text in reasons:
        parts = text.split("; ")
        assert 1 <= len(parts) <= 3 and all(part.endswith(")") for part in parts)
        impacts = [abs(float(part.rsplit("(", 1)[1].rstrip(")"))) for part in parts]
        assert impacts == sorted(impacts, reverse=True)
