"""Batch scoring of a whole lead base: chunked, with reasons, written atomically (CLI, demo, Spark, databases)."""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import pandas as pd

from features.build import build_features
from features.engagement import SCORING_MEMORY_LIMIT
from features.plausibility import ImplausibleLeads
from features.snapshots import open_leads
from features.timing import utc_now
from scoring.history import with_previous
from scoring.output_shape import REASON_COLUMNS, SCORE_COLUMNS, output_frame
from scoring.score_file import AtomicScoreFile, check_output
from models.threads import return_free_memory
from models.tiers import TIERS

__all__ = ["REASON_COLUMNS", "SCORE_COLUMNS", "score_features", "score_lead_base"]


def score_lead_base(bundle, leads, events, *, as_of, out, deals=None,
                    model_version: str = "", thresholds=None, chunk_size: int = 100_000,
                    explain: bool = True, progress=None, progress_bar: bool = False,
                    timings: dict | None = None, monitor=None, history=None, model_name: str = "") -> pd.Series:
    """Score every lead open at ``as_of`` into ``out`` (.parquet or .csv); return the tier counts.

    Beside probability, score and tier each row carries the fit and engagement sub-scores and up
    to three positive and three negative reasons as text ("requested a demo 3 days ago (+1.20)");
    ``explain=False`` leaves those out, for speed.

    ``leads`` is a validated lead frame, or validated lead chunks (any iterable of frames, such as
    ``crm.sources.StreamedLeads`` reading a Parquet file by record batch, a CSV by lines, or a
    database cursor): ``chunk_size`` leads are read, their features built (only their events are
    joined) and scored, and written before the next, so memory is bounded by the chunk, not by
    the lead base. ``deals`` is a frame, or ``crm.sources.StreamedDeals`` read for each chunk's
    leads. Open leads are gathered across chunks and scored ``chunk_size`` at a time (see
    ``_open_lead_batches``), so each scored batch is the same work wherever it falls in the table.
    The output is written to a temporary file beside ``out`` and renamed at the
    end: a failed run leaves the previous file untouched and no partial one.
    ``progress`` is called with a line per chunk; ``progress_bar`` shows a tqdm bar on stderr.
    ``timings``, when given, gets each stage's seconds added to it (``read``, ``features``,
    ``prediction`` or ``contributions`` and ``reasons``, ``write``) and, for comparison, the
    seconds of the model's bare prediction on the same rows (``bare_prediction``, and its CPU
    seconds ``bare_prediction_cpu``: one extra prediction per chunk, so only for benchmarks).

    ``out`` may also be a sink: a context manager with ``write(frame)`` and ``rows`` that makes the
    output appear on a clean exit only (``crm.database.Database.write_table``). ``monitor``, a
    :class:`scoring.drift.DriftMonitor`, counts each chunk's features, probabilities and tiers
    for the drift report. ``history`` (:class:`scoring.history.ScoreHistory` or ``TableHistory``)
    adds each lead's previous score and trend to the output and gets this run's rows (with
    ``model_name``) once the output is written.
    """
    if chunk_size <= 0:
        raise ValueError(f"The 'chunk_size' parameter of score_lead_base must be positive. Got {chunk_size!r}.")
    sink = out if hasattr(out, "write") else AtomicScoreFile(check_output(out))
    scored_at = utc_now().floor("s")
    started = time.perf_counter()
    counts = pd.Series(0, index=list(TIERS), dtype=np.int64)
    total = len(leads) if hasattr(leads, "__len__") else None
    done = opened = 0
    empty = None
    clock = _Stages(timings)
    latest = history.latest() if history is not None else None
    # Refused as the HTTP service refuses them (features.plausibility): counted over every chunk, then one line per
    # field; nothing is written. Future creation times are refused earlier, by the contract's check.
    implausible = ImplausibleLeads(bundle.spec)
    # The history's run is entered first so it is left last: committed only once the output is in place.
    with _history_run(history, scored_at) as history_writer, sink as writer, _bar(total, progress_bar) as bar:
        with clock("features"):
            events, deals = _events_read_once(bundle.spec, events, leads, deals, as_of)
        chunks = _counted(clock.timed("read", _lead_chunks(leads, chunk_size)), implausible)
        batches = _open_lead_batches(chunks, deals, as_of, chunk_size)
        for lead_batch, snapshots, read in batches:
            if implausible.counts:  # the run is refused at the end: read on only to count, score no more
                continue
            frame = _score_chunk(bundle, snapshots, lead_batch, events, explain=explain, thresholds=thresholds,
                                 model_version=model_version, scored_at=scored_at, timings=timings, monitor=monitor)
            del lead_batch, snapshots  # the next batch is gathered without this one's leads alive
            if latest is not None:
                frame = with_previous(frame, latest)
            if len(frame):
                with clock("write"):
                    writer.write(output_frame(frame))  # the one output shape (scoring.output_shape)
                if history_writer is not None:
                    history_writer.write(frame.assign(model_name=model_name))
            else:  # written only if nothing else is: an empty frame's columns carry no types
                empty = frame
            # Best tier first, whatever order the chunk's counts come in.
            counts = counts.add(frame["tier"].value_counts(), fill_value=0).astype(np.int64).reindex(TIERS)
            bar.update(read - done)
            done, opened = read, opened + len(frame)
            del frame
            return_free_memory()  # what this chunk freed goes back, so RSS stays flat across chunks
            if progress:
                elapsed = time.perf_counter() - started
                share = f"{done / total:.0%}, " if total else ""
                progress(f"read {done:,}{f'/{total:,}' if total else ''} leads ({share}{opened:,} open, scored; "
                         f"{done / max(elapsed, 1e-9):,.0f} leads/s)")
        implausible.check()
        if writer.rows == 0 and empty is not None:
            writer.write(output_frame(empty))
    return counts


