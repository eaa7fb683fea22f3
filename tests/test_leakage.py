"""Leakage guard: suspicious band, declared columns, folds grouped by lead; lead-counting guards; promotion rules."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from features.spec import FeatureSpec
from training.guards import (SmallSplitWarning, check_minimum_data, count_converted_leads, has_signal,
                             warn_small_splits)
from training.leakage import SuspiciousColumnWarning, apply_leakage_guard, leakage_report, suspicious_columns
from training.promotion import decide_promotion

SPEC = FeatureSpec(categorical_columns=("Landing Page",), numeric_columns=(), raw_numeric_columns=("Call Held",
                   "Visits"), job_title_column=None, email_column=None, event_log=False, lead_age=False)


def planted_call_column(n=1000, seed=0):
    """``Call Held`` equals the label except on exactly 15 % of each class: its AUC is 1 - 0.15 = 0.85 by hand
    (a 0/1 score with TPR 0.85 and FPR 0.15 has AUC (TPR + 1 - FPR) / 2)."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(n // 2), np.zeros(n // 2)].astype(int)
    flipped = np.zeros(n, dtype=bool)
    flipped[: int(0.15 * n / 2)] = True  # 15 % of the positives
    flipped[n // 2: n // 2 + int(0.15 * n / 2)] = True  # and 15 % of the negatives
    features = pd.DataFrame({"landing_page": rng.choice(["a", "b", "c"], size=n).astype(object),
                             "call_held": np.where(flipped, 1 - labels, labels).astype(float),
                             "visits": rng.poisson(3, size=n).astype(float)})
    return features, labels


def test_a_column_at_auc_085_is_kept_but_flagged_suspicious_first():
    features, labels = planted_call_column()
    lines = []
    with pytest.warns(SuspiciousColumnWarning, match="'Call Held' is SUSPICIOUS \\(single-column AUC 0.850 >= 0.8\\)"):
        spec, report = apply_leakage_guard(features, labels, SPEC, log=lines.append)
    assert "call_held" in spec.feature_names  # kept: below the exclusion threshold
    top = report.iloc[0]
    assert (top["column"], top["single_column_auc"], top["verdict"]) == ("Call Held", 0.85, "suspicious")
    assert suspicious_columns(report) == ["Call Held"]
    assert not report["excluded"].any() and lines == []
    # The band is configurable: above it the column is ordinary, at the exclusion level it goes.
    assert suspicious_columns(leakage_report(features, labels, SPEC, suspicious_auc=0.9)) == []
    excluded = leakage_report(features, labels, SPEC, max_auc=0.85)
    assert excluded.set_index("column").loc["Call Held", "verdict"] == "excluded"
    with pytest.raises(ValueError, match="'suspicious_auc' parameter of leakage_report must be in \\(0.5, max_auc\\]"):
        leakage_report(features, labels, SPEC, suspicious_auc=0.97)


def test_declared_post_outcome_is_reported_as_declared_not_suspicious():
    features, labels = planted_call_column()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a declared column raises no warning at all
        spec, report = apply_leakage_guard(features, labels, SPEC, post_outcome=("Call Held",), log=lambda line: None)
    row = report.set_index("column").loc["Call Held"]
    assert row["verdict"] == "declared post-outcome" and row["excluded"] and not row["suspicious"]
    assert "call_held" not in spec.feature_names and suspicious_columns(report) == []


def test_leakage_folds_are_grouped_by_lead_on_snapshots():
    """A landing-page id unique to each lead carries no signal, but each lead's 5 snapshots share it and
    their label: ungrouped out-of-fold encoding lets a lead's other snapshots encode its own row."""
    rng = np.random.default_rng(1)
    leads = 400
    converted = rng.random(leads) < 0.3
    lead_id = np.repeat(np.arange(leads), 5)
    labels = np.repeat(converted, 5).astype(int)
    features = pd.DataFrame({"landing_page": [f"page-{i}" for i in lead_id], "call_held": 0.0,
                             "visits": rng.poisson(3, size=lead_id.size).astype(float)})
    ungrouped = leakage_report(features, labels, SPEC).set_index("column").loc["Landing Page", "single_column_auc"]
    grouped = leakage_report(features, labels, SPEC, groups=lead_id).set_index("column").loc[
        "Landing Page", "single_column_auc"]
    assert ungrouped > 0.9  # the inflated figure the issue saw (0.915 on a real export)
    assert grouped == 0.5  # every level unseen in its fold: the prior for all, no ranking at all


def test_guards_count_distinct_converted_leads():
    # 28 positive snapshots from 10 converting leads: enough rows, too few leads.
    labels = np.r_[np.ones(28), np.zeros(200)]
    groups = np.r_[np.repeat(np.arange(10), [3, 3, 3, 3, 3, 3, 3, 3, 2, 2]), np.arange(100, 300)]
    assert count_converted_leads(labels, groups) == 10 and count_converted_leads(labels) == 28
    with pytest.raises(ValueError, match="the 28 converted examples come from 10 distinct leads; training needs at "
                                         "least 20"):
        check_minimum_data(labels, groups=groups, min_positives=20, min_negatives=20)
    check_minimum_data(labels, groups=groups, min_positives=20, min_negatives=20, min_converted_leads=10)
    with pytest.warns(SmallSplitWarning, match="28 converted examples from 10 distinct leads"):
        assert warn_small_splits({"test": labels}, groups_by_split={"test": groups}, min_positives=20,
                                 min_converted_leads=11) == ["test"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_small_splits({"test": labels}, groups_by_split={"test": groups}, min_positives=20,
                                 min_converted_leads=10) == []


def test_signal_floor():
    assert has_signal(0.56) and not has_signal(0.55) and not has_signal(0.50)
    assert has_signal(0.52, min_auc=0.51)
    with pytest.raises(ValueError, match="'min_auc' parameter of has_signal must be in \\[0.5, 1\\)"):
        has_signal(0.7, min_auc=1.2)


@pytest.mark.parametrize("kwargs, outcome, reason", [
    (dict(challenger_auc=0.70), "promoted", "first model"),
    (dict(challenger_auc=0.70, champion_auc=0.69), "promoted", "not worse"),
    (dict(challenger_auc=0.70, champion_auc=0.70), "promoted", "not worse"),
    (dict(challenger_auc=0.69, champion_auc=0.70), "kept champion", "worse than the champion"),
    (dict(challenger_auc=0.76, champion_auc=0.70), "held for review", "gains 0.0600 AUC"),
    (dict(challenger_auc=0.75, champion_auc=0.70), "promoted", "not worse"),
    (dict(challenger_auc=0.72, champion_auc=0.70, suspicious_columns=["Call Held"]), "held for review",
     "suspicious column\\(s\\) Call Held"),
    (dict(challenger_auc=0.90, suspicious_columns=["Call Held"]), "held for review", "suspicious"),
    (dict(challenger_auc=0.72, champion_auc=0.50, has_signal=False), "kept champion", "no information"),
    (dict(challenger_auc=0.72, has_champion=True), "held for review", "could not be scored"),
])
def test_promotion_rules(kwargs, outcome, reason):
    decision = decide_promotion(**kwargs)
    assert decision.outcome == outcome and decision.promote == (outcome == "promoted")
    assert pytest.approx(decision.challenger_auc) == kwargs["challenger_auc"]
    assert re.search(reason, decision.reason)

