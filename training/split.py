"""Temporal split: train on the oldest snapshots, calibrate on the next, test on the newest; leads never shared."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.timing import duration, duration_label

SPLITS = ("train", "calibration", "test")
#: How leads are spent: each in one split (``lead_share``), or time alone separating the splits.
SPLIT_KINDS = ("lead_share", "time")


@dataclass(frozen=True)
class SplitWindows:
    """The ``as_of`` ranges of each split (inclusive), for the run's record."""

    train_last: pd.Timestamp
    calibration_first: pd.Timestamp
    calibration_last: pd.Timestamp
    test_first: pd.Timestamp
    test_last: pd.Timestamp

    def as_dict(self) -> dict:
        # Dates, as always; a time of day only when a split opens between midnights (sub-day schedules).
        return {key: str(value.date()) if value == value.normalize() else str(value)
                for key, value in self.__dict__.items()}


def temporal_split(snapshots: pd.DataFrame, *, horizon_days: float | str = 90, test_days: float | str = 90,
                   calibration_days: float | str = 60, lead_shares=(0.6, 0.2, 0.2), seed: int = 0,
                   by: str = "lead_share"):
    """Assign each snapshot to ``train``, ``calibration``, ``test`` or nothing (``None``).

    Spans are durations (days as numbers, or ``"6h"``, ``"90d"``).
    The test window is the last ``test_days`` of ``as_of`` dates. Training and calibration
    snapshots must have their whole horizon observed before the test window opens, so no
    outcome from the test period teaches the model; calibration takes the newest
    ``calibration_days`` of those, training everything strictly older.

    ``by="lead_share"``: each lead belongs to one split (seeded, by ``lead_shares``), so no lead sits
    in two splits. ``by="time"``: time alone separates them, as production spends leads (a lead's
    older snapshots may train while its newer ones calibrate or are tested), and no label is read
    past its split's boundary: a training snapshot's horizon ends by the calibration window's
    opening, a calibration snapshot's by the test window's.

    Returns ``(split, windows)``: a Series of split names on the snapshots' index and the
    :class:`SplitWindows`.
    """
    if by not in SPLIT_KINDS:
        raise ValueError(f"The 'by' parameter of temporal_split must be one of {list(SPLIT_KINDS)}. "
                         f"Got {by!r} instead.")
    if len(lead_shares) != 3 or min(lead_shares) <= 0:
        raise ValueError(f"The 'lead_shares' parameter of temporal_split must be three positive shares. "
                         f"Got {lead_shares!r} instead.")
    dates = np.sort(snapshots["as_of"].unique())
    if dates.size < 3:
        raise ValueError(f"temporal_split needs snapshots at 3 or more as_of dates. Got {dates.size}.")
    horizon = duration(horizon_days, name="The 'horizon_days' parameter of temporal_split").to_timedelta64()
    test_span = duration(test_days, name="The 'test_days' parameter of temporal_split").to_timedelta64()
    calibration_span = duration(calibration_days,
                                name="The 'calibration_days' parameter of temporal_split").to_timedelta64()
    test_first = _first_within(dates, dates[-1] - test_span)
    fitted = dates[dates + horizon <= test_first]
    if fitted.size < 2:
        raise ValueError(
            f"Not enough history before the test window (from {pd.Timestamp(test_first)}): training and "
            f"calibration need as_of dates whose {duration_label(horizon / np.timedelta64(1, 'D'))} horizon ends "
            f"before it. Provide a longer data window or shorter spans: "
            f"{suggestion_text(pd.Timestamp(dates[-1]) - pd.Timestamp(dates[0]))}")
    calibration_first = _first_within(fitted, fitted[-1] - calibration_span)
    if calibration_first == fitted[0]:
        calibration_first = fitted[1]
    train_last = fitted[fitted < calibration_first][-1]

    as_of = snapshots["as_of"].to_numpy()
    if by == "time":
        # Purged: a training label must be known before calibration opens, since the same leads calibrate.
        known = fitted[fitted + horizon <= calibration_first]
        if known.size == 0:
            raise ValueError(
                f"A split by time needs training snapshots whose {duration_label(horizon / np.timedelta64(1, 'D'))} "
                f"horizon ends before the calibration window opens ({pd.Timestamp(calibration_first)}); none does. "
                "Provide a longer data window, shorter spans, or the split by lead share: "
                f"{suggestion_text(pd.Timestamp(dates[-1]) - pd.Timestamp(dates[0]))}")
        train_last = known[-1]
    in_window = {
        "train": as_of <= train_last,
        "calibration": (as_of >= calibration_first) & (as_of <= fitted[-1]),
        "test": as_of >= test_first,
    }
    split = pd.Series(None, index=snapshots.index, dtype=object)
    if by == "time":
        for name in SPLITS:
            split[in_window[name]] = name
    else:
        wanted = snapshots["lead_id"].map(_assign_leads(snapshots["lead_id"].unique(), lead_shares, seed))
        for name in SPLITS:
            split[(wanted == name).to_numpy() & in_window[name]] = name
    windows = SplitWindows(*(pd.Timestamp(value) for value in
                             (train_last, calibration_first, fitted[-1], test_first, dates[-1])))
    return split, windows


