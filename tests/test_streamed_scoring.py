"""Batch scoring read chunk by chunk (Parquet record batches, CSV lines): the same scores as the whole table."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crm.sources import StreamedLeads, stream_crm
from features.contract import DataContractError
from scoring.batch import score_lead_base


@pytest.fixture(scope="module")
def crm_files(small_models, tmp_path_factory):
    crm = small_models["crm"]
    folder = tmp_path_factory.mktemp("streamed")
    # Small row groups, so the reader really streams several batches.
    pq.write_table(pa.Table.from_pandas(crm.leads, preserve_index=False), folder / "leads.parquet",
                   row_group_size=200)
    crm.leads.to_csv(folder / "leads.csv", index=False)
    crm.events.to_parquet(folder / "events.parquet", index=False)
    crm.deals.to_parquet(folder / "deals.parquet", index=False)
    return folder, crm


@pytest.mark.parametrize("file_name", ["leads.parquet", "leads.csv"])
@pytest.mark.parametrize("explain", [True, False])
def test_streamed_chunks_score_like_the_whole_table(small_models, crm_files, tmp_path, file_name, explain):
    folder, crm = crm_files
    bundle = small_models["lightgbm"]
    whole = tmp_path / "whole.parquet"
    counts = score_lead_base(bundle, crm.leads, crm.events, as_of=crm.end, deals=crm.deals, out=whole,
                             chunk_size=10_000, explain=explain)
    leads, events, deals = stream_crm(folder / file_name, folder / "events.parquet", folder / "deals.parquet",
                                      now=crm.end, chunk_rows=170)
    streamed = tmp_path / "streamed.parquet"
    streamed_counts = score_lead_base(bundle, leads, events, as_of=crm.end, deals=deals, out=streamed,
                                      chunk_size=170, explain=explain)
    pd.testing.assert_series_equal(streamed_counts, counts)
    expected, got = pd.read_parquet(whole), pd.read_parquet(streamed)
    assert len(got) == int(counts.sum()) > 100
    pd.testing.assert_frame_equal(got.drop(columns="scored_at"), expected.drop(columns="scored_at"),
                                  check_exact=False, atol=1e-12, rtol=0)


def test_a_lead_chunk_sees_only_its_own_events(small_models, crm_files, tmp_path):
    """Scores of the first chunk do not change when the other chunks' leads are left out entirely."""
    folder, crm = crm_files
    bundle = small_models["logistic"]
    first = crm.leads.head(170)
    alone = tmp_path / "alone.parquet"
    score_lead_base(bundle, first, crm.events, as_of=crm.end, deals=crm.deals, out=alone, explain=False)
    leads, events, deals = stream_crm(folder / "leads.parquet", folder / "events.parquet", folder / "deals.parquet",
                                      now=crm.end, chunk_rows=170)
    every = tmp_path / "every.parquet"
    score_lead_base(bundle, leads, events, as_of=crm.end, deals=deals, out=every, chunk_size=170, explain=False)
    alone, every = pd.read_parquet(alone), pd.read_parquet(every)
    merged = alone.merge(every, on="lead_id", suffixes=("", "_every"))
    assert len(merged) == len(alone) > 0
    np.testing.assert_array_equal(merged["probability"], merged["probability_every"])


def test_duplicate_ids_in_different_chunks_are_refused_before_anything_is_written(crm_files, tmp_path):
    folder, crm = crm_files
    leads = crm.leads.copy()
    leads.loc[len(leads) - 1, "lead_id"] = leads.loc[0, "lead_id"]  # first and last row: different chunks
    path = tmp_path / "leads.parquet"
    pq.write_table(pa.Table.from_pandas(leads, preserve_index=False), path, row_group_size=200)
    with pytest.raises(DataContractError, match=r"leads.parquet.*lead_id.*unique values"):
        StreamedLeads(path, chunk_rows=200)


def test_a_bad_row_in_a_later_chunk_leaves_no_output(small_models, crm_files, tmp_path):
    folder, crm = crm_files
    leads = crm.leads.copy()
    leads["created_at"] = leads["created_at"].astype(str)
    leads.loc[len(leads) - 1, "created_at"] = "not a date"
    path = tmp_path / "leads.csv"
    leads.to_csv(path, index=False)
    out = tmp_path / "scores.parquet"
    streamed, events, deals = stream_crm(path, folder / "events.parquet", folder / "deals.parquet", now=crm.end,
                                         chunk_rows=200)
    with pytest.raises(DataContractError, match="created_at"):
        score_lead_base(small_models["logistic"], streamed, events, as_of=crm.end, deals=deals, out=out,
                        chunk_size=200, explain=False)
    assert list(tmp_path.iterdir()) == [path]


