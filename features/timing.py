"""Time as every builder sees it: naive UTC timestamps, and durations written as "6h", "2d" or "90d"."""

from __future__ import annotations

import re

import pandas as pd

#: Units a duration may be written in, in days.
DURATION_UNITS = {"m": 1 / 1440, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "w": 7.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)\s*", re.IGNORECASE)


def naive_utc(moment):
    """A timestamp (or a datetime Series) as naive UTC, the form every builder works in."""
    if isinstance(moment, pd.Series):
        return moment.dt.tz_convert("UTC").dt.tz_localize(None) if moment.dt.tz is not None else moment
    moment = pd.Timestamp(moment)
    return moment.tz_convert("UTC").tz_localize(None) if moment.tzinfo else moment


def utc_now() -> pd.Timestamp:
    """The current time as naive UTC."""
    return naive_utc(pd.Timestamp.now(tz="UTC"))


def duration_days(value, *, name: str = "duration") -> float:
    """A duration in days: ``"6h"`` -> 0.25, ``"2d"`` -> 2.0, ``"1w"`` -> 7.0, ``"30m"``; a plain number is days.

    Plain numbers (``90``, ``"90"``) mean days, as the older ``*_days`` settings did. Units are
    ``m``/``min`` (minutes), ``h``, ``d`` and ``w``; the result must be positive. ``name`` goes
    into the error, e.g. ``"[training] horizon in config.toml"``.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a duration such as '6h', '2d' or '90d' (a plain number means days). "
                         f"Got {value!r} instead.")
    if isinstance(value, (int, float)):
        days = float(value)
    elif isinstance(value, pd.Timedelta):
        days = value / pd.Timedelta(days=1)
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", value):
        days = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        days = float(match.group(1)) * DURATION_UNITS[match.group(2).lower()]
    else:
        raise ValueError(f"{name} must be a duration such as '6h', '2d' or '90d' (a plain number means days). "
                         f"Got {value!r} instead.")
    if not days > 0 or days != days or days == float("inf"):
        raise ValueError(f"{name} must be a positive duration. Got {value!r} instead.")
    return days


def duration(value, *, name: str = "duration") -> pd.Timedelta:
    """:func:`duration_days` as a ``pd.Timedelta`` (to the microsecond)."""
    return pd.Timedelta(microseconds=round(duration_days(value, name=name) * 86_400_000_000))


def duration_label(days: float) -> str:
    """Short readable name of a duration in days, for feature names: 7 -> '7d', 0.25 -> '6h', 1/48 -> '30m'.

    From a day up it stays days (``1.5d``, the names specs always had); below, hours, else minutes.
    """
    days = float(days)
    if days >= 1:
        return f"{days:g}d"
    hours = round(days * 24, 6)
    if hours.is_integer() or hours >= 10:
        return f"{hours:g}h"
    return f"{round(days * 1440, 3):g}m"


def duration_text(days: float) -> str:
    """A duration for people: 7 -> '7 days', 1 -> '1 day', 0.25 -> '6 hours', 1/48 -> '30 minutes'."""
    label = duration_label(days)
    number, unit = label[:-1], {"d": "day", "h": "hour", "m": "minute"}[label[-1]]
    return f"{number} {unit}{'' if number == '1' else 's'}"
