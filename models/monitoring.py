"""The monitoring reference a model carries: binned distributions of its features, score and tiers.

The reference is made once at training time from what a scoring run will be compared with: the
leads open at the end of the training data, as the fitted model scores them
(:func:`open_lead_reference`). Comparing a scored base with snapshots of the calibration split
instead compared unlike with unlike (snapshots of leads at every age against today's open base,
older on average): the demo's own stationary data raised 21 alerts. The reference travels in the
model bundle as plain values: per feature its bin edges (numbers) or categories and the share of
rows in each bin, missing values as a bin of their own; the same for the probability; the tier
shares; each categorical feature's known categories; and each feature's factor with the factor's
words (:mod:`models.factor_words`), so a report groups by factor. A scoring run counts its rows into
the same bins chunk by chunk (:class:`scoring.drift.DriftMonitor`), so memory does not grow with
the lead base.

PSI is computed here, in a few lines of numpy, rather than by a drift library: the formula is
one line (``sum((a - e) * ln(a / e))`` over bins, shares floored at 1e-4 so an empty bin is
finite), the binning must be the stored reference's (libraries such as evidently or nannyml
re-bin from raw reference data, which a model bundle should not carry: it would hold lead rows),
and none of them is light (each brings its own pinned stack).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.build import build_features
from features.snapshots import open_leads
from models.tiers import TIERS

#: The common PSI bands: below 0.1 stable, 0.1-0.25 a moderate shift worth a look, above 0.25 significant.
PSI_BANDS = (0.1, 0.25)
#: Shares of rows with a category the training reference never saw: warn, alert.
UNSEEN_BANDS = (0.05, 0.25)
MISSING_BIN = "(missing)"
OTHER_BIN = "(other)"
_FLOOR = 1e-4


def open_lead_reference(model, spec, thresholds, leads: pd.DataFrame, events, deals, *, as_of,
                        max_rows: int = 200_000, seed: int = 0) -> dict | None:
    """The reference of the leads open at ``as_of`` (the end of the training data) as ``model`` scores them.

    What a scoring run on that day would have seen, so a later run on data of the same kind
    compares like with like. Over ``max_rows`` open leads, a seeded sample (the bins need shares,
    not every lead). None when no lead is open then.
    """
    from models.factor_words import factor_words, feature_families

    snapshots = open_leads(leads, deals, as_of)
    if len(snapshots) == 0:
        return None
    if len(snapshots) > max_rows:
        snapshots = snapshots.sample(max_rows, random_state=seed).sort_index()
    features = build_features(snapshots.reset_index(drop=True), leads, events, spec)[spec.feature_names]
    probability = model.predict_proba(features)[:, 1]
    families = feature_families(spec)
    return build_reference(features, probability, thresholds.assign(probability),
                           categorical=spec.categorical_feature_names,
                           source=f"the {len(snapshots):,} leads open at {pd.Timestamp(as_of)} (end of the training "
                                  "data), as the model scored them",
                           factors={name: (families[name], factor_words(families[name], spec))
                                    for name in spec.feature_names})


def build_reference(features: pd.DataFrame, probability, tiers, *, categorical=(), n_bins: int = 10,
                    max_categories: int = 30, max_known: int = 5_000, source: str = "the calibration split",
                    factors: dict | None = None) -> dict:
    """The reference of ``features`` (one row per lead or snapshot), their probabilities and tiers.

    Numeric features get up to ``n_bins`` equal-frequency bins (fewer where values repeat);
    categorical ones a bin for each of their ``max_categories`` most frequent values and one for
    the rest. Up to ``max_known`` categories are kept to recognise unseen ones. ``source`` says
    in words which rows these are; ``factors`` maps a feature to its ``(factor, words)``.
    """
    if len(features) == 0:
        raise ValueError("The training reference needs at least one row. Got an empty feature frame.")
    categorical = set(categorical)
    reference = {"rows": int(len(features)), "source": source, "features": {}}
    if factors is not None:
        reference["factors"] = {name: list(factors[name]) for name in features.columns if name in factors}
    for name in features.columns:
        if name in categorical:
            reference["features"][name] = _categorical_reference(features[name], max_categories, max_known)
        else:
            reference["features"][name] = _numeric_reference(features[name], n_bins)
    reference["probability"] = _numeric_reference(pd.Series(np.asarray(probability, dtype=float)), n_bins)
    tiers = pd.Series(np.asarray(tiers, dtype=object))
    reference["tiers"] = {tier: float((tiers == tier).mean()) for tier in TIERS}
    return reference


def psi(expected, actual, *, floor: float = _FLOOR) -> float:
    """Population stability index of two share vectors over the same bins (each adds up to 1)."""
    expected = np.maximum(np.asarray(expected, dtype=float), floor)
    actual = np.maximum(np.asarray(actual, dtype=float), floor)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def band(value: float, bands=PSI_BANDS) -> str:
    """``ok`` below the first band, ``warning`` from it, ``alert`` from the second."""
    if value >= bands[1]:
        return "alert"
    return "warning" if value >= bands[0] else "ok"


def _numeric_reference(values: pd.Series, n_bins: int) -> dict:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    present = numbers[~np.isnan(numbers)]
    edges = (np.unique(np.quantile(present, np.linspace(0, 1, n_bins + 1)[1:-1])) if present.size
             else np.empty(0))
    entry = {"kind": "numeric", "edges": [float(edge) for edge in edges]}
    counts = np.bincount(numeric_bins(values, entry), minlength=len(edges) + 2)
    entry["shares"] = [float(share) for share in counts / len(values)]
    return entry


def numeric_bins(values: pd.Series, entry: dict) -> np.ndarray:
    """Bin i holds edges[i-1] < x <= edges[i]; the last bin holds missing values."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    edges = np.asarray(entry["edges"], dtype=float)
    bins = np.searchsorted(edges, numbers, side="left")
    bins[np.isnan(numbers)] = len(edges) + 1
    return bins


