"""Segment models: routing by a lead column, one bundle, per-segment reports, explanations through the router."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.metrics import roc_auc_score

from features.build import build_features
from features.spec import FeatureSpec
from models.segments import SegmentedModel
from training.guards import NoSignalWarning
from training.pipeline import TrainingConfig, train_on_table

SPEC = FeatureSpec(categorical_columns=("Region",), numeric_columns=("Visits",), job_title_column=None,
                   email_column=None, event_log=False, lead_age=False)


def test_rows_are_routed_to_their_segment_or_the_global_model():
    X = pd.DataFrame({"region": ["north", "south", None, "north"], "log_visits": [1.0, 2.0, 3.0, 4.0]})
    north = DummyClassifier(strategy="prior").fit(X, [1, 1, 1, 0])  # 0.75
    global_model = DummyClassifier(strategy="prior").fit(X, [1, 0, 0, 0])  # 0.25
    model = SegmentedModel(segment_feature="region", segment_models={"north": north}, global_model=global_model)
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], [0.75, 0.25, 0.25, 0.75])
    assert model.segment_of(X).tolist() == ["north", "(global)", "(global)", "north"]
    assert {key: rows.tolist() for key, rows in model.route(X).items()} == {"north": [0, 3], None: [1, 2]}


def opposite_regions(n=3000, seed=0):
    """Visits raise conversion in the north and lower it in the south; the east is too small for its own model."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["North", "South", "East"], size=n, p=[0.48, 0.48, 0.04])
    visits = rng.gamma(2.0, 5.0, n)
    z = (np.log1p(visits) - 2.2) * 2.5
    logit = np.where(region == "South", -0.5 - z, -0.5 + z)
    won = rng.random(n) < 1 / (1 + np.exp(-logit))
    leads = pd.DataFrame({"lead_id": [f"L{i}" for i in range(n)], "Region": region, "Visits": visits})
    return leads, pd.Series(won.astype(float))


def test_segment_models_are_trained_routed_and_reported_per_segment():
    leads, labels = opposite_regions()
    lines = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoSignalWarning)
        result = train_on_table(leads, labels, spec=SPEC, config=TrainingConfig(segment_by="Region"),
                                log=lines.append)
    model = result.bundle.model
    assert isinstance(model, SegmentedModel) and sorted(model.segment_models) == ["north", "south"]
    assert result.params["segments"] == ["north", "south"] and result.params["segment_by"] == "Region"
    # Opposite slopes cancel out for one model of everyone; the routed model is the one judged for signal.
    assert result.metrics["validation_roc_auc_segmented"] > 0.75 and result.params["has_signal"]
    assert any(line.startswith("segment 'east':") and "scored by the global model" in line for line in lines)
    table = result.tables["test_segments"].set_index("segment")
    assert table.loc["north", "model"] == "segment" and table.loc["(global)", "model"] == "global"
    assert table["test_rows"].sum() == result.params["rows_test"]
    # Each segment's figures, recomputed from its own model and the global one on its test leads.
    test_leads = leads.set_index("lead_id").loc[result.test["lead_id"]].reset_index()
    test_features = result.bundle.conform(build_features(result.test[["lead_id"]].assign(as_of=pd.NaT), test_leads,
                                                         None, result.bundle.spec))
    y = result.test["label"].to_numpy()
    np.testing.assert_allclose(result.test["probability"], model.predict_proba(test_features)[:, 1])
    for segment in ("north", "south"):
        rows = test_features["region"].eq(segment).to_numpy()
        assert table.loc[segment, "test_rows"] == rows.sum()
        assert table.loc[segment, "roc_auc"] == pytest.approx(
            roc_auc_score(y[rows], model.segment_models[segment].predict_proba(test_features[rows])[:, 1]))
        assert table.loc[segment, "global_model_roc_auc"] == pytest.approx(
            roc_auc_score(y[rows], model.global_model.predict_proba(test_features[rows])[:, 1]))
        assert table.loc[segment, "roc_auc"] > 0.75  # opposite slopes, each learned in its own segment

    # One bundle scores every lead, each by its own segment's model; explanations follow the same route.
    rows = pd.DataFrame({"lead_id": leads["lead_id"].head(40), "as_of": pd.NaT})
    features = build_features(rows, leads.head(40), None, result.bundle.spec)
    scores, reasons = result.bundle.score_with_reasons(features)
    np.testing.assert_allclose(scores["probability"], result.bundle.predict_probability(features), atol=1e-9)
    assert len(reasons) == 40
    north = features["region"].eq("north").to_numpy()
    own = model.segment_models["north"].predict_proba(result.bundle.conform(features[north]))[:, 1]
    np.testing.assert_allclose(result.bundle.predict_probability(features[north]), own)


def test_segment_by_must_name_a_categorical_column():
    leads, labels = opposite_regions(600)
    with pytest.raises(ValueError, match="segment_by must name a categorical lead column used by the model. Got "
                                         "'Visits'; categorical columns: \\['Region'\\]"):
        train_on_table(leads, labels, spec=SPEC, config=TrainingConfig(segment_by="Visits", min_split_positives=1),
                       log=lambda line: None)
