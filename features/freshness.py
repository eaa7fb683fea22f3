"""Stale data: scoring as of a time long after the data ends ages every lead and moves every score."""

from __future__ import annotations

import duckdb
import pandas as pd

from features.contract import DataContractError, event_relation

#: Data may end this share of the model's horizon before ``as_of`` before scoring stops...
STALE_HORIZON_SHARE = 0.25
#: ...or this many days when the model has no horizon (a lead table scored without dates).
STALE_DAYS = 30


class StaleDataError(DataContractError):
    """The data ends long before ``as_of``: scores would describe leads that aged with no activity."""


def data_end(leads: pd.DataFrame, events=None, deals: pd.DataFrame | None = None) -> pd.Timestamp | None:
    """The newest lead creation, event or deal closing: where the data stops. None without any timestamps."""
    candidates = []
    if "created_at" in leads.columns and len(leads):
        candidates.append(leads["created_at"].max())
    if deals is not None and len(deals):
        candidates.append(deals["closed_at"].max())
    if events is not None:
        with duckdb.connect() as con:
            latest, = event_relation(con, events).aggregate("max(occurred_at)").fetchall()[0]
        candidates.append(latest)
    candidates = [pd.Timestamp(value) for value in candidates if value is not None and not pd.isna(value)]
    return max(candidates) if candidates else None


def stale_gap(as_of, end, *, horizon_days=None, share: float = STALE_HORIZON_SHARE,
              days: int = STALE_DAYS) -> pd.Timedelta | None:
    """How long before ``as_of`` the data ends, when that is too long; None when the data is fresh enough.

    Too long: more than ``share`` of the horizon (a 90-day horizon allows 22.5 days), or ``days``
    when there is no horizon.
    """
    if end is None:
        return None
    gap = pd.Timestamp(as_of) - pd.Timestamp(end)
    return gap if gap > allowed_gap(horizon_days=horizon_days, share=share, days=days) else None


def allowed_gap(*, horizon_days=None, share: float = STALE_HORIZON_SHARE, days: int = STALE_DAYS) -> pd.Timedelta:
    """The longest gap between the data's end and ``as_of`` that is still fresh (see :func:`stale_gap`)."""
    return pd.Timedelta(days=share * float(horizon_days)) if horizon_days else pd.Timedelta(days=days)


def refuse_stale(as_of, end, *, horizon_days=None, days=None, source: str = "the data") -> None:
    """Raise :class:`StaleDataError` naming the data's end and the ``--as-of`` to use, when the data is stale.

    ``days``, when given, is the allowed gap instead of the share of the horizon.
    """
    gap = stale_gap(as_of, end, horizon_days=None if days is not None else horizon_days,
                    days=days if days is not None else STALE_DAYS)
    if gap is None:
        return
    limit = (f"{days:g} days" if days is not None else
             f"{STALE_HORIZON_SHARE:.0%} of the model's {horizon_days}-day horizon" if horizon_days
             else f"{STALE_DAYS} days")
    raise StaleDataError(
        f"{source} ends at {pd.Timestamp(end)}, {gap.days} days before as_of {pd.Timestamp(as_of)} (more than "
        f"{limit}): every lead would look {gap.days} days older and idle. Score as of the data's end with "
        f"--as-of {pd.Timestamp(end).isoformat()}, or pass --allow-stale to score as of {pd.Timestamp(as_of)} anyway.")
