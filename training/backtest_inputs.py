"""What a rolling-origin backtest runs on: rows in time order, their labels, when each label is known, the windows.

Two shapes of data: snapshots (three tables; time is each snapshot's ``as_of`` and a label is known a
horizon later) or a single lead table ordered by creation date.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.build import build_features
from features.spec import FeatureSpec
from features.timing import duration
from training.backtest import rolling_cutoffs
from training.leakage import spec_without
from training.pipeline import TrainingConfig, labelled_snapshots, latest_timestamp


@dataclass
class BacktestInputs:
    """Features and labels in time order, with what :func:`training.backtest.run_backtest` needs beside them."""

    features: pd.DataFrame
    labels: pd.Series
    times: pd.Series
    known_at: pd.Series | None
    groups: pd.Series
    spec: FeatureSpec
    windows: list
    shape: str  # "12,345 snapshots" or "9,240 leads ordered by creation date"
    per_lead_candidates: tuple


def backtest_inputs(leads, labels, events, deals, *, project=None, n_windows: int = 4, first_share: float = 0.5,
                    seed: int = 0, horizon_days=None, snapshot_every_days=None) -> BacktestInputs:
    """The backtest's rows for an export as read by :func:`crm.config.load_crm_or_config`."""
    spec = FeatureSpec() if project is None else spec_without(project.feature_spec(), project.post_outcome)
    configured = project.training_options() if project is not None else {}
    if deals is not None:  # snapshots: time is as_of, each label known a horizon later
        options = {key: value for key, value in configured.items() if key in ("horizon_days", "snapshot_every_days")}
        options.update({name: value for name, value in (("horizon_days", horizon_days),
                                                        ("snapshot_every_days", snapshot_every_days))
                        if value is not None})
        config = TrainingConfig(seed=seed, **options)
        rows, _ = labelled_snapshots(leads, deals, config=config, data_end=latest_timestamp(leads, events, deals))
        times, known_at, y = rows["as_of"], rows["as_of"] + duration(config.horizon_days), rows["label"]
        shape = f"{len(rows):,} snapshots"
        vocabulary = project.event_vocabulary() if project is not None else None
        if vocabulary is not None and events is not None:  # the log's own types, learned before the first window
            first_window = rolling_cutoffs(times, n_windows=n_windows, first_share=first_share)[0][0]
            spec, _ = vocabulary.learned_spec(spec, events, before=first_window)
    else:
        if "created_at" not in leads.columns:
            raise ValueError("backtest needs time: the lead table has no creation date. Name it as [columns] "
                             "created_at in the config.")
        keep = labels.notna().to_numpy()
        leads, y = leads.loc[keep].reset_index(drop=True), labels[keep].astype(int).reset_index(drop=True)
        rows = pd.DataFrame({"lead_id": leads["lead_id"], "as_of": pd.NaT})
        times, known_at, shape = leads["created_at"], None, f"{len(leads):,} leads ordered by creation date"
    # Per-lead weights as training uses them (the project config's [training] per_lead_candidates).
    weighting = {key: value for key, value in configured.items() if key == "per_lead_candidates"}
    return BacktestInputs(features=build_features(rows, leads, events, spec), labels=y, times=times,
                          known_at=known_at, groups=rows["lead_id"], spec=spec,
                          windows=rolling_cutoffs(times, n_windows=n_windows, first_share=first_share), shape=shape,
                          per_lead_candidates=TrainingConfig(**weighting).per_lead_candidates)
