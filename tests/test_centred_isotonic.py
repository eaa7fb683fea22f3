"""Centred isotonic regression on hand-worked examples: block values of isotonic, block centres as knots."""

import pickle

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from models.centred_isotonic import CentredIsotonicRegression


def test_blocks_become_their_centres_on_a_hand_worked_example():
    # Pool-adjacent-violators on 0 1 0 1 1 1: blocks {1} at 0, {2, 3} at 0.5, {4, 5, 6} at 1.
    # Centres: 1, 2.5, 5; the largest input 6 keeps the last value.
    fitted = CentredIsotonicRegression(out_of_bounds="clip").fit([1, 2, 3, 4, 5, 6], [0, 1, 0, 1, 1, 1])
    np.testing.assert_allclose(fitted.X_thresholds_, [1, 2.5, 5, 6])
    np.testing.assert_allclose(fitted.y_thresholds_, [0, 0.5, 1, 1])
    # 2 lies two thirds of the way from 1 to 2.5 on 0 -> 0.5; 3 a fifth of the way from 2.5 to 5 on 0.5 -> 1.
    np.testing.assert_allclose(fitted.predict([0, 1, 2, 2.5, 3, 5, 5.5, 7]),
                               [0, 0, 1 / 3, 0.5, 0.6, 1, 1, 1])
    # Plain isotonic ties 2 and 3 (both 0.5): the centred map keeps them apart.
    plain = IsotonicRegression(out_of_bounds="clip").fit([1, 2, 3, 4, 5, 6], [0, 1, 0, 1, 1, 1])
    assert plain.predict([2])[0] == plain.predict([3])[0] == 0.5


def test_weights_move_the_centre_and_zero_weights_drop_rows():
    # The row at 4 weighs nothing. Targets 1 (weight 1) at 2 and 0 (weight 3) at 3 violate the order and
    # pool: (1 * 1 + 3 * 0) / 4 = 0.25, centred at (1 * 2 + 3 * 3) / 4 = 2.75; 0 at 1 stays alone.
    fitted = CentredIsotonicRegression(out_of_bounds="clip").fit([1, 2, 3, 4], [0, 1, 0, 1], sample_weight=[1, 1, 3, 0])
    np.testing.assert_allclose(fitted.X_thresholds_, [1, 2.75, 3])
    np.testing.assert_allclose(fitted.y_thresholds_, [0, 0.25, 0.25])
    assert fitted.X_max_ == 3


def test_ranking_kept_between_centres_and_calibration_of_blocks_kept():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=4_000)
    y = (rng.random(4_000) < 1 / (1 + np.exp(-2 * scores))).astype(int)
    centred = CentredIsotonicRegression(out_of_bounds="clip").fit(scores, y)
    plain = IsotonicRegression(out_of_bounds="clip").fit(scores, y)
    inside = np.sort(scores[(scores > centred.X_thresholds_[1]) & (scores < centred.X_thresholds_[-2])])
    assert np.all(np.diff(centred.predict(inside)) > 0)
    assert len(np.unique(plain.predict(inside))) < len(inside) / 10  # what the centring removes: steps
    # Each plain block's value is a centred knot's value, and the knots' values are the blocks' ones.
    assert set(np.round(centred.y_thresholds_, 12)) == set(np.round(np.unique(plain.predict(scores)), 12))


def test_pickling_rebuilds_the_centred_map():
    fitted = CentredIsotonicRegression(out_of_bounds="clip").fit([1, 2, 3, 4, 5, 6], [0, 1, 0, 1, 1, 1])
    restored = pickle.loads(pickle.dumps(fitted))
    # The pickled model still predicts too (scikit-learn's own pickling would strip its map).
    np.testing.assert_array_equal(restored.predict([2, 3, 4.5]), fitted.predict([2, 3, 4.5]))
    assert restored.predict([2])[0] == pytest.approx(1 / 3)


def test_one_block_is_constant():
    fitted = CentredIsotonicRegression(out_of_bounds="clip").fit([1, 2, 3], [1, 0, 0])
    np.testing.assert_allclose(fitted.predict([0, 2, 9]), [1 / 3, 1 / 3, 1 / 3])