def suggest_spans(span: pd.Timedelta) -> dict:
    """Horizon, snapshot spacing, test and calibration spans that fit a data window of ``span``.

    About a quarter of the window for the horizon and the test span, a sixth for calibration and
    a spacing giving some forty snapshot times, each rounded to a readable duration: a three-day
    log gets ``18h`` / ``2h`` / ``18h`` / ``12h``.
    """
    days = max(pd.Timedelta(span) / pd.Timedelta(days=1), 1 / 24)
    return {"horizon": _readable(days / 4), "every": _readable(days / 40), "test_span": _readable(days / 4),
            "calibration_span": _readable(days / 6)}


def suggestion_text(span: pd.Timedelta) -> str:
    """One line a user can act on: what would fit a data window of ``span``."""
    spans = suggest_spans(span)
    return (f"the data spans {duration_label(round(pd.Timedelta(span) / pd.Timedelta(hours=1)) / 24)}; values "
            f"that fit it: --horizon {spans['horizon']} --every {spans['every']} --test-span {spans['test_span']} "
            f"--calibration-span {spans['calibration_span']} (in the config's [training]: horizon = "
            f"\"{spans['horizon']}\", snapshot_every = \"{spans['every']}\", test_span = \"{spans['test_span']}\", "
            f"calibration_span = \"{spans['calibration_span']}\").")


def _readable(days: float) -> str:
    """Round down to whole days (from 2 days), whole hours (from 1 hour) or whole minutes."""
    if days >= 2:
        return f"{int(days)}d"
    if days >= 1 / 24:
        return f"{int(days * 24)}h"
    return f"{max(int(days * 1440), 1)}m"


def assign_leads(lead_ids, *, lead_shares=(0.6, 0.2, 0.2), seed: int = 0) -> pd.Series:
    """The split each lead belongs to, whatever its snapshots' dates (``temporal_split``'s draw).

    The draw depends on each id alone, not on which other leads are present or their order.
    """
    return _assign_leads(lead_ids, lead_shares, seed)


def _first_within(dates: np.ndarray, after) -> np.datetime64:
    """The first date strictly after ``after`` (the window's opening date)."""
    later = dates[dates > after]
    return later[0] if later.size else dates[-1]


def _assign_leads(lead_ids, shares, seed) -> pd.Series:
    """A seeded hash of each id picks its split: a lead keeps its split whatever else is in the data,
    so a later run (champion/challenger, ``compare``) never tests on a lead it trained on."""
    ids = pd.Index(pd.unique(np.asarray(lead_ids, dtype=object)))
    hashed = pd.util.hash_array(np.asarray(ids.astype(str), dtype=object), hash_key=f"{seed:016d}"[-16:])
    uniform = (hashed % np.uint64(2 ** 32)).astype(float) / 2 ** 32
    shares = np.asarray(shares, dtype=float) / np.sum(shares)
    names = np.array(SPLITS, dtype=object)[np.searchsorted(np.cumsum(shares)[:-1], uniform, side="right")]
    return pd.Series(names, index=ids)


def stratified_split(labels, *, shares=(0.6, 0.2, 0.2), seed: int = 0) -> pd.Series:
    """Seeded split of undated rows into ``train``, ``calibration`` and ``test``, each with the base rate.

    For a lead table without dates there is no time to split by; stratifying keeps every split's
    conversion rate equal, so calibration and test figures are not skewed by chance.
    """
    from sklearn.model_selection import train_test_split

    labels = pd.Series(np.asarray(labels, dtype=int))
    shares = _checked_shares(shares, "stratified_split")
    rest, test = train_test_split(labels.index, test_size=shares[2], stratify=labels, random_state=seed)
    train, calibration = train_test_split(rest, test_size=shares[1] / (shares[0] + shares[1]),
                                          stratify=labels[rest], random_state=seed)
    split = pd.Series(None, index=labels.index, dtype=object)
    for name, rows in zip(SPLITS, (train, calibration, test)):
        split[rows] = name
    return split


def time_ordered_split(created_at, *, shares=(0.6, 0.2, 0.2)) -> pd.Series:
    """Split labelled leads by creation time: the oldest train, the next calibrate, the newest test."""
    created_at = pd.Series(pd.to_datetime(np.asarray(created_at)))
    shares = _checked_shares(shares, "time_ordered_split")
    rank = created_at.rank(method="first").to_numpy() / max(len(created_at), 1)
    edges = np.cumsum(shares)
    names = np.where(rank <= edges[0], "train", np.where(rank <= edges[1], "calibration", "test"))
    return pd.Series(names.astype(object), index=created_at.index)


def _checked_shares(shares, caller: str) -> np.ndarray:
    if len(shares) != 3 or min(shares) <= 0:
        raise ValueError(f"The 'shares' parameter of {caller} must be three positive shares. Got {shares!r} instead.")
    return np.asarray(shares, dtype=float) / np.sum(shares)
