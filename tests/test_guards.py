import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from own_export import make_export

from features.build import build_features
from features.spec import FeatureSpec
from training.guards import SmallSplitWarning, check_minimum_data, warn_small_splits
from training.leakage import LeakageWarning, apply_leakage_guard, leakage_report
from training.pipeline import TrainingConfig, train_on_table
from training.split import stratified_split, time_ordered_split

SPEC = FeatureSpec(categorical_columns=("Source", "Region", "Rep Verdict"), numeric_columns=("Visits",),
                   boolean_columns=("Opted Out",), job_title_column=None, email_column=None,
                   event_log=False, lead_age=False)


def features_and_labels(frame):
    leads = frame.rename(columns={"Lead Ref": "lead_id"})
    rows = pd.DataFrame({"lead_id": leads["lead_id"], "as_of": pd.NaT})
    return leads, build_features(rows, leads, None, SPEC), (frame["Deal Won"] == "Yes").astype(int).to_numpy()


def test_a_planted_perfect_column_is_excluded_and_named():
    _, features, labels = features_and_labels(make_export(400))
    with pytest.warns(LeakageWarning, match="column 'Rep Verdict' EXCLUDED"):
        spec, report = apply_leakage_guard(features, labels, SPEC, log=lambda line: None)
    assert "rep_verdict" not in spec.feature_names and "source" in spec.feature_names
    top = report.iloc[0]
    assert top["column"] == "Rep Verdict" and top["single_column_auc"] == 1.0 and top["excluded"]
    assert not report.loc[report["column"] != "Rep Verdict", "excluded"].any()


def test_a_kept_column_stays_with_a_warning_and_declared_columns_go_without_one():
    _, features, labels = features_and_labels(make_export(400))
    with pytest.warns(LeakageWarning, match="'Rep Verdict' KEPT because the config says keep"):
        spec, _ = apply_leakage_guard(features, labels, SPEC, keep=("Rep Verdict",), log=lambda line: None)
    assert "rep_verdict" in spec.feature_names
    lines = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec, report = apply_leakage_guard(features, labels, SPEC, post_outcome=("Region",), keep=("Rep Verdict",),
                                           log=lines.append)
    # The declared column is a decision the user made: reported as declared, not warned about.
    assert [str(warning.message).split(" (")[0] for warning in caught] == [
        "leakage guard: column 'Rep Verdict' KEPT because the config says keep"]
    assert lines == ["leakage guard: excluded as declared post-outcome: Region"]
    assert "region" not in spec.feature_names
    region = report.set_index("column").loc["Region"]
    assert region["declared_post_outcome"] and region["excluded"] and region["verdict"] == "declared post-outcome"


def test_single_column_auc_in_both_directions_and_missingness():
    labels = np.array([0, 1] * 50)
    features = pd.DataFrame({"log_visits": np.where(labels == 1, np.nan, 1.0), "source": "web",
                             "opted_out": 1.0 - labels, "region": None, "rep_verdict": None})
    report = leakage_report(features, labels, SPEC).set_index("column")
    assert report.loc["Visits", "single_column_auc"] == 1.0  # missing exactly when converted
    assert report.loc["Opted Out", "single_column_auc"] == 1.0  # inverse predictor
    assert report.loc["Source", "single_column_auc"] == 0.5


def test_minimum_data_refusal_and_small_split_warning():
    with pytest.raises(ValueError, match="39 converted and 500 non-converted.*at least 40 converted"):
        check_minimum_data(np.r_[np.ones(39), np.zeros(500)])
    check_minimum_data(np.r_[np.ones(5), np.zeros(5)], min_positives=5, min_negatives=5, min_converted_leads=5)
    with pytest.warns(SmallSplitWarning, match="the test split has only 3 converted examples from 3 distinct leads"):
        assert warn_small_splits({"train": np.ones(30), "test": np.r_[np.ones(3), np.zeros(9)]}) == ["test"]


def test_training_refuses_too_few_conversions():
    frame = make_export(300, leaky=False)
    frame["Deal Won"] = np.where(np.arange(300) < 30, "Yes", "No")
    leads = frame.rename(columns={"Lead Ref": "lead_id"})
    labels = (frame["Deal Won"] == "Yes").astype(float)
    spec = dataclasses.replace(SPEC, categorical_columns=("Source", "Region"))
    with pytest.raises(ValueError, match=r"30 converted and 270 non-converted examples "
                                         r"\(30 distinct converted leads\); training needs at least 40"):
        train_on_table(leads, labels, spec=spec, log=lambda line: None)


def test_stratified_split_is_seeded_and_keeps_the_base_rate():
    labels = np.r_[np.ones(300), np.zeros(700)]
    split = stratified_split(labels, seed=1)
    assert split.equals(stratified_split(labels, seed=1)) and not split.equals(stratified_split(labels, seed=2))
    counts = split.value_counts()
    assert (counts["train"], counts["calibration"], counts["test"]) == (600, 200, 200)
    rates = pd.Series(labels).groupby(split).mean()
    np.testing.assert_allclose(rates, 0.3)


def test_config_thresholds_reach_training():
    config = TrainingConfig(min_positives=5, min_negatives=5, leakage_max_auc=0.9, post_outcome_columns=("x",))
    assert config.as_params()["leakage_max_auc"] == 0.9 and config.as_params()["min_positives"] == 5


def test_dated_lead_table_is_split_by_time():
    frame = make_export(600, leaky=False)
    leads = frame.rename(columns={"Lead Ref": "lead_id"}).assign(
        created_at=pd.date_range("2025-01-01", periods=600, freq="h")[::-1])
    split = time_ordered_split(leads["created_at"])
    assert (split.iloc[:120] == "test").all() and (split.iloc[-360:] == "train").all()  # newest rows come first
    spec = dataclasses.replace(SPEC, categorical_columns=("Source", "Region"))
    result = train_on_table(leads, (frame["Deal Won"] == "Yes").astype(float), spec=spec,
                            config=TrainingConfig(min_split_positives=1), log=lambda line: None)
    assert result.params["split"] == "time" and result.params["rows_test"] == 120
    assert set(result.test["lead_id"]) == set(leads["lead_id"].iloc[:120])


def test_a_model_without_signal_says_its_tiers_carry_no_information():
    from training.guards import NoSignalWarning
    from training.promotion import decide_promotion

    frame = make_export(1500, leaky=False, seed=3)
    leads = frame.rename(columns={"Lead Ref": "lead_id"})
    labels = pd.Series((np.random.default_rng(7).random(len(frame)) < 0.4).astype(float))  # unrelated to any column
    spec = dataclasses.replace(SPEC, categorical_columns=("Source", "Region"))
    with pytest.warns(NoSignalWarning, match="does not beat the floor 0.55: its ranking, and so its SQL / MQL / "
                                             "nurture tiers, carry no information"):
        result = train_on_table(leads, labels, spec=spec, log=lambda line: None)
    assert not result.params["has_signal"] and result.metrics["validation_roc_auc"] <= 0.55
    decision = decide_promotion(challenger_auc=result.metrics["test_roc_auc"], has_signal=result.params["has_signal"])
    assert decision.outcome == "kept champion" and not decision.promote
