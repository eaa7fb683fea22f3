"""Drift monitoring: a training reference of binned distributions, and a scored base compared with it.

The reference is made once at training time from the calibration split (where the tier
thresholds were chosen, so its tier shares are the expected ones) and travels in the model
bundle as plain values: per feature its bin edges (numbers) or categories and the share of
rows in each bin, missing values as a bin of their own; the same for the probability; the tier
shares; and each categorical feature's known categories. A scoring run counts its rows into the
same bins chunk by chunk (:class:`DriftMonitor`), so memory does not grow with the lead base.

PSI is computed here, in a few lines of numpy, rather than by a drift library: the formula is
one line (``sum((a - e) * ln(a / e))`` over bins, shares floored at 1e-4 so an empty bin is
finite), the binning must be the stored reference's (libraries such as evidently or nannyml
re-bin from raw reference data, which a model bundle should not carry: it would hold lead rows),
and none of them is light (each brings its own pinned stack).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.tiers import TIERS

#: The common PSI bands: below 0.1 stable, 0.1-0.25 a moderate shift worth a look, above 0.25 significant.
PSI_BANDS = (0.1, 0.25)
#: Shares of rows with a category the training reference never saw: warn, alert.
UNSEEN_BANDS = (0.05, 0.25)
MISSING_BIN = "(missing)"
OTHER_BIN = "(other)"
_FLOOR = 1e-4


def build_reference(features: pd.DataFrame, probability, tiers, *, categorical=(), n_bins: int = 10,
                    max_categories: int = 30, max_known: int = 5_000) -> dict:
    """The training reference of ``features`` (one row per snapshot), their probabilities and tiers.

    Numeric features get up to ``n_bins`` equal-frequency bins (fewer where values repeat);
    categorical ones a bin for each of their ``max_categories`` most frequent values and one for
    the rest. Up to ``max_known`` categories are kept to recognise unseen ones.
    """
    if len(features) == 0:
        raise ValueError("The training reference needs at least one row. Got an empty feature frame.")
    categorical = set(categorical)
    reference = {"rows": int(len(features)), "features": {}}
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


@dataclass
class DriftReport:
    """What a monitoring run found: a table per feature, the score, the tier mix and an overall status."""

    rows: int
    reference_rows: int
    features: pd.DataFrame  # feature, kind, psi, status, unseen_share, missing_reference, missing_now
    score: dict  # psi, status
    score_bins: pd.DataFrame  # bin, reference_share, share
    tiers: pd.DataFrame  # tier, expected_share, share
    tier_psi: float
    status: str
    psi_bands: tuple = PSI_BANDS
    unseen_bands: tuple = UNSEEN_BANDS
    details: dict = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        """Plain lines for the console: status, score and tier PSI, the worst features."""
        drifted = self.features[self.features["status"] != "ok"]
        lines = [f"monitoring: {self.status.upper()} - {self.rows:,} scored leads vs {self.reference_rows:,} "
                 f"reference rows; score PSI {self.score['psi']:.3f} ({self.score['status']}), tier mix PSI "
                 f"{self.tier_psi:.3f} ({band(self.tier_psi, self.psi_bands)}); "
                 f"{len(drifted)} of {len(self.features)} features outside the bands "
                 f"(PSI {self.psi_bands[0]:g} / {self.psi_bands[1]:g})"]
        for row in drifted.head(10).itertuples():
            unseen = f", unseen categories {row.unseen_share:.1%}" if row.kind == "categorical" else ""
            lines.append(f"  {row.status:<8}{row.feature}: PSI {row.psi:.3f}{unseen}")
        return lines

    def metrics(self) -> dict:
        """Flat numbers for MLflow."""
        values = {"monitoring_rows": float(self.rows), "score_psi": float(self.score["psi"]),
                  "tier_mix_psi": float(self.tier_psi),
                  "features_warning": float((self.features["status"] == "warning").sum()),
                  "features_alert": float((self.features["status"] == "alert").sum()),
                  "max_feature_psi": float(self.features["psi"].max()) if len(self.features) else 0.0}
        for row in self.tiers.itertuples():
            values[f"tier_share_{row.tier}"] = float(row.share)
        return values


class DriftMonitor:
    """Counts a scored base into the reference's bins, chunk by chunk; :meth:`report` compares.

    ``psi_bands`` and ``unseen_bands`` are the (warning, alert) levels.
    """

    def __init__(self, reference: dict, *, psi_bands=PSI_BANDS, unseen_bands=UNSEEN_BANDS):
        self.reference = reference
        self.psi_bands = tuple(psi_bands)
        self.unseen_bands = tuple(unseen_bands)

    def add(self, features: pd.DataFrame, probability, tiers) -> DriftMonitor:
        if not hasattr(self, "counts_"):
            self.counts_ = {name: np.zeros(len(entry["shares"]), dtype=np.int64)
                            for name, entry in self.reference["features"].items()}
            self.unseen_ = dict.fromkeys(self.counts_, 0)
            self.score_counts_ = np.zeros(len(self.reference["probability"]["shares"]), dtype=np.int64)
            self.tier_counts_ = dict.fromkeys(TIERS, 0)
            self.rows_ = 0
        for name, entry in self.reference["features"].items():
            values = features[name] if name in features.columns else pd.Series(np.nan, index=features.index)
            if entry["kind"] == "categorical":
                bins, unseen = _categorical_bins(values, entry)
                self.unseen_[name] += unseen
            else:
                bins = _numeric_bins(values, entry)
            self.counts_[name] += np.bincount(bins, minlength=len(entry["shares"]))
        self.score_counts_ += np.bincount(_numeric_bins(pd.Series(np.asarray(probability, dtype=float)),
                                                        self.reference["probability"]),
                                          minlength=len(self.score_counts_))
        for tier, count in pd.Series(np.asarray(tiers, dtype=object)).value_counts().items():
            self.tier_counts_[tier] = self.tier_counts_.get(tier, 0) + int(count)
        self.rows_ += len(features)
        return self

    def report(self) -> DriftReport:
        if not getattr(self, "rows_", 0):
            raise ValueError("Nothing to monitor: no scored rows were added.")
        rows = []
        for name, entry in self.reference["features"].items():
            shares = self.counts_[name] / self.rows_
            value = psi(entry["shares"], shares)
            status = band(value, self.psi_bands)
            unseen = self.unseen_[name] / self.rows_ if entry["kind"] == "categorical" else 0.0
            if entry["kind"] == "categorical" and entry.get("complete", True):
                status = _worse(status, band(unseen, self.unseen_bands))
            rows.append({"feature": name, "kind": entry["kind"], "psi": value, "status": status,
                         "unseen_share": unseen, "missing_reference": entry["shares"][-1],
                         "missing_now": shares[-1]})
        features = pd.DataFrame(rows, columns=["feature", "kind", "psi", "status", "unseen_share",
                                               "missing_reference", "missing_now"])
        features = features.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)
        score_entry = self.reference["probability"]
        score_shares = self.score_counts_ / self.rows_
        score_psi = psi(score_entry["shares"], score_shares)
        tiers = pd.DataFrame({"tier": list(TIERS),
                              "expected_share": [self.reference["tiers"].get(tier, 0.0) for tier in TIERS],
                              "share": [self.tier_counts_.get(tier, 0) / self.rows_ for tier in TIERS]})
        tier_psi = psi(tiers["expected_share"], tiers["share"])
        status = "ok"
        for item in (*features["status"], band(score_psi, self.psi_bands), band(tier_psi, self.psi_bands)):
            status = _worse(status, item)
        return DriftReport(rows=int(self.rows_), reference_rows=int(self.reference["rows"]), features=features,
                           score={"psi": score_psi, "status": band(score_psi, self.psi_bands)},
                           score_bins=pd.DataFrame({"bin": _bin_labels(score_entry),
                                                    "reference_share": score_entry["shares"],
                                                    "share": score_shares}),
                           tiers=tiers, tier_psi=tier_psi, status=status, psi_bands=self.psi_bands,
                           unseen_bands=self.unseen_bands)


def _numeric_reference(values: pd.Series, n_bins: int) -> dict:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    present = numbers[~np.isnan(numbers)]
    edges = (np.unique(np.quantile(present, np.linspace(0, 1, n_bins + 1)[1:-1])) if present.size
             else np.empty(0))
    entry = {"kind": "numeric", "edges": [float(edge) for edge in edges]}
    counts = np.bincount(_numeric_bins(values, entry), minlength=len(edges) + 2)
    entry["shares"] = [float(share) for share in counts / len(values)]
    return entry


def _numeric_bins(values: pd.Series, entry: dict) -> np.ndarray:
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
    bins, _ = _categorical_bins(values, entry)
    entry["shares"] = [float(share) for share in
                       np.bincount(bins, minlength=len(entry["categories"]) + 2) / len(values)]
    return entry


def _categorical_bins(values: pd.Series, entry: dict) -> tuple[np.ndarray, int]:
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


def _bin_labels(entry: dict) -> list[str]:
    edges = entry["edges"]
    bounds = ["-inf", *[f"{edge:.3g}" for edge in edges], "inf"]
    return [f"({low}, {high}]" for low, high in zip(bounds[:-1], bounds[1:])] + [MISSING_BIN]


def _worse(first: str, second: str) -> str:
    order = {"ok": 0, "warning": 1, "alert": 2}
    return first if order[first] >= order[second] else second
