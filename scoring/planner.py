"""The tier planner's numbers: the open lead base and the test leads as probability bins, cut-offs from volumes.

Everything the planner page shows is computed in the browser from the summary built here, so a
control moves without a request; the same cut-off rules are applied here when a policy is saved,
so what the page showed is what gets saved. Volumes are per week: the open base is a stock of
leads, and ``leads_per_week`` (stated on the page; by default the base spread over the model's
horizon, since a lead stays open about that long) turns a share of it into a weekly flow.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from models.score_bins import DEFAULT_BINS, bin_edge, probability_bins

#: Weeks in an average month (52 / 12), for volumes per month.
WEEKS_PER_MONTH = 52 / 12
SETTING_MODES = ("probability", "per_week", "per_month", "capacity")


class OpenBase:
    """The open lead base the latest scoring run scored: its output file, or the newest run of a score history.

    Bins are rebuilt only when the file changes, so the page follows each new scoring run.
    """

    def __init__(self, *, scores=None, history=None, bins: int = DEFAULT_BINS):
        self.scores, self.history, self.bins = scores, history, bins
        self._cached = (None, None, None)

    def binned(self) -> tuple[pd.DataFrame, dict] | None:
        """``(bins, facts)`` of the latest scores, or None when there is nothing scored yet."""
        path = self._path()
        if path is None or not path.exists():
            return None
        stamp = (str(path), os.stat(path).st_mtime_ns)
        if self._cached[0] != stamp:
            probability, versions = _read_scores(path)
            facts = {"source": str(path), "leads": int(probability.size),
                     "scored_at": pd.Timestamp(stamp[1], unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M UTC"),
                     "model_versions": versions}
            self._cached = (stamp, probability_bins(probability, bins=self.bins), facts)
        return self._cached[1], self._cached[2]

    def _path(self) -> Path | None:
        if self.scores is not None:
            return Path(self.scores)
        if self.history is not None:
            from scoring.history import ScoreHistory

            return ScoreHistory(self.history).latest_run_file()
        return None


def planner_summary(*, identity: dict, trained: dict, current: dict, open_base, test_bins: pd.DataFrame | None,
                    rules: tuple | None, history: list, won_amount: float | None, horizon_days: float | None,
                    bins: int = DEFAULT_BINS) -> dict:
    """Everything the page needs, as plain JSON values: bins as column lists, never lead rows."""
    horizon = float(horizon_days or 90)
    summary = {
        "model": {"name": identity.get("model_name"), "version": str(identity.get("model_version", "")),
                  "uri": identity.get("model_uri"), "horizon_days": horizon},
        "bins": bins, "trained": trained, "current": current, "history": history,
        "won_amount": won_amount, "open": None, "test": None, "rules": None, "leads_per_week": None,
    }
    if open_base is not None:
        frame, facts = open_base
        summary["open"] = {**facts, "bins": _columns(frame, ("bin", "leads", "expected", "variance"))}
        summary["leads_per_week"] = default_leads_per_week(facts["leads"], horizon)
    if test_bins is not None and len(test_bins):
        summary["test"] = {"leads": int(test_bins["leads"].sum()), "converted": int(test_bins["converted"].sum()),
                           "bins": _columns(test_bins, ("bin", "leads", "converted"))}
    if rules is not None:
        gains, facts = rules
        summary["rules"] = {**facts, "leads": int(gains["leads"].sum()), "converted": int(gains["converted"].sum()),
                            "gains": _columns(gains, ("score", "leads", "converted"))}
    return summary


def default_leads_per_week(base_leads: int, horizon_days: float) -> float:
    """Leads entering the base per week when the user states none: the base turned over once per horizon."""
    return round(base_leads / max(horizon_days / 7, 1e-9), 1)


def cutoff_from_setting(setting: dict, open_bins: pd.DataFrame | None, *, leads_per_week: float | None,
                        bins: int = DEFAULT_BINS, what: str = "SQL") -> float:
    """The probability cut-off a setting asks for; ``ValueError`` in one sentence when it makes no sense.

    ``setting`` is ``{"mode": "probability", "value": 0.3}``, ``{"mode": "per_week", "value": 40}``,
    ``{"mode": "per_month", "value": 170}`` or ``{"mode": "capacity", "reps": 4, "per_rep": 10}``
    (leads per rep per week). A volume takes the highest bin edge at which at least that many
    leads of the open base qualify, scaled from per week to the base by ``leads_per_week``.
    """
    mode = setting.get("mode", "probability")
    if mode not in SETTING_MODES:
        raise ValueError(f"The {what} setting's mode must be one of {', '.join(SETTING_MODES)}; got {mode!r}.")
    if mode == "probability":
        return _number(setting.get("value"), f"the {what} probability")
    if mode == "capacity":
        reps, per_rep = _number(setting.get("reps"), f"the {what} reps"), _number(setting.get("per_rep"),
                                                                                   f"the {what} leads per rep")
        if reps <= 0 or per_rep <= 0:
            raise ValueError(f"A {what} capacity of {reps:g} reps x {per_rep:g} leads per rep a week is zero; "
                             "nothing can be planned on it.")
        per_week = reps * per_rep
    else:
        value = _number(setting.get("value"), f"the {what} volume")
        per_week = value if mode == "per_week" else value / WEEKS_PER_MONTH
        if per_week <= 0:
            raise ValueError(f"A {what} volume of {value:g} a {'week' if mode == 'per_week' else 'month'} is zero; "
                             "give a positive volume.")
    if open_bins is None or not len(open_bins) or not leads_per_week or leads_per_week <= 0:
        raise ValueError(f"A {what} volume needs a scored open base and a positive number of leads a week; "
                         "serve the planner with --scores or --history.")
    if per_week > leads_per_week:
        raise ValueError(f"{per_week:,.1f} {what}s a week is more than the whole base delivers "
                         f"({leads_per_week:,.1f} leads a week).")
    wanted = per_week / leads_per_week * int(open_bins["leads"].sum())
    ordered = open_bins.sort_values("bin", ascending=False)
    reaching = ordered["bin"].to_numpy()[np.cumsum(ordered["leads"].to_numpy()) >= wanted - 1e-9]
    edge = bin_edge(int(reaching[0]), bins=bins)
    if edge <= 0:
        raise ValueError(f"{per_week:,.1f} {what}s a week would take every lead of the base; give a smaller volume.")
    return edge


def _number(value, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what[0].upper()}{what[1:]} must be a number; got {value!r}.") from None
    if not np.isfinite(number):
        raise ValueError(f"{what[0].upper()}{what[1:]} must be a finite number; got {value!r}.")
    return number


def _columns(frame: pd.DataFrame, names) -> dict:
    return {name: frame[name].tolist() for name in names}


def _read_scores(path: Path) -> tuple[np.ndarray, list]:
    """The ``probability`` column of a scores file (Parquet or CSV) and the model versions that scored it."""
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        if "probability" not in names:
            raise ValueError(f"{path}: column 'probability' expected in the scores; found {names[:8]}.")
        # Arrow straight to numpy, versions deduplicated in Arrow: no pandas frame of a million strings.
        table = pq.read_table(path, columns=[c for c in ("probability", "model_version") if c in names])
        probability = table.column("probability").to_numpy(zero_copy_only=False).astype(float)
        versions = (sorted(map(str, pc.unique(table.column("model_version")).drop_null().to_pylist()))
                    if "model_version" in names else [])
        return _checked_probability(probability, path), versions
    frame = pd.read_csv(path, usecols=lambda column: column in ("probability", "model_version"))
    if "probability" not in frame.columns:
        raise ValueError(f"{path}: column 'probability' expected in the scores.")
    probability = pd.to_numeric(frame["probability"], errors="coerce").to_numpy(dtype=float)
    versions = sorted(map(str, frame["model_version"].dropna().unique())) if "model_version" in frame else []
    return _checked_probability(probability, path), versions


def _checked_probability(probability: np.ndarray, path: Path) -> np.ndarray:
    bad = ~((probability >= 0) & (probability <= 1))
    if bad.any():
        raise ValueError(f"{path}: column 'probability' must hold numbers in [0, 1]; rows "
                         f"{np.flatnonzero(bad)[:5].tolist()} do not.")
    return probability
