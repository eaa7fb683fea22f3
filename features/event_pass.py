"""One compiled pass over each lead's time-ordered events that fills every engagement column of its snapshots.

``build_engagement_features`` hands over the events grouped by lead (a counting sort: no
comparison sort of all events) as flat arrays of microseconds since the epoch and ids of the
normalised type. The pass orders each lead's few events by (time, type) in place and then, per
snapshot, walks its lead's events up to ``as_of`` once: window counts, totals, recency, decayed
intensities, active days, trend and click rate all come out of that one walk, written into the
snapshot's row of a small block that goes out column by column. Numba compiles it (cached on disk after the first run); the
accumulation order is the one the earlier numpy scatter used, (snapshot, time, type), so sums
agree with it to the last bits.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from numba import njit

from features.fresh_memory import empty_array

_DAY_US = 86_400_000_000
#: The time of an event to be ignored (no time, or a row another reader left empty): after every as_of.
NO_TIME = np.iinfo(np.int64).max
_MAX_THREADS = 4
#: Snapshots whose rows the pass builds before writing them out (a block of 256 x 100 features: 200 KiB).
_ROWS_PER_BLOCK = 256


class GroupedEvents(NamedTuple):
    """Events grouped by lead: lead k's are ``ts[start[k]:start[k + 1]]`` (int64 microseconds, naive
    UTC) and ``norm[...]`` (int16 ids of normalised types); ``code_of_norm`` maps an id to its block."""

    ts: np.ndarray
    norm: np.ndarray
    start: np.ndarray
    code_of_norm: np.ndarray


def fill_engagement(out: np.ndarray, events: GroupedEvents, *, snapshot_lead: np.ndarray, as_of_us: np.ndarray,
                    windows: tuple, half_lives: tuple, n_types: int, click_columns: tuple | None,
                    ordered: bool = False) -> None:
    """Write every engagement column of every snapshot into ``out`` (snapshots x features, any order).

    Each lead's events are put in (time, type) order here, in place (unless ``ordered``: done
    already by :func:`sort_each_lead`, as ``features.lead_events`` does once for many chunks). Events at or after a
    snapshot's ``as_of`` are skipped by the walk itself (``NO_TIME`` is after every ``as_of``).
    ``snapshot_lead``: each snapshot's lead position, -1 for a lead without events.
    ``click_columns``: (clicks total column, opens total column), or None without a click rate.
    """
    clicks, opens = click_columns if click_columns is not None else (-1, -1)
    arguments = (np.ascontiguousarray(events.code_of_norm, dtype=np.int64),
                 np.ascontiguousarray(snapshot_lead, dtype=np.int64), np.ascontiguousarray(as_of_us, dtype=np.int64),
                 np.array(windows, dtype=np.float64), np.array([-1.0 / h for h in half_lives], dtype=np.float64),
                 n_types, clicks, opens)
    # Plain threads over slices, not numba's parallel loops: its default thread pool aborts when two
    # threads (two HTTP requests, say) launch parallel kernels at once; these kernels release the GIL.
    if not ordered:
        sort_each_lead(events, threads=worker_threads(len(out)))
    n = len(out)
    threads = worker_threads(n)
    if threads == 1:  # a few leads: a pool would cost more than the work
        _fill_rows(out, events.ts, events.norm, events.start, 0, n, *arguments)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda part: _fill_rows(out, events.ts, events.norm, events.start, *part, *arguments),
                      _slices(n, threads)))


def sort_each_lead(events: GroupedEvents, *, threads: int | None = None) -> None:
    """Put each lead's events in (time, type) order, in place: the order ``fill_engagement`` walks them in."""
    n_leads = len(events.start) - 1
    threads = worker_threads(n_leads) if threads is None else threads
    if threads == 1:
        _sort_each_lead(events.ts, events.norm, events.start, 0, n_leads)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda part: _sort_each_lead(events.ts, events.norm, events.start, *part),
                      _slices(n_leads, threads)))


