import numpy as np
import pytest

from models.tiers import CapacityPolicy, PrecisionPolicy, TierThresholds, policy_from_dict


def test_thresholds_assign_tiers_at_their_boundaries():
    tiers = TierThresholds(mql=0.1, sql=0.4).assign([0.0, 0.0999, 0.1, 0.39, 0.4, 0.95])
    assert tiers.tolist() == ["nurture", "nurture", "MQL", "MQL", "SQL", "SQL"]


@pytest.mark.parametrize("mql, sql", [(0.5, 0.4), (0.3, 0.3), (0.0, 0.5), (0.2, 1.0)])
def test_thresholds_must_be_ordered(mql, sql):
    with pytest.raises(ValueError, match="0 < mql < sql < 1"):
        TierThresholds(mql=mql, sql=sql)


def test_capacity_policy_takes_the_top_shares():
    probabilities = np.arange(1, 101) / 101  # 100 distinct values
    thresholds = CapacityPolicy(sql_share=0.05, mql_share=0.20).choose(probabilities)
    tiers = thresholds.assign(probabilities)
    assert (tiers == "SQL").sum() == 5
    assert (tiers == "MQL").sum() == 20


def test_capacity_policy_on_a_plateau_keeps_mql_below_sql():
    probabilities = np.r_[np.full(90, 0.2), np.linspace(0.5, 0.9, 10)]
    thresholds = CapacityPolicy(sql_share=0.05, mql_share=0.05).choose(probabilities)
    assert 0 < thresholds.mql < thresholds.sql < 1


def test_precision_policy_by_hand():
    probabilities = np.array([0.9, 0.5, 0.3, 0.1, 0.05])
    # Running means from the top: 0.9, 0.7, 0.567, 0.45, 0.37.
    thresholds = PrecisionPolicy(sql_precision=0.6, mql_precision=0.4).choose(probabilities)
    assert thresholds.sql == 0.5 and thresholds.mql == 0.1


def test_precision_out_of_reach_is_refused():
    with pytest.raises(ValueError, match="No threshold reaches an expected conversion of 0.950"):
        PrecisionPolicy(sql_precision=0.95, mql_precision=0.1).choose([0.2, 0.5])


def test_policy_from_dict():
    assert policy_from_dict({"kind": "precision", "sql_precision": 0.4}) == PrecisionPolicy(sql_precision=0.4)
    with pytest.raises(ValueError, match="kind must be one of"):
        policy_from_dict({"kind": "magic"})


def test_precision_policy_counts_every_lead_tied_at_the_cut_off():
    probabilities = np.array([0.9, 0.5, 0.5, 0.5, 0.5, 0.1, 0.05, 0.05])
    thresholds = PrecisionPolicy(sql_precision=0.6, mql_precision=0.2).choose(probabilities)
    # Cutting at 0.5 takes all four tied leads: mean (0.9 + 4 * 0.5) / 5 = 0.58 < 0.6. Only 0.9 reaches it.
    assert thresholds.sql == 0.9
    sql = probabilities[thresholds.assign(probabilities) == "SQL"]
    assert sql.mean() >= 0.6


def test_threshold_policy_takes_the_probabilities_as_given():
    from models.tiers import ThresholdPolicy

    thresholds = ThresholdPolicy(sql_probability=0.6, mql_probability=0.25).choose([0.1, 0.3, 0.7])
    assert (thresholds.mql, thresholds.sql) == (0.25, 0.6)
    with pytest.raises(ValueError, match="0 < mql < sql < 1"):
        ThresholdPolicy(sql_probability=0.2, mql_probability=0.3).choose([0.5])


def test_lift_policy_multiplies_the_base_rate():
    from models.tiers import LiftPolicy

    # Mean probability 0.1 by hand: (0.02 * 5 + 0.3 * 3 + 0.0 * 2) / 10 = 0.1
    probabilities = [0.02] * 5 + [0.3] * 3 + [0.0] * 2
    thresholds = LiftPolicy(sql_lift=3.0, mql_lift=1.5).choose(probabilities)
    assert thresholds.sql == pytest.approx(0.30) and thresholds.mql == pytest.approx(0.15)
    # The case: base rate 0.38, so SQL at 3x would need 1.14.
    with pytest.raises(ValueError, match="needs a probability of 1.140.*Lower sql_lift below 2.63"):
        LiftPolicy(sql_lift=3.0).choose([0.38] * 10)


def test_expected_value_policy_contacts_when_the_lead_pays_for_it():
    from models.tiers import ExpectedValuePolicy

    # A won deal is worth 8,000; a sales contact costs 400 -> SQL from 400 / 8000 = 0.05; a nurture touch 40 -> 0.005.
    thresholds = ExpectedValuePolicy(won_value=8_000, sql_cost=400, mql_cost=40).choose([0.01, 0.2])
    assert thresholds.sql == pytest.approx(0.05) and thresholds.mql == pytest.approx(0.005)
    with pytest.raises(ValueError, match="0 < mql_cost < sql_cost < won_value"):
        ExpectedValuePolicy(won_value=300, sql_cost=400, mql_cost=40).choose([0.1])


def test_cutoffs_are_reported_as_probabilities_and_volumes():
    from models.tiers import TierThresholds, policy_from_dict, policy_kind, tier_cutoffs

    probabilities = np.array([0.9, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1, 0.1, 0.05, 0.05])
    table = tier_cutoffs(TierThresholds(mql=0.3, sql=0.6), probabilities).set_index("tier")
    assert table["leads"].tolist() == [2, 3, 5]
    assert table["share"].tolist() == [0.2, 0.3, 0.5]
    assert table.loc["SQL", "expected_conversion"] == pytest.approx(0.8)
    assert table.loc["MQL", "expected_conversion"] == pytest.approx(0.4)
    assert table.loc["nurture", "expected_conversion"] == pytest.approx(0.1)
    assert (table.loc["MQL", "from_probability"], table.loc["MQL", "below_probability"]) == (0.3, 0.6)
    for kind in ("threshold", "lift", "expected_value", "capacity", "precision"):
        assert policy_kind(policy_from_dict({"kind": kind})) == kind
