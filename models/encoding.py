"""CategoryEncoder: fixes the category levels of string columns at fit time, for LightGBM."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from features.fresh_memory import empty_array


#: Up to this many rows a dict lookup per value beats building a pandas Categorical (one HTTP lead).
_PER_VALUE_ROWS = 64


class CategoryEncoder(TransformerMixin, BaseEstimator):
    """Turn string columns into pandas categoricals with levels learned in ``fit``.

    Levels seen fewer than ``min_frequency`` times, and levels never seen, become missing, so
    scoring a lead from a new country cannot crash or shift the codes of known ones.
    Other columns pass through as float.
    """

    def __init__(self, categorical_columns=(), *, min_frequency=20):
        self.categorical_columns = categorical_columns
        self.min_frequency = min_frequency

    def fit(self, X: pd.DataFrame, y=None):
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"CategoryEncoder expects a pandas DataFrame. Got {type(X).__name__} instead.")
        missing = [column for column in self.categorical_columns if column not in X.columns]
        if missing:
            raise ValueError(f"CategoryEncoder: columns {missing} are not in the input frame.")
        self.categories_ = {}
        for column in self.categorical_columns:
            counts = X[column].dropna().astype(str).value_counts()
            self.categories_[column] = sorted(counts.index[counts >= self.min_frequency])
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "categories_")
        missing = [column for column in self.feature_names_in_ if column not in X.columns]
        if missing:
            raise ValueError(f"CategoryEncoder: columns {missing} seen in fit are missing from the input.")
        columns = {}
        for column in self.feature_names_in_:
            if column in self.categories_:
                values = X[column].astype(object).where(X[column].notna(), None)
                columns[column] = pd.Categorical(values, categories=self.categories_[column])
            else:
                columns[column] = pd.to_numeric(X[column], errors="coerce").astype(float)
        return pd.DataFrame(columns, index=X.index)

    def to_codes(self, X: pd.DataFrame) -> np.ndarray:
        """The float matrix LightGBM sees: category positions (NaN when missing or unknown), numbers as float.

        Same values as ``transform`` gives LightGBM through pandas, without building categoricals:
        on one row that saves milliseconds, which is most of an HTTP request.
        """
        check_is_fitted(self, "categories_")
        columns = list(self.feature_names_in_)
        missing = [column for column in columns if column not in X.columns]
        if missing:
            raise ValueError(f"CategoryEncoder: columns {missing} seen in fit are missing from the input.")
        numeric = [column for column in columns if column not in self.categories_]
        out = empty_array((len(X), len(columns)), np.float64)  # a chunk's codes: fresh pages, no huge-page stalls
        position = {column: i for i, column in enumerate(columns)}
        values = X[numeric]
        try:
            block = values.to_numpy(dtype=float)
        except (TypeError, ValueError):
            block = values.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        out[:, [position[column] for column in numeric]] = block
        for column, categories in self.categories_.items():
            values = X[column].to_numpy(dtype=object)
            if len(values) > _PER_VALUE_ROWS:  # pandas' hash lookup; unknown and missing come back as -1
                codes = pd.Categorical(values, categories=categories).codes.astype(float)
                codes[codes < 0] = np.nan
                out[:, position[column]] = codes
            else:
                code = {category: float(i) for i, category in enumerate(categories)}
                out[:, position[column]] = [code.get(value, np.nan) for value in values]
        return out

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "categories_")
        return np.asarray(self.feature_names_in_, dtype=object)