def worker_threads(rows: int, *, rows_per_thread: int = 50_000) -> int:
    """Threads for ``rows`` of work: one per core available (at most four), none idle for lack of rows."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(_MAX_THREADS, available, rows // rows_per_thread))


def _slices(n: int, parts: int) -> list[tuple[int, int]]:
    bounds = np.linspace(0, n, parts + 1).astype(np.int64)
    return [(int(bounds[i]), int(bounds[i + 1])) for i in range(parts)]


def group_events(lead: np.ndarray, ts: np.ndarray, norm: np.ndarray, code_of_norm: np.ndarray,
                 n_leads: int) -> GroupedEvents:
    """Events in any order (``lead`` a position in ``[0, n_leads)``, -1 to drop) grouped by lead: a counting sort."""
    lead = np.ascontiguousarray(lead, dtype=np.int32)
    start = np.zeros(n_leads + 1, dtype=np.int64)
    count_per_lead(lead, start)
    np.cumsum(start, out=start)
    grouped = GroupedEvents(empty_array(start[-1], np.int64), empty_array(start[-1], np.int16), start, code_of_norm)
    scatter_by_lead(lead, np.ascontiguousarray(ts, dtype=np.int64), np.ascontiguousarray(norm, dtype=np.int16),
                    start[:-1].copy(), grouped.ts, grouped.norm)
    return grouped


@njit(cache=True, nogil=True)
def count_per_lead(lead, counts):
    """``counts[k + 1] += 1`` for each event of lead k (a position below 0 is another lead's event)."""
    for i in range(len(lead)):
        if lead[i] >= 0:
            counts[lead[i] + 1] += 1


@njit(cache=True, nogil=True)
def look_up_positions(ids, low, table):
    """``table[id - low]`` for ids inside the table, -1 for the others: lead positions of integer ids."""
    found = np.empty(len(ids), dtype=np.int32)
    for i in range(len(ids)):
        j = ids[i] - low
        found[i] = table[j] if 0 <= j < len(table) else -1
    return found


@njit(cache=True, nogil=True)
def scatter_by_lead(lead, ts, norm, fill, ts_out, norm_out):
    """Each event of lead k to the next free slot ``fill[k]`` of its lead's block (stable)."""
    for i in range(len(lead)):
        k = lead[i]
        if k >= 0:
            ts_out[fill[k]] = ts[i]
            norm_out[fill[k]] = norm[i]
            fill[k] += 1


@njit(cache=True, nogil=True)
def scatter_arrow_batch(lead, raw_ts, ts_scale, time_missing, type_index, norm_of_index, type_missing, fill,
                        ts_out, norm_out, later_than):
    """``scatter_by_lead`` straight from a Parquet batch's Arrow buffers, in the same one loop over its rows.

    ``raw_ts``: the time column's int64 values, in nanoseconds when ``ts_scale`` is 0 (rounded half
    away from zero to microseconds, as DuckDB casts TIMESTAMP_NS to TIMESTAMP), else multiplied by
    ``ts_scale`` to microseconds. ``type_index``: each row's index into the type dictionary, whose
    entry's id is ``norm_of_index[index]``; the id of a missing type is the last entry of
    ``norm_of_index``. ``time_missing`` / ``type_missing``: one flag per row, or empty when the column
    has no nulls (the values under a null are undefined). Converting here, rather than in numpy
    beforehand, spares three temporary arrays per batch, most of the read's CPU besides decoding.
    Returns how many rows (of any lead, kept or not) have a time later than ``later_than`` microseconds.
    """
    missing_norm = norm_of_index[len(norm_of_index) - 1]
    later = 0
    for i in range(len(lead)):
        if len(time_missing) and time_missing[i]:
            t = NO_TIME
        else:
            if ts_scale == 0:
                v = raw_ts[i]
                t = (v + 500) // 1000 if v >= 0 else -((500 - v) // 1000)
            else:
                t = raw_ts[i] * ts_scale
            if t > later_than:
                later += 1
        k = lead[i]
        if k < 0:
            continue
        ts_out[fill[k]] = t
        norm_out[fill[k]] = missing_norm if len(type_missing) and type_missing[i] else norm_of_index[type_index[i]]
        fill[k] += 1
    return later


@njit(cache=True, nogil=True)
def _sort_each_lead(ts, norm, start, first, last):
    """Insertion sort of the events of leads ``first..last-1`` by (time, type): a lead has few, often in order."""
    for k in range(first, last):
        for i in range(start[k] + 1, start[k + 1]):
            t, c = ts[i], norm[i]
            j = i - 1
            while j >= start[k] and (ts[j] > t or (ts[j] == t and norm[j] > c)):
                ts[j + 1], norm[j + 1] = ts[j], norm[j]
                j -= 1
            ts[j + 1], norm[j + 1] = t, c


@njit(cache=True, nogil=True)
def _fill_rows(out, ts, norm, start, first, last, code_of_norm, snapshot_lead, as_of_us, windows,
               neg_inverse_half_lives, n_types, clicks, opens):
    """Rows ``first..last-1`` of ``out``: one walk over each snapshot's events before its as_of."""
    n_windows, n_half_lives = len(windows), len(neg_inverse_half_lives)
    per_type = n_windows + 2 + n_half_lives
    total, days_since, decayed = n_windows, n_windows + 1, n_windows + 2
    any_start = n_types * per_type
    n_columns = out.shape[1]
    # Rows are built in a small C-ordered block, then written out column by column: one stream of
    # consecutive cells at a time, rather than a hundred columns' streams at once for every row.
    block = np.empty((_ROWS_PER_BLOCK, n_columns))
    for block_first in range(first, last, _ROWS_PER_BLOCK):
        block_last = min(block_first + _ROWS_PER_BLOCK, last)
        for s in range(block_first, block_last):
            row = block[s - block_first]
            row[:] = 0.0
            for k in range(n_types):
                row[k * per_type + days_since] = np.inf
            n30, n60, active_total, active_30 = 0, 0, 0, 0
            k = snapshot_lead[s]
            if k >= 0:
                as_of = as_of_us[s]
                have_previous, previous_ts, previous_norm, previous_day, previous_in30 = False, 0, 0, 0, False
                for i in range(start[k], start[k + 1]):
                    t = ts[i]
                    if t >= as_of:
                        break  # the lead's events are in time order: the rest are at or after as_of
                    age = (as_of - t) / _DAY_US
                    day = t // _DAY_US
                    c = norm[i]
                    in30 = age <= 30
                    same_day = have_previous and day == previous_day
                    duplicate = have_previous and t == previous_ts and c == previous_norm
                    # Time order: the 30-day window is a suffix of the walk, so a row opens a new active
                    # day in it if its day is new or the previous row lay outside the window.
                    if not same_day:
                        active_total += 1
                    if in30 and (not same_day or not previous_in30):
                        active_30 += 1
                    have_previous, previous_ts, previous_norm, previous_day, previous_in30 = True, t, c, day, in30
                    if duplicate:
                        continue  # an exact duplicate (time and normalised type) counts once
                    base = code_of_norm[c] * per_type
                    for f in range(n_windows):
                        if age <= windows[f]:
                            row[base + f] += 1.0
                    row[base + total] += 1.0
                    if age < row[base + days_since]:
                        row[base + days_since] = age
                    for j in range(n_half_lives):
                        row[base + decayed + j] += np.exp2(age * neg_inverse_half_lives[j])
                    if age <= 30:
                        n30 += 1
                    if age <= 60:
                        n60 += 1
            # Totals over all types, recency of any event, activity, trend and click rate.
            any_recent = np.inf
            for k in range(n_types):
                for f in range(n_windows):
                    row[any_start + f] += row[k * per_type + f]
                row[any_start + n_windows] += row[k * per_type + total]
                any_recent = min(any_recent, row[k * per_type + days_since])
                if np.isinf(row[k * per_type + days_since]):
                    row[k * per_type + days_since] = np.nan
            row[any_start + n_windows + 1] = np.nan if np.isinf(any_recent) else any_recent
            row[any_start + n_windows + 2] = active_total
            row[any_start + n_windows + 3] = active_30
            # (n30 - previous) / (n30 + previous), where previous = n60 - n30 and so the sum is n60
            row[any_start + n_windows + 4] = (2 * n30 - n60) / n60 if n60 > 0 else 0.0
            if clicks >= 0:
                denominator = max(row[opens], row[clicks])
                row[any_start + n_windows + 5] = row[clicks] / denominator if denominator > 0 else np.nan
        for j in range(n_columns):
            for s in range(block_first, block_last):
                out[s, j] = block[s - block_first, j]
