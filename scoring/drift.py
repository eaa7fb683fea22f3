"""Drift at scoring time: a scored base counted into the model's reference bins, chunk by chunk, and compared.

The reference itself is built at training time and travels in the bundle (:mod:`models.monitoring`):
the leads open at the end of the training data, as the model scored them. Each run is also
compared with the previous run of the same model version, whose bin shares (its *profile*, the
same shape as a reference, no lead rows) the run before saved: a shift since yesterday shows even
while the base is still close to the training reference.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models.expected_performance import ExpectedPerformance
from models.monitoring import (PSI_BANDS, UNSEEN_BANDS, band, bin_labels, categorical_bins, factor_of, numeric_bins,
                               psi)
from models.tiers import TIERS

#: A category's share that grows or shrinks by this factor, by at least ``MOVE_Z`` standard errors and with at
#: least ``MOVE_MIN_SHARE`` of leads on either side, alerts even when the PSI of the whole column stays low: a
#: source whose leads double (20 % -> 33 % of the base) moves the source column's PSI by only about 0.18.
MOVE_RATIO, MOVE_Z, MOVE_MIN_SHARE = 1.5, 4.0, 0.05
#: The file in the monitoring folder holding the last run's profile.
PROFILE_NAME = "last_run_profile.json"
#: What each status is called on the console and the page.
STATUS_WORDS = {"ok": "stable", "warning": "warning", "alert": "alert"}


@dataclass
class DriftReport:
    """What a monitoring run found against one reference: per feature, per factor, the score, the tier mix."""

    rows: int
    reference_rows: int
    features: pd.DataFrame  # feature, factor, words, kind, psi, status, unseen_share, missing_reference, missing_now
    score: dict  # psi, status
    score_bins: pd.DataFrame  # bin, reference_share, share
    tiers: pd.DataFrame  # tier, expected_share, share
    tier_psi: float
    status: str
    psi_bands: tuple = PSI_BANDS
    unseen_bands: tuple = UNSEEN_BANDS
    reference_source: str = "the calibration split"
    factors: pd.DataFrame = field(default_factory=pd.DataFrame)  # factor, words, status, psi, feature, features
    feature_bins: dict = field(default_factory=dict)  # feature -> bin, reference_share, share (shifted factors)
    previous: DriftReport | None = None  # the same run against the previous run's profile
    expected: dict = field(default_factory=dict)  # models.expected_performance: conversions, AUC, SQL precision
    details: dict = field(default_factory=dict)

    @property
    def overall_status(self) -> str:
        """The worst of the comparison with the reference and with the previous run."""
        return _worse(self.status, self.previous.status) if self.previous is not None else self.status

    def summary_lines(self) -> list[str]:
        """Plain lines for the console: status, score and tier PSI, the shifted factors in words."""
        lines = [f"monitoring: {STATUS_WORDS[self.overall_status].upper()} - {self.rows:,} scored leads vs "
                 f"{self.reference_source}; score PSI {self.score['psi']:.3f} "
                 f"({STATUS_WORDS[self.score['status']]}), tier mix PSI {self.tier_psi:.3f} "
                 f"({STATUS_WORDS[band(self.tier_psi, self.psi_bands)]}); {len(self.shifted_factors())} of "
                 f"{len(self.factors)} factors outside the bands (PSI {self.psi_bands[0]:g} / {self.psi_bands[1]:g})"]
        lines += [f"  {STATUS_WORDS[row.status]:<8}{row.words}: {_what_moved(row)}"
                  for row in self.shifted_factors().head(10).itertuples()]
        if self.expected:
            lines.append(expected_line(self.expected))
        if self.previous is not None:
            shifted = self.previous.shifted_factors()
            lines.append(f"  against {self.previous.reference_source}: {STATUS_WORDS[self.previous.status]}, "
                         f"score PSI {self.previous.score['psi']:.3f}, {len(shifted)} factors outside the bands")
            lines += [f"    {STATUS_WORDS[row.status]:<8}{row.words}: {_what_moved(row)}"
                      for row in shifted.head(10).itertuples()]
        return lines

    def shifted_factors(self) -> pd.DataFrame:
        """The factors at warning or alert, most shifted first."""
        return self.factors[self.factors["status"] != "ok"] if len(self.factors) else self.factors

    def metrics(self) -> dict:
        """Flat numbers for MLflow."""
        values = {"monitoring_rows": float(self.rows), "score_psi": float(self.score["psi"]),
                  "tier_mix_psi": float(self.tier_psi),
                  "features_warning": float((self.features["status"] == "warning").sum()),
                  "features_alert": float((self.features["status"] == "alert").sum()),
                  "factors_shifted": float(len(self.shifted_factors())),
                  "max_feature_psi": float(self.features["psi"].max()) if len(self.features) else 0.0}
        for row in self.tiers.itertuples():
            values[f"tier_share_{row.tier}"] = float(row.share)
        values.update({key: float(value) for key, value in self.expected.items() if not pd.isna(value)})
        if self.previous is not None:
            values["previous_run_score_psi"] = float(self.previous.score["psi"])
            values["previous_run_factors_shifted"] = float(len(self.previous.shifted_factors()))
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
            self.expected_ = ExpectedPerformance()
        self.expected_.add(probability, tiers)
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

    def report(self, *, previous: dict | None = None) -> DriftReport:
        """Compare with the model's reference and, when given, with the previous run's :meth:`profile`.

        A previous profile whose bins are not this reference's (another model) is not compared.
        """
        if not getattr(self, "rows_", 0):
            raise ValueError("Nothing to monitor: no scored rows were added.")
        report = self._compare(self.reference)
        if previous is not None and same_bins(previous, self.reference):
            report.previous = self._compare(previous)
        report.expected = self.expected_.estimate()
        return report

    def profile(self, **about) -> dict:
        """This run's shares in the reference's bins: a reference of the same shape for the next run.

        ``about`` (as_of, model name and version) is stored beside it, plain values only.
        """
        if not getattr(self, "rows_", 0):
            raise ValueError("Nothing to profile: no scored rows were added.")
        features = {name: {**entry, "shares": [float(share) for share in self.counts_[name] / self.rows_]}
                    for name, entry in self.reference["features"].items()}
        as_of = about.get("as_of")
        return {**{key: value for key, value in self.reference.items() if key not in ("features", "probability",
                                                                                       "tiers")},
                "rows": int(self.rows_), "features": features,
                "probability": {**self.reference["probability"],
                                "shares": [float(share) for share in self.score_counts_ / self.rows_]},
                "tiers": {tier: self.tier_counts_.get(tier, 0) / self.rows_ for tier in TIERS},
                "source": f"the previous run ({self.rows_:,} leads scored as of {as_of})" if as_of
                else f"the previous run ({self.rows_:,} leads)",
                "about": {key: str(value) for key, value in about.items()}}

    def _compare(self, reference: dict) -> DriftReport:
        rows, bins = [], {}
        for name, entry in reference["features"].items():
            shares = self.counts_[name] / self.rows_
            value = psi(entry["shares"], shares)
            status = band(value, self.psi_bands)
            unseen = self.unseen_[name] / self.rows_ if entry["kind"] == "categorical" else 0.0
            moved = ""
            if entry["kind"] == "categorical":
                if entry.get("complete", True):
                    status = _worse(status, band(unseen, self.unseen_bands))
                moved = moved_categories(entry, shares, reference_rows=reference["rows"], rows=self.rows_)
                status = _worse(status, "alert") if moved else status
            factor, words = factor_of(self.reference, name)
            rows.append({"feature": name, "factor": factor, "words": words, "kind": entry["kind"], "psi": value,
                         "status": status, "unseen_share": unseen, "missing_reference": entry["shares"][-1],
                         "missing_now": shares[-1], "moved": moved})
            bins[name] = pd.DataFrame({"bin": bin_labels(entry), "reference_share": entry["shares"],
                                       "share": shares})
        features = pd.DataFrame(rows, columns=["feature", "factor", "words", "kind", "psi", "status", "unseen_share",
                                               "missing_reference", "missing_now", "moved"])
        features = features.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)
        factors = _by_factor(features)
        score_entry = reference["probability"]
        score_shares = self.score_counts_ / self.rows_
        score_psi = psi(score_entry["shares"], score_shares)
        tiers = pd.DataFrame({"tier": list(TIERS),
                              "expected_share": [reference["tiers"].get(tier, 0.0) for tier in TIERS],
                              "share": [self.tier_counts_.get(tier, 0) / self.rows_ for tier in TIERS]})
        tier_psi = psi(tiers["expected_share"], tiers["share"])
        status = "ok"
        for item in (*features["status"], band(score_psi, self.psi_bands), band(tier_psi, self.psi_bands)):
            status = _worse(status, item)
        shifted = factors.loc[factors["status"] != "ok", "feature"]
        return DriftReport(rows=int(self.rows_), reference_rows=int(reference["rows"]), features=features,
                           score={"psi": score_psi, "status": band(score_psi, self.psi_bands)},
                           score_bins=pd.DataFrame({"bin": bin_labels(score_entry),
                                                    "reference_share": score_entry["shares"],
                                                    "share": score_shares}),
                           tiers=tiers, tier_psi=tier_psi, status=status, psi_bands=self.psi_bands,
                           unseen_bands=self.unseen_bands,
                           reference_source=reference.get("source", "the calibration split"), factors=factors,
                           feature_bins={name: bins[name] for name in shifted})


def expected_line(expected: dict) -> str:
    """The run's expected performance in one console line."""
    sql = (f"; expected SQL precision {expected['expected_sql_precision']:.1%} over {expected['sql_leads']:,} SQL "
           "leads" if expected["sql_leads"] else "")
    return (f"  expected (from the calibrated probabilities, before outcomes): "
            f"{expected['expected_conversions']:,.0f} conversions (95% interval "
            f"{expected['expected_conversions_low']:,.0f}-{expected['expected_conversions_high']:,.0f}) among "
            f"{expected['leads']:,} leads; ROC AUC {expected['expected_roc_auc']:.3f}{sql}")


