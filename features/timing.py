"""Time as every builder sees it: naive UTC timestamps."""

from __future__ import annotations

import pandas as pd


def naive_utc(moment):
    """A timestamp (or a datetime Series) as naive UTC, the form every builder works in."""
    if isinstance(moment, pd.Series):
        return moment.dt.tz_convert("UTC").dt.tz_localize(None) if moment.dt.tz is not None else moment
    moment = pd.Timestamp(moment)
    return moment.tz_convert("UTC").tz_localize(None) if moment.tzinfo else moment


def utc_now() -> pd.Timestamp:
    """The current time as naive UTC."""
    return naive_utc(pd.Timestamp.now(tz="UTC"))