def _categorical_reference(values: pd.Series, max_categories: int, max_known: int) -> dict:
    labels = _labels(values)
    counts = labels[labels.notna()].value_counts()
    entry = {"kind": "categorical", "categories": [str(value) for value in counts.index[:max_categories]],
             "known": [str(value) for value in counts.index[:max_known]],
             "complete": bool(len(counts) <= max_known)}
    bins, _ = categorical_bins(values, entry)
    entry["shares"] = [float(share) for share in
                       np.bincount(bins, minlength=len(entry["categories"]) + 2) / len(values)]
    return entry


def categorical_bins(values: pd.Series, entry: dict) -> tuple[np.ndarray, int]:
    """Bins: one per reference category, then other, then missing; and the count of unseen categories."""
    labels = _labels(values)
    categories = entry["categories"]
    positions = pd.Series(np.arange(len(categories)), index=pd.Index(categories, dtype=object))
    bins = labels.map(positions).to_numpy(dtype=float, na_value=np.nan)
    missing = labels.isna().to_numpy()
    bins = np.where(np.isnan(bins), len(categories), bins)
    bins[missing] = len(categories) + 1
    unseen = int((~labels[~missing].isin(set(entry["known"]))).sum())
    return bins.astype(np.int64), unseen


def _labels(values: pd.Series) -> pd.Series:
    """Category labels as Python strings, missing as None (category, object and string columns alike)."""
    labels = values.astype(object)
    missing = pd.isna(labels)
    return labels.astype(str).where(~missing, None)


def factor_of(reference: dict, feature: str) -> tuple[str, str]:
    """``(factor, words)`` of a reference's feature; a reference without factors makes each feature its own."""
    factor, words = reference.get("factors", {}).get(feature, (feature, feature))
    return factor, words


def bin_labels(entry: dict) -> list[str]:
    """The names of an entry's bins: value ranges, or categories then other, and missing last."""
    if entry["kind"] == "categorical":
        return [*entry["categories"], OTHER_BIN, MISSING_BIN]
    edges = entry["edges"]
    bounds = ["-inf", *[f"{edge:.3g}" for edge in edges], "inf"]
    return [f"({low}, {high}]" for low, high in zip(bounds[:-1], bounds[1:])] + [MISSING_BIN]
