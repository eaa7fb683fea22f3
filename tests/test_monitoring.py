"""Drift monitoring: PSI against the training reference stored in the model, and the warning a planted shift raises."""

import math

import mlflow
import numpy as np
import pandas as pd
import pytest

import serve
from models.monitoring import band, build_reference, psi
from scoring.drift import DriftMonitor
from train import main as training_main


def test_psi_matches_the_formula_worked_by_hand():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    assert [band(value) for value in (0.05, 0.1, 0.2, 0.25, 3.0)] == ["ok", "warning", "warning", "alert", "alert"]


def test_monitor_bins_a_scored_base_into_the_reference_bins():
    features = pd.DataFrame({"x": np.arange(100, dtype=float), "c": ["a"] * 60 + ["b"] * 40})
    reference = build_reference(features, np.linspace(0.01, 0.99, 100), ["SQL"] * 10 + ["MQL"] * 30 + ["nurture"] * 60,
                                categorical=["c"], n_bins=4)
    assert reference["features"]["x"]["edges"] == [24.75, 49.5, 74.25]
    assert reference["features"]["x"]["shares"] == [0.25, 0.25, 0.25, 0.25, 0.0]  # four bins, then missing
    assert reference["features"]["c"]["shares"] == [0.6, 0.4, 0.0, 0.0]  # a, b, other, missing
    assert reference["tiers"] == {"SQL": 0.1, "MQL": 0.3, "nurture": 0.6}

    monitor = DriftMonitor(reference)
    # Two chunks, as a batch run adds them: every x in the first bin, half the categories never seen.
    monitor.add(pd.DataFrame({"x": [10.0] * 30, "c": ["a"] * 30}), np.full(30, 0.5), ["MQL"] * 30)
    monitor.add(pd.DataFrame({"x": [10.0] * 20 + [np.nan] * 10, "c": ["a"] * 5 + ["zz"] * 25}),
                np.full(30, 0.5), ["MQL"] * 30)
    report = monitor.report().features.set_index("feature")
    floor = 1e-4
    x_now = np.array([50, 0, 0, 0, 10]) / 60
    x_ref = np.array([0.25, 0.25, 0.25, 0.25, 0.0])
    expected = np.sum((np.maximum(x_now, floor) - np.maximum(x_ref, floor))
                      * np.log(np.maximum(x_now, floor) / np.maximum(x_ref, floor)))
    assert report.loc["x", "psi"] == pytest.approx(expected)
    assert report.loc["x", "missing_now"] == pytest.approx(10 / 60)
    assert report.loc["c", "unseen_share"] == pytest.approx(25 / 60)
    assert report.loc["c", "status"] == "alert" and report.loc["x", "status"] == "alert"


def test_reference_travels_in_the_bundle(small_models, tmp_path):
    from models.bundle import ModelBundle

    bundle = small_models["logistic"]
    features = small_models["features"]
    probability = bundle.predict_probability(features)
    reference = build_reference(features[bundle.spec.feature_names], probability, bundle.thresholds.assign(probability),
                                categorical=bundle.spec.categorical_feature_names)
    saved = ModelBundle(spec=bundle.spec, model=bundle.model, thresholds=bundle.thresholds, reference=reference)
    loaded = ModelBundle.load(saved.save(tmp_path / "bundle.joblib"))
    assert loaded.reference == reference
    # The same rows scored again drift by nothing.
    report = DriftMonitor(loaded.reference).add(features, probability, bundle.thresholds.assign(probability)).report()
    assert report.status == "ok" and report.score["psi"] == pytest.approx(0.0, abs=1e-12)
    assert report.features["psi"].max() == pytest.approx(0.0, abs=1e-12)


@pytest.fixture(scope="module")
def crm_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crm")
    assert training_main(["generate", "--leads", "3000", "--months", "15", "--seed", "4", "--out", str(folder)]) == 0
    return folder


def test_a_planted_shift_raises_the_warning_and_fails_on_request(crm_folder, mlflow_store, tmp_path, capsys):
    files = {name: str(crm_folder / f"{name}.parquet") for name in ("leads", "events", "deals")}
    assert training_main(["train", "--leads", files["leads"], "--events", files["events"],
                          "--deals", files["deals"]]) == 0
    capsys.readouterr()
    common = ["score", "--events", files["events"], "--deals", files["deals"], "--as-of", "2026-03-01",
              "--no-reasons"]
    assert serve.main([*common, "--leads", files["leads"], "--out", str(tmp_path / "plain.parquet"),
                       "--monitoring-out", str(tmp_path / "plain")]) == 0
    plain = pd.read_csv(tmp_path / "plain" / "feature_drift.csv").set_index("feature")
    capsys.readouterr()

    # Planted shift: company sizes fifty times larger and a lead source the model never saw.
    leads = pd.read_parquet(files["leads"])
    leads["company_size"] = leads["company_size"] * 50
    leads["lead_source"] = "tiktok"
    shifted = tmp_path / "shifted_leads.parquet"
    leads.to_parquet(shifted)
    code = serve.main([*common, "--leads", str(shifted), "--out", str(tmp_path / "shifted.parquet"),
                       "--monitoring-out", str(tmp_path / "shifted"), "--fail-on-drift"])
    err = capsys.readouterr().err
    assert code == 3
    assert "WARNING: monitoring: ALERT" in err
    drift = pd.read_csv(tmp_path / "shifted" / "feature_drift.csv").set_index("feature")
    size = [name for name in drift.index if "company_size" in name and "missing" not in name]
    assert size and all(drift.loc[name, "psi"] >= 0.25 > plain.loc[name, "psi"] for name in size)
    assert drift.loc["lead_source", "unseen_share"] == 1.0 and plain.loc["lead_source", "unseen_share"] == 0.0
    assert (tmp_path / "shifted.parquet").exists()  # the scores are written all the same
    assert "Drift monitoring" in (tmp_path / "shifted" / "monitoring.html").read_text()

    runs = mlflow.search_runs(experiment_names=["lead-conversion"], filter_string="tags.kind = 'monitoring'")
    assert len(runs) == 2
    # Named by model, version and the date scored, so the runs list reads as a log of nights.
    assert set(runs["tags.mlflow.runName"]) == {"monitoring lead-conversion v1 2026-03-01"}
    assert set(runs["tags.monitoring_status"]) >= {"alert"}
    assert runs["metrics.max_feature_psi"].max() >= 0.25
