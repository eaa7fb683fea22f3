"""Labelled snapshots: (lead, as_of) pairs with the outcome in the horizon that follows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.timing import duration, duration_days


def build_snapshots(leads: pd.DataFrame, deals: pd.DataFrame, *, as_of_dates, horizon_days: float | str = 90,
                    data_end=None) -> pd.DataFrame:
    """One row per lead open at each ``as_of``: ``lead_id``, ``as_of``, ``label``.

    A lead is open at ``as_of`` when it was created before it and had no deal closed before it.
    ``label`` is 1 when the lead has a ``won`` deal with ``as_of <= closed_at < as_of + horizon``.
    A snapshot whose horizon runs past ``data_end`` is censored and left out, unless the lead
    closed before ``data_end``, when its label is known. ``horizon_days`` is a duration: days
    (``90``, ``0.25``) or text (``"6h"``, ``"90d"``).
    """
    horizon = duration(horizon_days, name="The 'horizon_days' parameter of build_snapshots")
    as_of_dates = pd.DatetimeIndex(sorted(set(pd.to_datetime(list(as_of_dates)))))
    data_end = pd.Timestamp(data_end) if data_end is not None else None

    lead_ids = leads["lead_id"].to_numpy()
    closing = first_closing(deals).reindex(lead_ids)
    closed_at = closing["closed_at"].to_numpy()
    has_deal = ~pd.isna(closed_at)
    # Any won deal counts, not only the first closing: a lost deal can be followed by a won one.
    won_deals = deals[deals["outcome"].eq("won")]
    won_position = pd.Index(lead_ids).get_indexer(won_deals["lead_id"])
    won_closed_at = won_deals["closed_at"].to_numpy()[won_position >= 0]
    won_position = won_position[won_position >= 0]

    frames = []
    for as_of in as_of_dates:
        as_of64 = as_of.to_datetime64()
        open_ = _open_mask(leads, closed_at, as_of64)
        won_in_horizon = np.zeros(len(lead_ids), dtype=bool)
        won_in_horizon[won_position[(won_closed_at >= as_of64)
                                    & (won_closed_at < (as_of + horizon).to_datetime64())]] = True
        keep = open_
        if data_end is not None and as_of + horizon > data_end:
            keep = open_ & has_deal & (closed_at < data_end.to_datetime64())
        frames.append(pd.DataFrame({
            "lead_id": lead_ids[keep],
            "as_of": as_of,
            "label": won_in_horizon[keep].astype(np.int8),
        }))
    if not frames:
        return pd.DataFrame({"lead_id": lead_ids[:0], "as_of": pd.Series([], dtype="datetime64[ns]"),
                             "label": np.array([], dtype=np.int8)})
    snapshots = pd.concat(frames, ignore_index=True)
    snapshots["as_of"] = snapshots["as_of"].astype("datetime64[ns]")
    return snapshots


def open_leads(leads: pd.DataFrame, deals: pd.DataFrame | None, as_of) -> pd.DataFrame:
    """The scoring snapshots at ``as_of``: ``lead_id`` and ``as_of`` of every lead open then."""
    as_of = pd.Timestamp(as_of)
    closed_at = (first_closing(deals).reindex(leads["lead_id"].to_numpy())["closed_at"].to_numpy()
                 if deals is not None and len(deals) else np.full(len(leads), np.datetime64("NaT"), "datetime64[ns]"))
    open_ = _open_mask(leads, closed_at, as_of.to_datetime64())
    return pd.DataFrame({"lead_id": leads["lead_id"].to_numpy()[open_], "as_of": as_of}).astype(
        {"as_of": "datetime64[ns]"})


def first_closing(deals: pd.DataFrame) -> pd.DataFrame:
    """The first closed deal of each lead (``closed_at``, and ``outcome`` if given), indexed by ``lead_id``."""
    ordered = deals.sort_values(["lead_id", "closed_at"], kind="stable")
    columns = ["closed_at", "outcome"] if "outcome" in deals.columns else ["closed_at"]
    return ordered.drop_duplicates("lead_id", keep="first").set_index("lead_id")[columns]


def _open_mask(leads: pd.DataFrame, closed_at: np.ndarray, as_of: np.datetime64) -> np.ndarray:
    """Created before ``as_of`` and not closed before it (NaT never compares as before).

    A lead table without ``created_at`` (a single export) has every lead created already.
    """
    if "created_at" not in leads.columns:
        return ~(closed_at < as_of)
    return (leads["created_at"].to_numpy() < as_of) & ~(closed_at < as_of)


def as_of_schedule(first, last, *, every_days: float | str = 30) -> pd.DatetimeIndex:
    """Snapshot times from ``first`` to ``last`` inclusive, ``every_days`` apart.

    ``every_days`` is a duration (``15``, ``"6h"``). The schedule starts at the midnight before
    ``first`` and steps by the spacing, so with whole days every snapshot is at midnight and with
    ``"6h"`` at 00:00, 06:00, 12:00 and 18:00.
    """
    step = duration(every_days, name="The 'every_days' parameter of as_of_schedule")
    first, last = pd.Timestamp(first).normalize(), pd.Timestamp(last)
    if duration_days(every_days).is_integer():
        return pd.date_range(first, last, freq=f"{int(duration_days(every_days))}D")
    return pd.date_range(first, last, freq=step)
