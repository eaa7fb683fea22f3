"""The run's labelled snapshots: the end of the data, the as_of schedule, and the temporal split over them."""

from __future__ import annotations

import pandas as pd

from features.contract import event_relation
from features.snapshots import as_of_schedule, build_snapshots
from features.timing import duration
from training.config import TrainingConfig
from training.split import suggestion_text, temporal_split


def split_snapshots(leads: pd.DataFrame, deals: pd.DataFrame, *, config: TrainingConfig, data_end,
                    unassigned: bool = False):
    """Labelled snapshots with their ``split`` column, the split windows and the ``as_of`` dates.

    The one place the snapshot schedule and temporal split are made, so a comparison or a
    scorecard fitted later sees exactly the training run's test snapshots. With ``unassigned``, the
    labelled snapshots no split holds stay too, with ``split`` missing: the refit fits on every one.
    """
    snapshots, as_of_dates = labelled_snapshots(leads, deals, config=config, data_end=data_end)
    split, windows = temporal_split(snapshots, horizon_days=config.horizon_days, test_days=config.test_days,
                                    calibration_days=config.calibration_days, lead_shares=config.lead_shares,
                                    by=config.split_by,
                                    seed=config.seed)
    snapshots = snapshots.assign(split=split)
    if not unassigned:
        snapshots = snapshots.dropna(subset=["split"]).reset_index(drop=True)
    return snapshots, windows, as_of_dates


def labelled_snapshots(leads: pd.DataFrame, deals: pd.DataFrame, *, config: TrainingConfig, data_end):
    """Every labelled snapshot on the run's schedule (no split) and the ``as_of`` dates: what a backtest rolls over."""
    data_end = pd.Timestamp(data_end)
    every, horizon = duration(config.snapshot_every_days), duration(config.horizon_days)
    as_of_dates = as_of_schedule(leads["created_at"].min() + every, data_end - horizon,
                                 every_days=config.snapshot_every_days)
    if len(as_of_dates) < 3:
        raise ValueError(
            f"The snapshot schedule (every {config.snapshot_every_days} days, horizon {config.horizon_days} days) "
            f"gives {len(as_of_dates)} snapshot times between the first lead ({leads['created_at'].min()}) and "
            f"the end of the data ({data_end}); training needs 3 or more. "
            + suggestion_text(data_end - leads["created_at"].min()))
    snapshots = build_snapshots(leads, deals, as_of_dates=as_of_dates, horizon_days=config.horizon_days,
                                data_end=data_end)
    return snapshots, as_of_dates


def latest_timestamp(leads: pd.DataFrame, events, deals: pd.DataFrame) -> pd.Timestamp:
    """The end of the data window: the latest timestamp in any of the three tables."""
    import duckdb

    latest_event = None
    if events is not None:  # a dated lead table with deals but no event log
        with duckdb.connect() as con:
            latest_event, = event_relation(con, events).aggregate(
                "max(CAST(occurred_at AS TIMESTAMP))").fetchall()[0]
    candidates = [leads["created_at"].max(), deals["closed_at"].max() if len(deals) else None, latest_event]
    return max(pd.Timestamp(value) for value in candidates if value is not None and not pd.isna(value))