def test_deals_read_in_batches_keep_each_leads_first_closing(crm_files, tmp_path):
    """Deals checked batch by batch, then read again for each chunk's leads, give the whole table's first closings."""
    from features.contract import validate_deals
    from features.snapshots import first_closing

    folder, crm = crm_files
    deals = crm.deals.copy()
    lead = deals["lead_id"].iloc[0]
    # A later row with an earlier closing of the same lead, in another batch.
    early = deals["closed_at"].min() - pd.Timedelta(days=1)
    deals = pd.concat([deals, pd.DataFrame({"lead_id": [lead, lead], "closed_at": [early, early],
                                            "outcome": ["lost", "won"]})], ignore_index=True)
    path = tmp_path / "deals.parquet"
    deals.to_parquet(path, index=False)
    _, _, streamed = stream_crm(folder / "leads.parquet", None, path, now=crm.end, chunk_rows=50)
    expected = first_closing(validate_deals(deals, lead_ids=crm.leads["lead_id"], now=crm.end)).reset_index()
    assert len(deals) > 100
    expected = expected[["lead_id", "closed_at"]]
    every = streamed.first_closings(crm.leads["lead_id"]).sort_values("lead_id", ignore_index=True)
    pd.testing.assert_frame_equal(every, expected)
    assert every.set_index("lead_id").loc[lead, "closed_at"] == early
    some = crm.leads["lead_id"].iloc[::7]
    pd.testing.assert_frame_equal(streamed.first_closings(some).sort_values("lead_id", ignore_index=True),
                                  expected[expected["lead_id"].isin(some)].reset_index(drop=True))
    assert streamed.latest == expected["closed_at"].max()
    # Closings written with a time zone are read as naive UTC, as the checks read them.
    zoned = tmp_path / "zoned.parquet"
    deals.assign(closed_at=deals["closed_at"].dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo")).to_parquet(zoned)
    _, _, zoned_deals = stream_crm(folder / "leads.parquet", None, zoned, now=crm.end, chunk_rows=50)
    pd.testing.assert_frame_equal(zoned_deals.first_closings(some).sort_values("lead_id", ignore_index=True),
                                  expected[expected["lead_id"].isin(some)].reset_index(drop=True))
    micro = tmp_path / "zoned_us.parquet"  # as Spark writes them: DuckDB's own route
    deals.assign(closed_at=deals["closed_at"].dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo")
                 .astype("datetime64[us, Asia/Tokyo]")).to_parquet(micro)
    _, _, micro_deals = stream_crm(folder / "leads.parquet", None, micro, now=crm.end, chunk_rows=50)
    reference = first_closing(validate_deals(pd.read_parquet(micro), lead_ids=crm.leads["lead_id"], now=crm.end))
    reference = reference.reset_index()[["lead_id", "closed_at"]].astype({"closed_at": "datetime64[ns]"})
    pd.testing.assert_frame_equal(micro_deals.first_closings(some).sort_values("lead_id", ignore_index=True),
                                  reference[reference["lead_id"].isin(some)].reset_index(drop=True))
    from scoring.score_job import deal_times
    from features.freshness import data_end

    assert data_end(crm.leads.iloc[:0], None, deal_times(streamed)) == expected["closed_at"].max()


def test_streamed_deals_hold_nothing_per_lead_and_match_ids_as_text(crm_files, tmp_path):
    """The deals kept for scoring do not grow with the table; a deal's id "17" is lead 17's."""
    import pickle

    from features.snapshots import first_closing

    folder, crm = crm_files
    sizes = []
    for rows in (50, len(crm.deals)):
        path = tmp_path / f"deals{rows}.parquet"
        crm.deals.iloc[:rows].astype({"lead_id": str}).to_parquet(path, index=False)
        _, _, streamed = stream_crm(folder / "leads.parquet", None, path, now=crm.end, chunk_rows=50)
        sizes.append(len(pickle.dumps(streamed)))
    assert len(crm.deals) > 500 and max(sizes) < 1_000  # a path and a few settings, whatever the rows
    ids = crm.leads["lead_id"]
    assert ids.dtype.kind == "i"
    got = streamed.first_closings(ids.iloc[:200])
    expected = first_closing(crm.deals[crm.deals["lead_id"].isin(ids.iloc[:200])]).reset_index()
    assert len(expected) > 10 and got["lead_id"].dtype == ids.dtype
    pd.testing.assert_frame_equal(got.sort_values("lead_id", ignore_index=True), expected[["lead_id", "closed_at"]],
                                  check_dtype=False)
    assert len(streamed.first_closings(ids.iloc[:0])) == 0


def test_a_bad_deal_in_a_later_batch_is_refused(crm_files, tmp_path):
    folder, crm = crm_files
    deals = crm.deals.copy()
    deals.loc[len(deals) - 1, "outcome"] = "maybe"
    path = tmp_path / "deals.parquet"
    deals.to_parquet(path, index=False)
    with pytest.raises(DataContractError, match=r"deals.parquet.*outcome.*'won', 'lost'"):
        stream_crm(folder / "leads.parquet", None, path, now=crm.end, chunk_rows=50)
    crm.deals.iloc[:0].to_parquet(path, index=False)  # a Parquet table without rows has no batches at all
    with pytest.raises(DataContractError, match=r"deals.parquet: the deals table has no rows"):
        stream_crm(folder / "leads.parquet", None, path, now=crm.end, chunk_rows=50)


class _CountedChunks:
    """Validated lead chunks that remember, by weak reference, which of them are still in memory."""

    def __init__(self, path, rows, now):
        self.streamed = StreamedLeads(path, now=now, chunk_rows=rows)
        self.alive, self.most_alive = [], 0

    def __len__(self):
        return len(self.streamed)

    def __iter__(self):
        import gc
        import weakref

        # Everything alive before scoring starts is set aside from the collector, so each collection below
        # walks only what scoring made (a full one walks the whole test process: seconds after Spark or MLflow).
        gc.freeze()
        try:
            for chunk in self.streamed:
                gc.collect()  # pandas frames may sit in reference cycles: count only what is really kept
                self.alive = [ref for ref in self.alive if ref() is not None]
                self.most_alive = max(self.most_alive, sum(len(ref()) for ref in self.alive))
                self.alive.append(weakref.ref(chunk))
                yield chunk
        finally:
            gc.unfreeze()


class _CountingSink:
    def __enter__(self):
        self.sizes, self.rows = [], 0
        return self

    def write(self, frame):
        self.sizes.append(len(frame))
        self.rows += len(frame)

    def __exit__(self, *exc):
        return False


def test_scoring_holds_at_most_a_chunk_of_leads_and_scores_equal_chunks_of_open_leads(small_models, crm_files):
    """Memory bounded by the chunk, counted rather than timed.

    While the next chunk is read, the lead rows of earlier chunks still in memory never exceed one
    chunk; and whatever share of a chunk is closed, open leads are gathered into scored chunks of
    exactly ``chunk_size`` (only the last is smaller), so every chunk is the same work.
    """
    from features.snapshots import open_leads

    folder, crm = crm_files
    chunk = 60
    chunks = _CountedChunks(folder / "leads.parquet", chunk, crm.end)
    _, events, deals = stream_crm(folder / "leads.parquet", folder / "events.parquet", folder / "deals.parquet",
                                  now=crm.end)
    sink = _CountingSink()
    counts = score_lead_base(small_models["logistic"], chunks, events, as_of=crm.end, deals=deals, out=sink,
                             chunk_size=chunk, explain=False)
    opened = len(open_leads(crm.leads, crm.deals, crm.end))
    # Worked out independently: the open leads cut into chunks of 60, the rest last.
    assert opened > 5 * chunk and opened % chunk
    assert sink.sizes == [chunk] * (opened // chunk) + [opened % chunk]
    assert int(counts.sum()) == opened
    assert len(crm.leads) > 10 * chunk
    assert 0 < chunks.most_alive <= chunk


def test_a_scorer_that_kept_every_chunk_would_be_caught(crm_files):
    """The counter above sees chunks that are kept: reading them all first holds the whole table."""
    folder, crm = crm_files
    chunks = _CountedChunks(folder / "leads.parquet", 60, crm.end)
    kept = list(chunks)
    assert chunks.most_alive == len(crm.leads) - len(kept[-1]) > 10 * 60


def test_a_lead_frame_with_an_event_file_scores_like_event_frames(small_models, crm_files, tmp_path):
    """The event file read once for the base (closed leads' events left out) gives the frames' scores."""
    folder, crm = crm_files
    bundle = small_models["lightgbm"]
    frames, files = tmp_path / "frames.parquet", tmp_path / "files.parquet"
    score_lead_base(bundle, crm.leads, crm.events, as_of=crm.end, deals=crm.deals, out=frames, chunk_size=150)
    score_lead_base(bundle, crm.leads, folder / "events.parquet", as_of=crm.end, deals=crm.deals, out=files,
                    chunk_size=150)
    expected, got = pd.read_parquet(frames), pd.read_parquet(files)
    assert len(got) > 300
    pd.testing.assert_frame_equal(got.drop(columns="scored_at"), expected.drop(columns="scored_at"))
