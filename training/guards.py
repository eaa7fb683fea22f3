"""Minimum-data guard: refuse to train on too few conversions, warn about thin splits."""

from __future__ import annotations

import warnings

import numpy as np


class SmallSplitWarning(UserWarning):
    """A split holds so few conversions that its figures are noisy."""


def check_minimum_data(labels, *, min_positives: int = 40, min_negatives: int = 40) -> None:
    """Refuse training data with fewer than ``min_positives`` converted or ``min_negatives`` other examples."""
    labels = np.asarray(labels, dtype=int)
    positives = int(labels.sum())
    negatives = int(labels.size - positives)
    if positives < min_positives or negatives < min_negatives:
        raise ValueError(
            f"Too little training data: {positives} converted and {negatives} non-converted examples; "
            f"training needs at least {min_positives} converted and {min_negatives} non-converted "
            "(set min_positives / min_negatives in the config's [training] section to change this). "
            "Add more closed leads or a longer history.")


def warn_small_splits(labels_by_split: dict, *, min_positives: int = 20) -> list[str]:
    """Warn about each split with fewer than ``min_positives`` conversions; return their names."""
    small = []
    for name, labels in labels_by_split.items():
        positives = int(np.asarray(labels, dtype=int).sum())
        if positives < min_positives:
            small.append(name)
            message = (f"the {name} split has only {positives} converted examples (fewer than "
                       f"{min_positives}): its figures are noisy")
            warnings.warn(message, SmallSplitWarning, stacklevel=2)
    return small
