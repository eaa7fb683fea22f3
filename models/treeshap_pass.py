"""The compiled row loop of ``models.treeshap.TreeTables``: each row's decision pattern per tree, then its table entries.

Per row: every split node's decision (numeric, missing-aware, or categorical) sets one bit of its
tree's pattern; then each (feature, tree) table row adds its entry for that tree's pattern to the
feature's contribution. Table rows are sorted by (feature, tree), so each feature's sum runs in
tree order from zero: the order of the sparse product the numpy version used, so the same bits.
No (trees x rows) temporaries: about ten thousand operations per row, all in registers and cache.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from features.event_pass import worker_threads

#: Decision kinds, as LightGBM reads a value at a split node.
NUMERIC_NONE, NUMERIC_NAN, NUMERIC_ZERO, CATEGORICAL = 0, 1, 2, 3


def add_table_contributions(X: np.ndarray, out: np.ndarray, splits: dict, rows: dict) -> None:
    """``out[:, feature] += entries`` for every row of ``X`` (float64, rows x features), on a few threads.

    ``splits``: arrays per split node (tree, bit, feature, kind, threshold, default_left, and the
    categorical membership as start/length into one flat boolean array); ``rows``: per table row
    its tree and feature, the flat table and the patterns per table row.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    arguments = (splits["tree"], splits["bit"], splits["feature"], splits["kind"], splits["threshold"],
                 splits["default_left"], splits["category_start"], splits["category_count"], splits["membership"],
                 splits["n_trees"], rows["tree"], rows["feature"], rows["table"], rows["patterns"])
    threads = worker_threads(len(X), rows_per_thread=5_000)
    if threads == 1:
        _add_rows(X, out, 0, len(X), *arguments)
        return
    bounds = np.linspace(0, len(X), threads + 1).astype(np.int64)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda t: _add_rows(X, out, bounds[t], bounds[t + 1], *arguments), range(threads)))


@njit(cache=True, nogil=True)
def _add_rows(X, out, first, last, split_tree, split_bit, split_feature, split_kind, split_threshold,
              split_default_left, category_start, category_count, membership, n_trees, row_tree, row_feature,
              table, patterns):
    pattern = np.zeros(n_trees, dtype=np.int64)
    for i in range(first, last):
        pattern[:] = 0
        for s in range(len(split_tree)):
            x = X[i, split_feature[s]]
            kind = split_kind[s]
            if kind == CATEGORICAL:
                # The integer part of the value in the split's set goes left; missing, negative and
                # unseen values go right.
                left = False
                if not np.isnan(x):
                    whole = np.trunc(x)
                    if 0 <= whole < category_count[s]:
                        left = membership[category_start[s] + np.int64(whole)]
            elif kind == NUMERIC_NAN:
                left = split_default_left[s] if np.isnan(x) else x <= split_threshold[s]
            else:
                value = 0.0 if np.isnan(x) else x  # LightGBM reads NaN as 0 unless NaN has its own branch
                left = value <= split_threshold[s]
                if kind == NUMERIC_ZERO and -1e-35 <= value <= 1e-35:  # LightGBM's kZeroThreshold
                    left = split_default_left[s]
            if left:
                pattern[split_tree[s]] |= np.int64(1) << split_bit[s]
        for r in range(len(row_tree)):
            out[i, row_feature[r]] += table[r * patterns + pattern[row_tree[r]]]
