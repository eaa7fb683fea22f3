"""The logistic model's per-column contribution tables give the batch path's contributions, row by row."""

import numpy as np
import pandas as pd
import pytest

from models.explain import _linear_batch, explain
from models.linear_contributions import linear_contributions


@pytest.fixture
def logistic(small_models):
    return small_models["logistic"], small_models["features"].reset_index(drop=True)


def test_tables_equal_the_batch_path_on_real_rows(logistic):
    bundle, features = logistic
    rows = features.iloc[:200]
    fast = linear_contributions(bundle, _linear_batch).contributions(rows)
    np.testing.assert_allclose(fast, _linear_batch(bundle, rows), rtol=0, atol=1e-9)


def test_tables_handle_missing_unknown_and_odd_values(logistic):
    bundle, features = logistic
    rows = features.iloc[:6].copy()
    categorical = bundle.spec.categorical_feature_names
    numeric = [name for name in bundle.spec.feature_names if name not in categorical]
    rows.loc[rows.index[0], categorical] = None                       # missing categories
    rows.loc[rows.index[1], categorical] = "a category never seen"    # unknown categories
    rows.loc[rows.index[2], categorical[0]] = "missing"               # the imputer's own fill value
    rows.loc[rows.index[3], numeric] = np.nan                         # every number missing
    rows.loc[rows.index[4], numeric] = 1e6                            # far out of range
    rows[numeric[0]] = rows[numeric[0]].astype(object)
    rows.loc[rows.index[5], numeric[0]] = "7"                         # a number as text: conform's coercion
    batch = _linear_batch(bundle, rows)
    fast = linear_contributions(bundle, _linear_batch).contributions(rows)
    np.testing.assert_allclose(fast, batch, atol=1e-9)
    single = explain(bundle, rows.iloc[[1]])
    whole = pd.DataFrame(batch, columns=bundle.spec.feature_names)
    np.testing.assert_allclose(single.contributions.to_numpy()[0], whole.iloc[1].to_numpy(), atol=1e-9)


def test_one_lead_probability_equals_the_batch_prediction(logistic):
    bundle, features = logistic
    for i in range(20):
        row = features.iloc[[i]]
        assert explain(bundle, row).probability[0] == pytest.approx(bundle.predict_probability(row)[0], abs=1e-12)
