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