def _score_chunk(bundle, snapshots, leads, events, *, explain, thresholds, model_version, scored_at,
                 timings=None, monitor=None) -> pd.DataFrame:
    clock = _Stages(timings)
    with clock("features"):
        features = build_features(snapshots, leads, events, bundle.spec, memory_limit=SCORING_MEMORY_LIMIT)
    return score_features(bundle, features, snapshots, explain=explain, thresholds=thresholds,
                          model_version=model_version, scored_at=scored_at, timings=timings, monitor=monitor)


def score_features(bundle, features: pd.DataFrame, snapshots: pd.DataFrame, *, explain: bool = True, thresholds=None,
                   model_version: str = "", scored_at=None, timings: dict | None = None,
                   monitor=None) -> pd.DataFrame:
    """The output rows of feature rows: ``SCORE_COLUMNS`` (without sub-scores and reasons when not ``explain``).

    ``snapshots`` gives each row's ``lead_id`` and ``as_of``, in the order of ``features``. One
    definition of an output row for every route: the chunked batch here, Spark's partitions
    (``scoring.spark_scores``).
    """
    clock = _Stages(timings)
    if explain:
        scores, columns = bundle.score_with_reason_columns(features, thresholds=thresholds, timings=timings)
    else:
        with clock("prediction"):
            scores, columns = bundle.score(features, thresholds=thresholds), {}
    if timings is not None:
        cpu = time.process_time()
        with clock("bare_prediction"):
            bundle.predict_probability(features)
        timings["bare_prediction_cpu"] = timings.get("bare_prediction_cpu", 0.0) + time.process_time() - cpu
    if monitor is not None and len(features):
        monitor.add(features, scores["probability"], scores["tier"])
    return pd.DataFrame({
        "lead_id": snapshots["lead_id"].to_numpy(),
        **{column: scores[column].to_numpy() for column in scores.columns},
        **columns,
        "model_version": model_version,
        "as_of": snapshots["as_of"].to_numpy(),
        "scored_at": scored_at,
    })


