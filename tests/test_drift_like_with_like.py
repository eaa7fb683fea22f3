"""Monitoring compares like with like: another sample of the same CRM is stable, planted shifts alert by name."""

import numpy as np
import pandas as pd
import pytest

from crm.synthetic import generate_crm
from features.build import build_features
from features.snapshots import open_leads
from models.expected_performance import expected_performance
from models.monitoring import open_lead_reference
from scoring.drift import DriftMonitor, compare_with_previous_run, same_bins


@pytest.fixture(scope="module")
def reference_and_base(small_models):
    """The logistic model's reference on its own CRM's open leads, and a second CRM from the same process."""
    bundle, crm = small_models["logistic"], small_models["crm"]
    reference = open_lead_reference(bundle.model, bundle.spec, bundle.thresholds, crm.leads, crm.events, crm.deals,
                                    as_of=crm.end)
    return bundle, reference, generate_crm(1_500, months=12, seed=6)


def _monitor(bundle, reference, leads, events, deals, as_of) -> DriftMonitor:
    snapshots = open_leads(leads, deals, as_of)
    features = build_features(snapshots, leads, events, bundle.spec)
    scores = bundle.score(features)
    return DriftMonitor(reference).add(features, scores["probability"], scores["tier"])


def test_the_reference_is_the_open_base_with_factor_words(reference_and_base, small_models):
    bundle, reference, _ = reference_and_base
    crm = small_models["crm"]
    assert reference["rows"] == len(open_leads(crm.leads, crm.deals, crm.end))
    assert "open at" in reference["source"]
    assert reference["factors"]["events_demo_request_30d"] == ["demo_request", "demo requests"]
    assert reference["factors"]["lead_age_days"] == ["lead_age", "lead age"]
    # The same open base scored again: nothing moves.
    report = _monitor(bundle, reference, crm.leads, crm.events, crm.deals, crm.end).report()
    assert report.status == "ok" and report.features["psi"].max() == pytest.approx(0.0, abs=1e-9)


def test_another_sample_of_the_same_crm_is_stable(reference_and_base):
    bundle, reference, other = reference_and_base
    report = _monitor(bundle, reference, other.leads, other.events, other.deals, other.end).report()
    assert report.status == "ok", report.summary_lines()
    assert report.summary_lines()[0].startswith("monitoring: STABLE")
    # Grouped by factor: one row per factor, fewer than the features.
    assert report.factors["factor"].is_unique and len(report.factors) < len(report.features)


def _shifted(other, how):
    leads, events = other.leads.copy(), other.events.copy()
    if how == "source doubles":
        source = leads["lead_source"].value_counts().index[1]
        twins = leads[leads["lead_source"] == source].copy()
        twins["lead_id"] = twins["lead_id"] + 10_000_000
        twin_events = events[events["lead_id"].isin(twins["lead_id"] - 10_000_000)].copy()
        twin_events["lead_id"] = twin_events["lead_id"] + 10_000_000
        leads, events = pd.concat([leads, twins]), pd.concat([events, twin_events])
        return leads.reset_index(drop=True), events.reset_index(drop=True), "source"
    if how == "event type stops":
        stopped = events["occurred_at"] >= other.end - pd.Timedelta(days=120)
        return leads, events[~(stopped & events["event_type"].eq("email_open"))].reset_index(drop=True), "e-mail opens"
    leads["industry"] = None  # a column that goes blank
    return leads, events, "industry"


@pytest.mark.parametrize("how", ["source doubles", "event type stops", "column goes blank"])
def test_a_planted_shift_alerts_and_is_named(reference_and_base, how):
    bundle, reference, other = reference_and_base
    leads, events, words = _shifted(other, how)
    report = _monitor(bundle, reference, leads, events, other.deals, other.end).report()
    assert report.status == "alert"
    shifted = report.shifted_factors()
    assert shifted.iloc[0]["words"] == words and shifted.iloc[0]["status"] == "alert"
    assert any(line.strip().startswith("alert") and words in line for line in report.summary_lines())
    # Its picture's data: the top feature's bins against the reference.
    bins = report.feature_bins[shifted.iloc[0]["feature"]]
    assert bins["share"].sum() == pytest.approx(1.0) and bins["reference_share"].sum() == pytest.approx(1.0)


def test_each_run_is_compared_with_the_previous_one(reference_and_base, tmp_path):
    bundle, reference, other = reference_and_base
    first = compare_with_previous_run(_monitor(bundle, reference, other.leads, other.events, other.deals, other.end),
                                      tmp_path, as_of=other.end, model_version="1")
    assert first.previous is None and (tmp_path / "last_run_profile.json").exists()
    leads, events, words = _shifted(other, "column goes blank")
    second = compare_with_previous_run(_monitor(bundle, reference, leads, events, other.deals, other.end), tmp_path,
                                       as_of=other.end, model_version="1")
    assert second.previous is not None and "previous run" in second.previous.reference_source
    assert second.previous.shifted_factors().iloc[0]["words"] == words
    assert second.overall_status == "alert"
    # Against itself the previous profile moved nothing else: every other factor of the previous comparison is stable.
    assert (second.previous.factors["status"] == "ok").sum() == len(second.previous.factors) - 1
    # A profile of other bins (another model) is not compared.
    other_reference = {**reference, "probability": {**reference["probability"], "edges": [0.5]}}
    assert not same_bins(reference, other_reference) and same_bins(reference, reference)


def test_the_report_carries_the_expected_performance(reference_and_base):
    bundle, reference, other = reference_and_base
    snapshots = open_leads(other.leads, other.deals, other.end)
    scores = bundle.score(build_features(snapshots, other.leads, other.events, bundle.spec))
    report = _monitor(bundle, reference, other.leads, other.events, other.deals, other.end).report()
    whole = expected_performance(scores["probability"], scores["tier"])
    assert report.expected["expected_conversions"] == pytest.approx(scores["probability"].sum())
    assert report.expected == pytest.approx(whole, nan_ok=True)
    assert report.metrics()["expected_roc_auc"] == pytest.approx(whole["expected_roc_auc"])
    assert np.isfinite(report.expected["expected_roc_auc"])
