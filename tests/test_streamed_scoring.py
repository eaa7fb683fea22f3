"""Batch scoring read chunk by chunk (Parquet record batches, CSV lines): the same scores as the whole table."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crm.sources import StreamedLeads, stream_crm
from features.contract import DataContractError
from models.batch import score_lead_base


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