def compare_with_previous_run(monitor: DriftMonitor, folder, **about) -> DriftReport:
    """The run's report against the reference and the previous run's profile in ``folder``; saves this run's.

    ``about`` (as_of, model name, version) is stored with the profile. The profile is saved
    whatever the status, so the next run compares with this one.
    """
    path = Path(folder) / PROFILE_NAME
    report = monitor.report(previous=load_profile(path))
    save_profile(monitor.profile(**about), path)
    return report


def moved_categories(entry: dict, shares, *, reference_rows: int, rows: int, limit: int = 3) -> str:
    """The categories whose share moved by ``MOVE_RATIO`` or more, beyond noise: "'webinar' 20% -> 33%".

    The ``limit`` largest moves (in standard errors) are named, then how many more there are.
    """
    before, now = np.asarray(entry["shares"], dtype=float), np.asarray(shares, dtype=float)
    pooled = (before * reference_rows + now * rows) / (reference_rows + rows)
    error = np.sqrt(pooled * (1 - pooled) * (1 / reference_rows + 1 / rows))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(now, 1e-12) / np.maximum(before, 1e-12)
        z = np.abs(now - before) / error
    moved = ((ratio >= MOVE_RATIO) | (ratio <= 1 / MOVE_RATIO)) & (z >= MOVE_Z) & (
        np.maximum(before, now) >= MOVE_MIN_SHARE)
    labels, shown = bin_labels(entry), np.flatnonzero(moved)[np.argsort(-z[moved], kind="stable")]
    text = ", ".join(f"'{labels[i]}' {before[i]:.0%} -> {now[i]:.0%}" for i in shown[:limit])
    return text + (f" and {len(shown) - limit} more" if len(shown) > limit else "")


