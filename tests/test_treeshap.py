"""TreeSHAP by lookup tables: exactly LightGBM's own pred_contrib, and the reasons built from it unchanged."""

import numpy as np
import pandas as pd
import pytest

from models.explain import explain, tree_tables
from models.reasons import reason_columns, top_reason_columns, top_reasons
from models.treeshap import TreeTables


def _awkward_rows(bundle, features: pd.DataFrame) -> pd.DataFrame:
    """The fixture's rows plus copies with missing values, unseen categories and zeros everywhere."""
    missing = features.copy()
    missing.iloc[:, ::2] = np.nan
    unseen = features.copy()
    for column in bundle.spec.categorical_feature_names:
        unseen[column] = "never-seen-before"
    zeros = features.copy()
    numeric = [name for name in features.columns if name not in bundle.spec.categorical_feature_names]
    zeros[numeric] = 0.0
    return pd.concat([features, missing, unseen, zeros], ignore_index=True)


def _booster_and_awkward_codes(small_models):
    """The small LightGBM's booster and the awkward rows as the codes it reads."""
    bundle = small_models["lightgbm"]
    features = _awkward_rows(bundle, small_models["features"])
    pipeline = bundle.model.calibrated_classifiers_[0].estimator.estimator
    return pipeline[-1].booster_, pipeline[0].to_codes(bundle.conform(features))


def test_tables_give_lightgbms_own_contributions(small_models):
    booster, codes = _booster_and_awkward_codes(small_models)
    reference = booster.predict(codes, pred_contrib=True)
    ours = TreeTables(booster).contributions(codes)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-9)
    # A sanity anchor independent of both: contributions add up to the raw margin.
    np.testing.assert_allclose(ours.sum(axis=1), booster.predict(codes, raw_score=True), rtol=0, atol=1e-9)


@pytest.mark.parametrize("zero_as_missing", [False, True])
def test_tables_follow_every_missing_value_rule(zero_as_missing):
    """Numbers with NaN and zeros, a categorical column with negative and unseen codes."""
    import lightgbm

    rng = np.random.default_rng(3)
    n = 4_000
    X = rng.normal(size=(n, 4))
    X[rng.random(n) < 0.2, 0] = np.nan
    X[rng.random(n) < 0.2, 1] = 0.0
    X[:, 3] = rng.integers(0, 12, size=n)
    X[rng.random(n) < 0.1, 3] = np.nan
    y = ((np.nan_to_num(X[:, 0]) + X[:, 1] + (X[:, 3] % 3 == 0) + rng.normal(size=n)) > 0.5).astype(int)
    booster = lightgbm.train({"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 20, "verbose": -1,
                              "zero_as_missing": zero_as_missing, "min_data_per_group": 10, "cat_smooth": 1,
                              "num_threads": 1},
                             lightgbm.Dataset(X, y, categorical_feature=[3]), num_boost_round=60)
    probe = X.copy()
    probe[:50, 3] = -1.0  # negative category codes go right
    probe[50:100, 3] = 40.0  # a code no split has seen
    np.testing.assert_allclose(TreeTables(booster).contributions(probe), booster.predict(probe, pred_contrib=True),
                               rtol=0, atol=1e-9)
    np.testing.assert_array_equal(TreeTables(booster).raw_margin(probe), booster.predict(probe, raw_score=True))


def test_deep_trees_fall_back_to_pred_contrib():
    import lightgbm

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(2_000, 5)), rng.integers(0, 2, size=2_000)
    deep = lightgbm.train({"objective": "binary", "num_leaves": 31, "min_data_in_leaf": 5, "verbose": -1,
                           "num_threads": 1},
                          lightgbm.Dataset(X, y), num_boost_round=3)
    assert tree_tables(deep) is None
    with pytest.raises(ValueError, match="split nodes"):
        TreeTables(deep)


def test_explain_uses_tables_on_large_batches_with_the_same_result(small_models, monkeypatch):
    import models.explain

    bundle, features = small_models["lightgbm"], small_models["features"]
    monkeypatch.setattr(models.explain, "TABLE_MIN_ROWS", 10 ** 9)
    reference = explain(bundle, features)
    monkeypatch.setattr(models.explain, "TABLE_MIN_ROWS", 1)
    fast = explain(bundle, features)
    np.testing.assert_allclose(fast.contributions.to_numpy(), reference.contributions.to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.probability, bundle.predict_probability(features), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["logistic", "lightgbm"])
def test_reason_columns_at_once_equal_the_per_lead_reasons(small_models, kind):
    bundle, features = small_models[kind], small_models["features"]
    contributions = explain(bundle, features).contributions
    expected = reason_columns(top_reasons(contributions, features, bundle.spec))
    columns = top_reason_columns(contributions, features, bundle.spec)
    assert list(columns) == list(expected)
    for name, values in expected.items():
        assert list(columns[name]) == values, name
    assert sum(text != "" for text in columns["positive_reason_1"]) > len(features) // 2


