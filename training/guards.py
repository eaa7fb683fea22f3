"""Minimum-data guards: refuse to train on too few conversions, warn about thin splits, flag models with no signal.

Snapshot data repeats a lead at several ``as_of`` dates, so rows overstate the evidence: 28 positive
snapshots may come from 10 converting leads. Every guard counts distinct converted leads as well
as rows when it is given each row's lead id.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd


class SmallSplitWarning(UserWarning):
    """A split holds so few conversions (rows or distinct leads) that its figures are noisy."""


class NoSignalWarning(UserWarning):
    """The model does not beat the validation AUC floor: its tiers carry no information."""


def check_minimum_data(labels, *, groups=None, min_positives: int = 40, min_negatives: int = 40,
                       min_converted_leads: int = 20) -> None:
    """Refuse training data with too few converted or non-converted examples, or too few converting leads.

    ``groups`` is each row's lead id (snapshots repeat leads); without it every row is its own lead.
    """
    labels = np.asarray(labels, dtype=int)
    positives = int(labels.sum())
    negatives = int(labels.size - positives)
    converted_leads = count_converted_leads(labels, groups)
    if positives < min_positives or negatives < min_negatives:
        raise ValueError(
            f"Too little training data: {positives} converted and {negatives} non-converted examples "
            f"({converted_leads} distinct converted leads); training needs at least {min_positives} converted "
            f"and {min_negatives} non-converted (set min_positives / min_negatives in the config's [training] "
            "section to change this). Add more closed leads or a longer history.")
    if converted_leads < min_converted_leads:
        raise ValueError(
            f"Too few converting leads: the {positives} converted examples come from {converted_leads} distinct "
            f"leads; training needs at least {min_converted_leads} (set min_converted_leads in the config's "
            "[training] section to change this). Snapshots repeat a lead, so they do not add evidence. "
            "Add more closed leads or a longer history.")


def warn_small_splits(labels_by_split: dict, *, groups_by_split: dict | None = None, min_positives: int = 20,
                      min_converted_leads: int = 10) -> list[str]:
    """Warn about each split with fewer than ``min_positives`` conversions or ``min_converted_leads``
    converting leads; return their names."""
    small = []
    for name, labels in labels_by_split.items():
        labels = np.asarray(labels, dtype=int)
        positives = int(labels.sum())
        leads = count_converted_leads(labels, (groups_by_split or {}).get(name))
        if positives < min_positives or leads < min_converted_leads:
            small.append(name)
            message = (f"the {name} split has only {positives} converted examples from {leads} distinct leads "
                       f"(fewer than {min_positives} examples or {min_converted_leads} leads): its figures are noisy")
            warnings.warn(message, SmallSplitWarning, stacklevel=2)
    return small


def count_converted_leads(labels, groups=None) -> int:
    """Distinct leads with at least one converted row; every row is a lead when ``groups`` is None."""
    labels = np.asarray(labels, dtype=int)
    if groups is None:
        return int(labels.sum())
    groups = np.asarray(groups)
    if groups.shape[0] != labels.shape[0]:
        raise ValueError(f"The 'groups' parameter must give one lead id per row: {labels.shape[0]} rows. "
                         f"Got {groups.shape[0]} instead.")
    return int(pd.unique(groups[labels == 1]).size)


def has_signal(validation_auc: float, *, min_auc: float = 0.55) -> bool:
    """Whether a validation AUC beats the floor; below it the ranking, and so the tiers, is noise."""
    if not 0.5 <= min_auc < 1.0:
        raise ValueError(f"The 'min_auc' parameter of has_signal must be in [0.5, 1). Got {min_auc!r} instead.")
    return bool(validation_auc > min_auc)