def same_bins(profile: dict, reference: dict) -> bool:
    """Whether a saved profile counts into exactly this reference's bins (the same model's reference)."""
    def layout(entry):
        return entry["kind"], tuple(entry.get("edges", ())), tuple(entry.get("categories", ()))

    features = profile.get("features", {})
    return (features.keys() == reference["features"].keys()
            and all(layout(features[name]) == layout(entry) for name, entry in reference["features"].items())
            and layout(profile["probability"]) == layout(reference["probability"]))


def save_profile(profile: dict, path) -> Path:
    """Write a run's profile as JSON, atomically (a temporary file renamed): the next run reads it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(profile), encoding="utf-8")
    os.replace(temporary, path)
    return path


def load_profile(path) -> dict | None:
    """The profile a previous run saved at ``path``, or None when there is none yet."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: the previous run's monitoring profile is not valid JSON ({error}); remove it "
                         "to start the comparison afresh.") from None


def _by_factor(features: pd.DataFrame) -> pd.DataFrame:
    """One row per factor: its worst status, its largest PSI, the feature that has it, how many features it has."""
    order = {"ok": 0, "warning": 1, "alert": 2}
    rows = []
    for factor, group in features.groupby("factor", sort=False):
        worst = group.iloc[group["status"].map(order).to_numpy().argmax()]["status"]
        top = group.iloc[0]  # sorted by PSI already
        rows.append({"factor": factor, "words": top["words"], "status": worst, "psi": float(top["psi"]),
                     "feature": top["feature"], "features": len(group), "kind": top["kind"],
                     "unseen_share": float(group["unseen_share"].max()),
                     "missing_reference": float(top["missing_reference"]), "missing_now": float(top["missing_now"]),
                     "moved": "; ".join(text for text in group["moved"] if text)})
    table = pd.DataFrame(rows, columns=["factor", "words", "status", "psi", "feature", "features", "kind",
                                        "unseen_share", "missing_reference", "missing_now", "moved"])
    table["rank"] = table["status"].map(order)
    return (table.sort_values(["rank", "psi"], ascending=False, kind="stable").drop(columns="rank")
            .reset_index(drop=True))


def _what_moved(row) -> str:
    """The biggest move of a factor in words: missing values, unseen categories, or its PSI."""
    parts = [f"PSI {row.psi:.3f} ({row.feature})"]
    if row.missing_now - row.missing_reference >= 0.05:
        parts.append(f"missing in {row.missing_now:.0%} of leads (was {row.missing_reference:.0%})")
    if row.unseen_share >= 0.05:
        parts.append(f"{row.unseen_share:.0%} of leads in categories never seen in training")
    if row.moved:
        parts.append(f"shares moved: {row.moved}")
    return "; ".join(parts)


def _worse(first: str, second: str) -> str:
    order = {"ok": 0, "warning": 1, "alert": 2}
    return first if order[first] >= order[second] else second