def test_score_with_reason_columns_matches_score_with_reasons(small_models):
    bundle, features = small_models["lightgbm"], small_models["features"].head(200)
    scores, reasons = bundle.score_with_reasons(features)
    fast_scores, columns = bundle.score_with_reason_columns(features)
    pd.testing.assert_frame_equal(fast_scores, scores)
    assert {name: list(values) for name, values in columns.items()} == reason_columns(reasons)


@pytest.mark.parametrize("windows", [(7, 30, 90), (0.25, 7)])
def test_reason_columns_at_once_equal_per_lead_reasons_for_any_spec(windows):
    """Own event types with words, sub-day windows (times in minutes and hours), random values and impacts."""
    from features.spec import FeatureSpec

    spec = FeatureSpec(event_types=("O_SENT_BACK", "Send Fine", "demo_request"),
                       event_words={"O_SENT_BACK": "sent the offer back"}, windows_days=windows)
    rng = np.random.default_rng(11)
    n = 3_000
    features = pd.DataFrame(index=pd.RangeIndex(n))
    for name in spec.feature_names:
        if name in spec.categorical_feature_names:
            features[name] = rng.choice(["a", "b", None], size=n)
        elif name.startswith(("days_since_", "lead_age")):
            features[name] = np.where(rng.random(n) < 0.2, np.nan, rng.exponential(1.5, size=n))
        elif name.startswith("events_") and "trend" not in name:
            features[name] = rng.poisson(1.2, size=n).astype(float)
        else:
            features[name] = rng.normal(size=n)
    contributions = pd.DataFrame(rng.normal(scale=0.4, size=(n, len(spec.feature_names))),
                                 columns=spec.feature_names)
    expected = reason_columns(top_reasons(contributions, features, spec))
    columns = top_reason_columns(contributions, features, spec)
    for name, values in expected.items():
        assert list(columns[name]) == values, name
    assert any("minutes ago" in text or "hours ago" in text for text in expected["positive_reason_1"]) == \
        (min(windows) < 1)


def test_tables_give_lightgbms_own_raw_scores_bit_for_bit(small_models):
    booster, codes = _booster_and_awkward_codes(small_models)
    np.testing.assert_array_equal(TreeTables(booster).raw_margin(codes), booster.predict(codes, raw_score=True))


def test_large_batches_score_with_the_tables_as_lightgbm_predicts(small_models, monkeypatch):
    import models.explain

    bundle, features = small_models["lightgbm"], _awkward_rows(small_models["lightgbm"], small_models["features"])
    monkeypatch.setattr(models.explain, "TABLE_MIN_ROWS", 1)
    scores = bundle.score(features)
    expected = bundle.predict_probability(features)
    np.testing.assert_allclose(scores["probability"], expected, rtol=0, atol=1e-12)
    assert (scores["score"] == np.rint(expected * 100)).all()


def test_reason_texts_written_for_one_chunk_are_the_next_chunks_texts(small_models):
    """Texts kept across calls of the same spec: a chunk scored after another equals its reasons alone."""
    from models.reasons import _written_texts

    bundle, features = small_models["lightgbm"], small_models["features"]
    contributions = explain(bundle, features).contributions
    half = len(features) // 2
    _written_texts(bundle.spec).clear()
    top_reason_columns(contributions.iloc[:half], features.iloc[:half], bundle.spec)
    assert len(_written_texts(bundle.spec)) > 10
    later = top_reason_columns(contributions.iloc[half:], features.iloc[half:], bundle.spec)
    expected = reason_columns(top_reasons(contributions.iloc[half:], features.iloc[half:], bundle.spec))
    assert {name: list(values) for name, values in later.items()} == expected


