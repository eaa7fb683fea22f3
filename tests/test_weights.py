"""Per-lead training weights: each lead weighs one, shared by its snapshots."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from training.weights import fit_weighted, lead_weights


def test_each_lead_weighs_the_same_and_weights_average_one():
    # Lead 7 has three rows, 9 and 5 one each: raw weights 1/3, 1/3, 1, 1/3, 1 sum to 3 over
    # 5 rows, rescaled by 5/3 -> 5/9 for lead 7's rows, 5/3 for the others; each lead sums to 5/3.
    weight = lead_weights(pd.Series([7, 7, 9, 7, 5]))
    np.testing.assert_allclose(weight, [5 / 9, 5 / 9, 5 / 3, 5 / 9, 5 / 3])
    assert weight.mean() == pytest.approx(1.0)


def test_one_row_per_lead_gives_ones():
    np.testing.assert_array_equal(lead_weights(["a", "b", "c"]), [1.0, 1.0, 1.0])


def test_a_row_without_a_lead_is_an_error():
    with pytest.raises(ValueError, match="needs a lead for every row.*1 missing.*rows \\[1\\]"):
        lead_weights(pd.Series([1.0, np.nan, 2.0]))


def test_weights_reach_the_final_step_of_a_pipeline_as_repeated_rows_would():
    # A weight of 2 is the row twice for an L2 logistic regression (the loss is a sum over rows).
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=60), "z": rng.normal(size=60)})
    y = (X["x"] + rng.normal(size=60) > 0).astype(int).to_numpy()
    weight = np.where(np.arange(60) < 20, 2.0, 1.0)

    def make():
        # No scaler fitted on rows: the weighted and the repeated fit must see the same inputs.
        return Pipeline([("classifier", LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000))])

    weighted = fit_weighted(make(), X, y, weight)
    repeated = make().fit(pd.concat([X, X.iloc[:20]], ignore_index=True), np.concatenate([y, y[:20]]))
    np.testing.assert_allclose(weighted[-1].coef_, repeated[-1].coef_, rtol=1e-5)
    unweighted = make().fit(X, y)
    assert not np.allclose(weighted[-1].coef_, unweighted[-1].coef_, rtol=1e-3)


def test_equal_weights_fit_exactly_as_unweighted():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x": rng.normal(size=40)})
    y = (X["x"] > 0.2).astype(int).to_numpy()
    make = lambda: Pipeline([("scale", StandardScaler()), ("classifier", LogisticRegression())])  # noqa: E731
    np.testing.assert_array_equal(fit_weighted(make(), X, y, np.ones(40))[-1].coef_, make().fit(X, y)[-1].coef_)
