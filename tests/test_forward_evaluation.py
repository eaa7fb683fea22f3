"""The demo's forward evaluation: the export cut where training ends, the world continued, stored scores judged."""

import re

import numpy as np
import pandas as pd
import pytest

from crm.synthetic import as_it_stood, generate_crm, load_truth
from scoring.history import ScoreHistory
from workflows.demo import CONTINUED, forward_evaluation, write_synthetic_crm


def test_as_it_stood_keeps_what_happened_before_the_cut_and_the_whole_truth():
    world = generate_crm(400, months=8, seed=3)
    cut = world.end - pd.DateOffset(months=2)
    known = as_it_stood(world, cut)
    assert known.end == cut and known.truth is world.truth
    for frame, column, everything in ((known.leads, "created_at", world.leads), (known.events, "occurred_at",
                                                                                  world.events),
                                      (known.deals, "closed_at", world.deals)):
        assert (frame[column] < cut).all()
        assert len(frame) == int((everything[column] < cut).sum()) < len(everything)
    # The oracle still answers after the cut: the hidden stages went on.
    later = pd.DataFrame({"lead_id": known.leads["lead_id"].head(5), "as_of": world.end - pd.Timedelta(days=1)})
    assert world.truth.oracle_probability(later).shape == (5,)
    with pytest.raises(ValueError, match="'end' parameter of as_it_stood"):
        as_it_stood(world, world.end + pd.Timedelta(days=1))


def test_forward_evaluation_of_the_oracle_itself_has_no_gap(tmp_path):
    write_synthetic_crm(tmp_path, leads=1500, months=9, seed=4, forward_months=3)
    leads, deals = pd.read_parquet(tmp_path / "leads.parquet"), pd.read_parquet(tmp_path / "deals.parquet")
    future = pd.read_parquet(tmp_path / CONTINUED / "deals.parquet")
    truth = load_truth(tmp_path)
    as_of = max(leads["created_at"].max(), deals["closed_at"].max())
    assert as_of < future["closed_at"].max() - pd.Timedelta(days=60)  # the continued world goes on
    open_base = pd.DataFrame({"lead_id": leads.loc[~leads["lead_id"].isin(deals["lead_id"]), "lead_id"], "as_of": as_of})
    # The newest lead was created at as_of itself: the oracle knows its stage only a moment later.
    probability = truth.oracle_probability(open_base.assign(as_of=as_of + pd.Timedelta(seconds=1)))
    history = ScoreHistory(tmp_path / "score_history")
    writer = history.writer(pd.Timestamp("2026-12-01"))
    writer.write(open_base.assign(probability=probability, score=np.round(probability * 100),
                                  tier=np.where(probability > 0.3, "SQL", "nurture"), model_name="oracle",
                                  model_version="1", scored_at=pd.Timestamp("2026-12-01")))
    writer.commit()
    # An earlier run of random scores stays in the history (and its table) but not in this run's gap.
    earlier = history.writer(pd.Timestamp("2026-11-01"))
    earlier.write(open_base.assign(probability=np.random.default_rng(0).random(len(open_base)), score=1.0,
                                   tier="nurture", model_name="oracle", model_version="0",
                                   scored_at=pd.Timestamp("2026-11-01")))
    earlier.commit()
    text = forward_evaluation(history, tmp_path, truth=truth, horizon_days=90)
    won = future[future["outcome"].eq("won") & (future["closed_at"] >= as_of)
                 & (future["closed_at"] < as_of + pd.Timedelta(days=90))]
    converted = int(open_base["lead_id"].isin(won["lead_id"]).sum())
    assert converted >= 10
    # The lead created at the very moment scored has no stage before it: left out of the oracle's comparison.
    assert (open_base["lead_id"] == leads.loc[leads["created_at"].eq(as_of), "lead_id"].iloc[0]).sum() == 1
    assert re.search(rf"gap 0\.0000 on {len(open_base) - 1:,} open leads \({converted:,} converted\)", text), text
    assert "history --history" in text and "--evaluate" in text
