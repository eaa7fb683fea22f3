"""AUC along the journey and score stability, by hand; and the training report shows them."""

import re

import numpy as np
import pandas as pd
import pytest

from training.journey import auc_by_band, journey_tables, score_stability


def test_auc_by_band_by_hand():
    labels = [1, 0, 1, 0, 1, 0, 0]
    probability = [0.9, 0.1, 0.4, 0.6, 0.8, 0.2, 0.3]
    age = [5, 10, 20, 25, 40, 50, 60]
    table = auc_by_band(labels, probability, age, edges=(0, 30, 90, np.inf), unit="days")
    # [0, 30): pairs (0.9, 0.1) (0.9, 0.6) (0.4, 0.1) right, (0.4, 0.6) wrong -> 0.75; [30, 90): 1.0; none older.
    assert table["band"].tolist() == ["[0, 30) days", "[30, 90) days"]
    assert table["roc_auc"].tolist() == [0.75, 1.0]
    assert table["rows"].tolist() == [4, 3] and table["converted"].tolist() == [2, 1]
    one_class = auc_by_band([0, 0, 1], [0.1, 0.2, 0.3], [0, 0, 100], edges=(0, 30, np.inf))
    assert np.isnan(one_class["roc_auc"].iloc[0]) and one_class["band"].tolist() == ["[0, 30)", ">= 30"]


def test_score_stability_by_hand():
    test = pd.DataFrame({"lead_id": ["A", "B", "A", "C", "A", "B"],
                         "as_of": pd.to_datetime(["2025-01-01", "2025-01-01", "2025-01-16", "2025-01-16", "2025-01-31",
                                                  "2025-01-16"]),
                         "probability": [0.10, 0.50, 0.30, 0.20, 0.25, 0.50],
                         "tier": ["nurture", "SQL", "MQL", "MQL", "MQL", "SQL"]})
    row = score_stability(test).iloc[0]
    # Pairs: A 0.10 -> 0.30 (20 points, tier changed), A 0.30 -> 0.25 (5), B 0.50 -> 0.50 (0); C has one snapshot.
    assert row["pairs"] == 3 and row["leads"] == 2
    assert row["median_abs_change_points"] == pytest.approx(5.0)
    assert row["p90_abs_change_points"] == pytest.approx(5 + 0.8 * 15)  # linear interpolation of [0, 5, 20]
    assert row["tier_changed_share"] == pytest.approx(1 / 3)
    # Ranks before (1, 2, 3), after (2, 1, 3): rho = 1 - 6 x 2 / (3 x 8) = 0.5.
    assert row["rank_correlation"] == pytest.approx(0.5)


def test_the_training_report_shows_the_journey(small_models, tmp_path):
    from types import SimpleNamespace

    from analysis.training_report import training_report
    from training.evaluate import decile_table, tier_table

    bundle = small_models["lightgbm"]
    features = small_models["features"].reset_index(drop=True)
    probability = bundle.predict_probability(features)
    label = (np.random.default_rng(0).random(len(probability)) < probability).astype(int)
    tiers = bundle.thresholds.assign(probability)
    test = pd.DataFrame({"lead_id": np.arange(len(label)) % (len(label) // 2), "label": label,
                         "as_of": pd.Timestamp("2025-01-01") + pd.to_timedelta(np.arange(len(label)) // (len(label) // 2),
                                                                               unit="D"),
                         "probability": probability, "tier": tiers})
    result = SimpleNamespace(bundle=bundle, test=test, test_features=features,
                             params={"model": "lightgbm", "calibration": "sigmoid", "split": "temporal"},
                             metrics={"test_roc_auc": 0.8, "test_pr_auc": 0.3, "test_base_rate": label.mean(),
                                      "test_brier": 0.05, "test_ece": 0.01, "test_top_decile_lift": 3.0,
                                      "test_rows": len(label)},
                             tables={"test_tiers": tier_table(label, probability, tiers),
                                     "test_deciles": decile_table(label, probability)})
    out = training_report(result, out_dir=tmp_path)
    html = out["path"].read_text()
    assert ">Along the journey<" in html and "events so far" in html and "rank correlation" in html
    expected = journey_tables(test, features)
    assert set(expected) == {"auc_by_lead_age", "auc_by_events_so_far", "score_stability"}
    for name, table in expected.items():
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / f"{name}.csv"), table, check_dtype=False)
    assert re.search(r"\[0, 30\) days", html)