class _Stages:
    """Seconds per stage added into a dict (nothing when the dict is None)."""

    def __init__(self, timings: dict | None):
        self.timings = timings

    @contextmanager
    def __call__(self, stage: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            if self.timings is not None:
                self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - started

    def timed(self, stage: str, iterable):
        """Iterate, counting the time spent getting each item (reading a chunk) to ``stage``."""
        iterator = iter(iterable)
        while True:
            with self(stage):
                item = next(iterator, _END)
            if item is _END:
                return
            yield item


_END = object()


def _events_read_once(spec, events, leads, deals, as_of):
    """``(events, deals)``: a typed Parquet event file read once for the lead base (``features.lead_events``).

    Each chunk would otherwise read the whole file for its own leads: five times for a million
    leads in chunks of 100,000 open ones. Needs the base's ids up front: a frame's, or a
    ``StreamedLeads`` source's (one column read); other lead iterables, and other event sources,
    keep the per-chunk read and get ``(events, deals)`` back as they came.
    Leads closed before ``as_of`` are never scored (``open_leads``, same first closings), so their
    events are not kept: memory holds the events scoring walks. An event log ``stream_crm`` left
    unchecked (``features.event_log_check``) is checked by this read, or by ``validate_events`` first
    where the events are read per chunk. Should an open lead ever be missing,
    the feature builder refuses it rather than giving it no events. Streamed deals are read once
    here too, as each lead's first closing (16 bytes per closed lead), for every chunk.
    """
    from features.event_log_check import EventLogToCheck
    from features.event_rows import is_typed_parquet
    from features.lead_events import LeadEvents
    from features.snapshots import first_closing

    unchecked = isinstance(events, EventLogToCheck)  # crm.sources.stream_crm left the check to this read
    ids = None
    if spec.event_log and is_typed_parquet(events):
        if isinstance(leads, pd.DataFrame):
            ids = leads["lead_id"]
        elif hasattr(getattr(leads, "source", None), "lead_ids"):
            ids = leads.source.lead_ids()
    if ids is None:  # the events are read per chunk (or not at all): checked first, by their own scan
        if unchecked:
            events.validate()
        return events, deals
    ids = pd.Series(ids).reset_index(drop=True)
    if deals is not None and hasattr(deals, "first_closings"):  # crm.sources.StreamedDeals
        deals = deals.first_closings(ids)
    keep = None
    if deals is not None and len(deals):
        closed_at = first_closing(deals)["closed_at"]
        keep = ~ids.isin(closed_at.index[(closed_at < pd.Timestamp(as_of).to_datetime64()).to_numpy()]).to_numpy()
    # Closed leads' events are matched (so never taken for another base's) but not kept.
    counts = events.counts() if unchecked else None
    read = LeadEvents.read(events, ids, spec.event_keys_with_other, keep=keep, check=counts)
    if unchecked:
        events.check_read(counts, ids)  # raises the contract's own message when a count is not zero
    return read, deals


def _lead_chunks(leads, rows: int):
    """Chunks of at most ``rows`` leads from a frame or from an iterable of frames (re-cut if larger)."""
    if isinstance(leads, pd.DataFrame):
        parts = (leads,)
    else:
        parts = leads
    yielded = False
    for part in parts:
        for start in range(0, len(part), rows):
            yielded = True
            yield part.iloc[start:start + rows] if len(part) > rows else part
    if not yielded:  # an empty lead base still gets an (empty) output with the usual columns
        yield leads if isinstance(leads, pd.DataFrame) else pd.DataFrame({"lead_id": [], "created_at": pd.Series(
            [], dtype="datetime64[ns]")})


def _counted(chunks, implausible: ImplausibleLeads):
    """The lead chunks, each counted for implausible values on its way."""
    for chunk in chunks:
        implausible.add(chunk)
        yield chunk


def _open_lead_batches(chunks, deals, as_of, rows: int):
    """``(leads, snapshots, leads read so far)`` of at most ``rows`` open leads, gathered across lead chunks.

    Every batch but the last has exactly ``rows`` open leads, however many of a chunk's leads are
    closed: a lead table in creation order has mostly closed leads in its first chunks and mostly
    open ones in its last, and scoring's memory and time follow the open leads, not the rows read.
    Only open leads are kept between chunks (fewer than ``rows`` of them), so memory stays bounded
    by the chunk; leads keep their table order. An empty base gives one empty batch.
    """
    pending_leads, pending_snapshots, pending, read, yielded = [], [], 0, 0, False
    for lead_chunk in chunks:
        read += len(lead_chunk)
        # The chunk's own deals only: sorting every deal of the base per chunk cost seconds.
        if deals is None:
            chunk_deals = None
        elif hasattr(deals, "first_closings"):  # crm.sources.StreamedDeals: read for these leads only
            chunk_deals = deals.first_closings(lead_chunk["lead_id"])
        else:
            chunk_deals = deals[deals["lead_id"].isin(lead_chunk["lead_id"])]
        snapshots = open_leads(lead_chunk, chunk_deals, as_of)
        if len(snapshots) == len(lead_chunk):
            open_rows = lead_chunk
        else:
            open_rows = lead_chunk[lead_chunk["lead_id"].isin(snapshots["lead_id"]).to_numpy()]
        del lead_chunk, chunk_deals
        pending_leads.append(open_rows)
        pending_snapshots.append(snapshots)
        pending += len(snapshots)
        while pending >= rows:
            gathered_leads, gathered_snapshots = _concat(pending_leads), _concat(pending_snapshots)
            # Copies, and the gathered frames dropped before the yield: a slice would keep the whole
            # gathered frame (up to two chunks of leads) alive while the batch is scored.
            batch_leads, pending_leads = gathered_leads.iloc[:rows].copy(), [gathered_leads.iloc[rows:].copy()]
            batch_snapshots = gathered_snapshots.iloc[:rows].reset_index(drop=True)
            pending_snapshots = [gathered_snapshots.iloc[rows:].copy()]
            del gathered_leads, gathered_snapshots
            pending -= rows
            yielded = True
            yield batch_leads, batch_snapshots, read
            del batch_leads, batch_snapshots
    if pending or not yielded:  # the rest; or an empty batch, for the output's columns
        yield _concat(pending_leads), _concat(pending_snapshots).reset_index(drop=True), read


def _concat(frames: list) -> pd.DataFrame:
    frames = [frame for frame in frames if len(frame)] or frames[:1]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _bar(total, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit=" leads", unit_scale=True, desc="scoring", disable=not enabled or None,
                mininterval=1.0, leave=False)


@contextmanager
def _history_run(history, scored_at):
    """This run's history writer (None without a history): committed on a clean exit, else discarded."""
    if history is None:
        yield None
        return
    writer = history.writer(scored_at)
    try:
        yield writer
        writer.commit()
    finally:
        writer.discard()
