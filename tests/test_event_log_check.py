"""The event log's contract check counted during batch scoring's one read (features.event_log_check).

Each bad log is refused with the very message ``validate_events`` gives for the same file (the
check as it ran before, in a scan of its own), nothing is written, and a clean log is never
scanned a second time.
"""

import numpy as np
import pandas as pd
import pytest

from crm.sources import stream_crm
from features.contract import DataContractError, validate_events
from features.event_log_check import EventLogToCheck
from features.lead_events import LeadEvents
from scoring.batch import score_lead_base


@pytest.fixture(scope="module")
def files(small_models, tmp_path_factory):
    crm = small_models["crm"]
    folder = tmp_path_factory.mktemp("event-log-check")
    crm.leads.to_parquet(folder / "leads.parquet", index=False)
    crm.deals.to_parquet(folder / "deals.parquet", index=False)
    return folder, crm


def _bad_logs(events: pd.DataFrame, end: pd.Timestamp) -> dict:
    """name -> (log, rows validate_events refuses, counted independently of the code under test)."""
    future = events.copy()
    future.loc[future.index[[5, 50, 500]], "occurred_at"] = end + pd.Timedelta(days=1)
    untimed = events.copy()
    untimed.loc[untimed.index[[7, 70]], "occurred_at"] = pd.NaT
    unknown = events.copy()
    unknown.loc[unknown.index[[1, 2, 3, 4]], "lead_id"] = 10 ** 9
    return {"future": (future, 3), "untimed": (untimed, 2), "unknown": (unknown, 4), "empty": (events.iloc[:0], 0)}


def _write(frame: pd.DataFrame, path):
    frame.to_parquet(path, index=False)
    return path


def _open_mask(crm):
    from features.snapshots import open_leads

    return crm.leads["lead_id"].isin(open_leads(crm.leads, crm.deals, crm.end)["lead_id"]).to_numpy()


def test_the_counts_of_one_read_find_what_the_contract_refuses(small_models, files, tmp_path):
    folder, crm = files
    bundle = small_models["logistic"]
    types, ids, keep = bundle.spec.event_keys_with_other, crm.leads["lead_id"], _open_mask(crm)
    # Closed leads have events: matched as known leads, though their events are not kept.
    assert (~keep).sum() > 100 and crm.events["lead_id"].isin(ids[~keep]).sum() > 100
    clean = EventLogToCheck(_write(crm.events, tmp_path / "clean.parquet"), leads=None, now=crm.end)
    counts = clean.counts()
    read = LeadEvents.read(clean, ids, types, keep=keep, check=counts)
    assert counts.passed() and counts.rows == len(crm.events) and counts.refused == 0
    assert len(read.lookup.ids) == keep.sum()
    for name, (log, refused) in _bad_logs(crm.events, crm.end).items():
        path = EventLogToCheck(_write(log, tmp_path / f"{name}.parquet"), leads=None, now=crm.end)
        counts = path.counts()
        LeadEvents.read(path, ids, types, keep=keep, check=counts)
        assert not counts.passed(), name
        assert (counts.rows, counts.refused) == (len(log), refused), name


@pytest.mark.parametrize("case", ["future", "untimed", "unknown", "empty", "ids as decimals"])
def test_a_bad_log_is_refused_with_the_contracts_own_message_and_nothing_written(small_models, files, tmp_path,
                                                                                  case):
    folder, crm = files
    logs = _bad_logs(crm.events, crm.end)
    # Decimal ids are compared as text by the contract ("7.0" is not 7): the counts leave that to it.
    log = crm.events.astype({"lead_id": float}) if case == "ids as decimals" else logs[case][0]
    path = _write(log, tmp_path / "events.parquet")
    with pytest.raises(DataContractError) as before:  # the check as it ran before: a scan of its own
        validate_events(path, lead_ids=crm.leads["lead_id"], source=str(path), now=crm.end)
    leads, events, deals = stream_crm(folder / "leads.parquet", path, folder / "deals.parquet", now=crm.end,
                                      chunk_rows=400)
    assert isinstance(events, EventLogToCheck)
    out = tmp_path / "scores.parquet"
    with pytest.raises(DataContractError) as error:
        score_lead_base(small_models["logistic"], leads, events, as_of=crm.end, deals=deals, out=out,
                        chunk_size=400, explain=False)
    assert str(error.value) == str(before.value)
    assert not out.exists()


class _CountedValidation(EventLogToCheck):
    """The log as stream_crm hands it on, counting the scans of its own it asks for."""

    scans = 0

    def validate(self, lead_ids=None):
        type(self).scans += 1
        super().validate(lead_ids)


def test_a_clean_log_is_read_once_and_scores_as_a_checked_one(small_models, files, tmp_path):
    folder, crm = files
    bundle = small_models["logistic"]
    _CountedValidation.scans = 0
    path = _write(crm.events, tmp_path / "events.parquet")
    checked, unchecked = tmp_path / "checked.parquet", tmp_path / "unchecked.parquet"
    validate_events(path, lead_ids=crm.leads["lead_id"], now=crm.end)
    score_lead_base(bundle, crm.leads, path, as_of=crm.end, deals=crm.deals, out=checked, explain=False)
    leads, _, deals = stream_crm(folder / "leads.parquet", None, folder / "deals.parquet", now=crm.end,
                                 chunk_rows=400)
    once = _CountedValidation(path, leads=leads.source, now=crm.end)
    score_lead_base(bundle, leads, once, as_of=crm.end, deals=deals, out=unchecked, chunk_size=400, explain=False)
    assert _CountedValidation.scans == 0
    expected, got = pd.read_parquet(checked), pd.read_parquet(unchecked)
    assert len(got) > 300
    pd.testing.assert_frame_equal(got.drop(columns="scored_at"), expected.drop(columns="scored_at"))
    # Lead chunks without their ids up front read the events per chunk: the log is scanned first.
    per_chunk = _CountedValidation(path, leads=leads.source, now=crm.end)
    score_lead_base(bundle, iter(leads), per_chunk, as_of=crm.end, deals=deals, out=tmp_path / "chunks.parquet",
                    chunk_size=400, explain=False)
    assert _CountedValidation.scans == 1
    assert np.array_equal(pd.read_parquet(tmp_path / "chunks.parquet")["probability"], got["probability"])