@pytest.mark.parametrize("n", [3, 5, 40])
def test_reason_columns_equal_the_per_row_reasons_on_awkward_rows(small_models, n):
    """The vectorised columns against the per-row function (``top_reasons``, one text per lead) on rows built
    to trip them: missing values, unseen categories, zeros; tied impacts, impacts on a half cent, on the
    threshold and just under it, minus zero, NaN, rows without any reason; more reasons asked than factors."""
    from models.reasons import _family_matrix, _written_texts

    bundle = small_models["lightgbm"]
    features = _awkward_rows(bundle, small_models["features"])
    # Counts are never missing (the builder counts none as 0), and a text reads them as whole numbers.
    counts = [name for name in features.columns if name.startswith(("events_", "active_days_")) and "trend" not in name]
    features[counts] = features[counts].fillna(0.0)
    contributions = explain(bundle, features).contributions
    values = contributions.to_numpy(copy=True)
    names, indicator = _family_matrix(bundle.spec, tuple(contributions.columns))
    single = [names.index(family) for family in ("industry", "country", "lead_source", "seniority")]
    column_of = {k: int(np.flatnonzero(indicator[:, k])[0]) for k in single}
    rng = np.random.default_rng(4)
    for row in rng.choice(len(values), size=len(values) // 3, replace=False):
        kind = row % 6
        if kind == 0:  # every factor of one size tied: the earlier factor first
            values[row] = 0.004
        elif kind == 1:  # half cents either way, exactly the threshold, just under it
            for k, impact in zip(single, (0.125, -0.125, 0.01, 0.0099999)):
                values[row, column_of[k]] = impact
        elif kind == 2:  # nothing moves this lead: no reason on either side
            values[row] = -0.0
        elif kind == 3:  # a factor that cannot be ranked
            values[row, column_of[single[0]]] = np.nan
        elif kind == 4:  # two single-column factors tied at the top, two tied at the bottom
            values[row] = 0.0
            values[row, [column_of[k] for k in single]] = (2.5, 2.5, -1.005, -1.005)
    contributions = pd.DataFrame(values, index=contributions.index, columns=contributions.columns)
    expected = reason_columns(top_reasons(contributions, features, bundle.spec, n=n), n=n)
    _written_texts(bundle.spec).clear()
    columns = top_reason_columns(contributions, features, bundle.spec, n=n)
    assert list(columns) == list(expected)
    for name, texts in expected.items():
        assert [type(text) for text in columns[name]] == [str] * len(texts), name
        assert list(columns[name]) == texts, name
    shown = {text for texts in expected.values() for text in texts}
    assert "" in shown and any(text.endswith(("(+0.12)", "(-0.12)", "(+0.01)")) for text in shown)


def test_top_factors_rank_as_a_stable_argsort():
    """Ties to the lower column, NaN last, minus zero equal to zero; fewer factors than asked."""
    from models.reason_ranking import top_factors

    rng = np.random.default_rng(8)
    for trial in range(60):
        rows, factors, n = rng.integers(0, 40), rng.integers(1, 30), int(rng.integers(1, 6))
        impact = np.round(rng.normal(size=(rows, factors)), 1)
        impact[rng.random(impact.shape) < 0.1] = np.nan
        impact[rng.random(impact.shape) < 0.1] = 0.0
        impact[rng.random(impact.shape) < 0.05] = -0.0
        chosen = top_factors(impact, n=n, min_impact=0.1)
        for label, sign in (("positive", 1.0), ("negative", -1.0)):
            order, value, valid = chosen[label]
            expected = np.argsort(-sign * impact, axis=1, kind="stable")[:, :n]
            np.testing.assert_array_equal(order, expected)
            np.testing.assert_array_equal(value, np.take_along_axis(impact, expected, axis=1))
            np.testing.assert_array_equal(valid, sign * value >= 0.1)


def test_a_saved_bundle_carries_its_tables_and_a_loaded_one_uses_them(small_models, tmp_path):
    """Saved as plain arrays beside the model: read back for the loaded booster, the same contributions and
    raw scores as LightGBM's; tables of another layout or shape are left out and built at first use."""
    import joblib

    import models.explain
    from models.bundle import ModelBundle
    from models.estimators import inner_pipeline

    path = small_models["lightgbm"].save(tmp_path / "bundle.joblib")
    payload = joblib.load(path)
    # What a reader of before this key reads is all there, as it was.
    assert {"spec", "model", "thresholds", "metadata", "reference"} <= set(payload)
    booster = inner_pipeline(payload["model"])[-1].booster_
    built = TreeTables(booster).arrays()
    assert payload["tree_tables"].keys() == built.keys()
    for name, value in built.items():
        np.testing.assert_array_equal(payload["tree_tables"][name], value, err_msg=name)

    loaded = ModelBundle.load(path)
    booster = inner_pipeline(loaded.model)[-1].booster_
    assert booster in models.explain._tables  # read with the bundle, before any use
    _, codes = _booster_and_awkward_codes(small_models)
    np.testing.assert_allclose(tree_tables(booster).contributions(codes), booster.predict(codes, pred_contrib=True),
                               rtol=0, atol=1e-9)
    np.testing.assert_array_equal(tree_tables(booster).raw_margin(codes), booster.predict(codes, raw_score=True))

    for name, saved in (("another layout", {**payload["tree_tables"], "layout": 0}),
                        ("another booster's", {**payload["tree_tables"], "n_trees": booster.num_trees() + 1}),
                        ("none", None)):
        joblib.dump({**payload, "tree_tables": saved}, tmp_path / "other.joblib")
        other = inner_pipeline(ModelBundle.load(tmp_path / "other.joblib").model)[-1].booster_
        assert other not in models.explain._tables, name
        np.testing.assert_array_equal(tree_tables(other).raw_margin(codes), other.predict(codes, raw_score=True))
    assert joblib.load(small_models["logistic"].save(tmp_path / "logistic.joblib"))["tree_tables"] is None
