"""Drift at scoring time: a scored base counted into the model's reference bins, chunk by chunk, and compared.

The reference itself is built at training time and travels in the bundle (:mod:`models.monitoring`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.monitoring import (PSI_BANDS, UNSEEN_BANDS, band, bin_labels, categorical_bins, numeric_bins,
                               psi)
from models.tiers import TIERS


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
                bins, unseen = categorical_bins(values, entry)
                self.unseen_[name] += unseen
            else:
                bins = numeric_bins(values, entry)
            self.counts_[name] += np.bincount(bins, minlength=len(entry["shares"]))
        self.score_counts_ += np.bincount(numeric_bins(pd.Series(np.asarray(probability, dtype=float)),
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
                           score_bins=pd.DataFrame({"bin": bin_labels(score_entry),
                                                    "reference_share": score_entry["shares"],
                                                    "share": score_shares}),
                           tiers=tiers, tier_psi=tier_psi, status=status, psi_bands=self.psi_bands,
                           unseen_bands=self.unseen_bands)


def _worse(first: str, second: str) -> str:
    order = {"ok": 0, "warning": 1, "alert": 2}
    return first if order[first] >= order[second] else second
