"""The training report: every picture embedded, tables checked against direct computation."""

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from analysis.evaluation_plots import gains_curve, ks_curves, threshold_point
from analysis.training_report import FIGURES, confusion_table, factor_importance, training_report
from models.explain import feature_contributions
from training.evaluate import decile_table, tier_table


@pytest.fixture
def result(small_models):
    """A TrainingResult-shaped object from the session's small LightGBM bundle (no training in this test)."""
    bundle = small_models["lightgbm"]
    features = small_models["features"].reset_index(drop=True)
    probability = bundle.predict_probability(features)
    rng = np.random.default_rng(0)
    label = (rng.random(len(probability)) < probability).astype(int)
    tiers = bundle.thresholds.assign(probability)
    test = pd.DataFrame({"lead_id": np.arange(len(label)), "label": label, "probability": probability, "tier": tiers})
    leakage = pd.DataFrame({"column": ["industry"], "feature": ["industry"], "kind": ["categorical"],
                            "single_column_auc": [0.61], "declared_post_outcome": [False], "kept": [False],
                            "excluded": [False], "reason": [""]})
    return SimpleNamespace(bundle=bundle, test=test, test_features=features,
                           params={"model": "lightgbm", "calibration": "sigmoid", "split": "stratified",
                                   "horizon_days": 90, "excluded_columns": []},
                           metrics={"test_roc_auc": 0.8, "test_pr_auc": 0.3, "test_base_rate": label.mean(),
                                    "test_brier": 0.05, "test_ece": 0.01, "test_top_decile_lift": 3.0,
                                    "test_rows": len(label)},
                           tables={"test_tiers": tier_table(label, probability, tiers),
                                   "test_deciles": decile_table(label, probability), "leakage_report": leakage})


def test_report_embeds_every_picture_and_writes_its_tables(result, tmp_path):
    out = training_report(result, out_dir=tmp_path)
    html = out["path"].read_text()
    pictures = re.findall(r'<img alt="(\w+)" src="data:image/png;base64,([A-Za-z0-9+/=]{1000,})"', html)
    assert sorted(name for name, _ in pictures) == sorted(FIGURES)
    assert not re.search(r"""src=["']?http""", html) and "<link" not in html  # self-contained: opens offline, travels by mail
    for section in ("Ranking", "Calibration", "Tiers and cut-offs", "What moves the scores", "Leakage check"):
        assert f">{section}<" in html
    assert (tmp_path / "factor_importance.csv").exists() and (tmp_path / "confusion_at_tiers.csv").exists()
    y, p = result.test["label"], result.test["probability"]
    assert out["metrics"]["test_ks"] == pytest.approx(ks_2samp(p[y == 1], p[y == 0]).statistic)


def test_confusion_at_the_tier_thresholds_by_hand():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0])
    p = np.array([0.9, 0.5, 0.6, 0.2, 0.1, 0.05, 0.5, 0.01])
    table = confusion_table(y, p, {"SQL": 0.55, "MQL": 0.2}).set_index("tier")
    sql, mql = table.loc["SQL or above"], table.loc["MQL or above"]
    # p >= 0.55: 0.9 (converted), 0.6 (not). p >= 0.2: also 0.5 (converted), 0.2 and 0.5 (not).
    assert (sql["converted_flagged"], sql["not_converted_flagged"], sql["converted_missed"]) == (1, 1, 2)
    assert (mql["converted_flagged"], mql["not_converted_flagged"], mql["converted_missed"]) == (2, 3, 1)
    assert sql["precision"] == 0.5 and mql["recall"] == pytest.approx(2 / 3) and mql["volume"] == 5 / 8
    assert threshold_point(y, p, 0.2) == {"cutoff": 0.2, "conversion": 0.4, "volume": 5 / 8, "capture": 2 / 3}


def test_gains_and_ks_by_hand():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.8, 0.6, 0.4, 0.2])
    contacted, captured, lift = gains_curve(y, p)
    assert captured.tolist() == [0.5, 0.5, 1.0, 1.0] and lift.tolist() == [2.0, 1.0, pytest.approx(4 / 3), 1.0]
    _, _, _, ks, at = ks_curves(y, p)
    assert ks == 0.5 and at in (0.2, 0.6)  # non-converters' CDF leads by half at 0.2 and at 0.6


def test_factor_importance_is_mean_absolute_factor_contribution(small_models):
    bundle = small_models["lightgbm"]
    features = small_models["features"].reset_index(drop=True)
    table = factor_importance(bundle, features).set_index("factor_key")
    contributions, _ = feature_contributions(bundle, features)
    demo = [c for c in contributions.columns if c.endswith("demo_request") or "_demo_request_" in c]
    expected = contributions[demo].sum(axis=1).abs().mean()
    assert table.loc["demo_request", "mean_abs_contribution"] == pytest.approx(expected)
    assert table.loc["demo_request", "factor"] == "demo requests"
    assert table["mean_abs_contribution"].is_monotonic_decreasing and table["share"].sum() == pytest.approx(1)
    assert len(factor_importance(bundle, features, max_rows=50))  # sampled, still one row per factor
