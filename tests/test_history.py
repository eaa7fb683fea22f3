"""Score history: runs appended, previous score and trend in the output, a lead's trajectory, scores vs outcomes."""

import numpy as np
import pandas as pd
import pytest

import serve
from scoring.history_evaluation import evaluate_history, outcome_labels
from scoring.batch import score_lead_base
from scoring.history import DamagedHistoryWarning, ScoreHistory, trend


def test_trend_compares_with_the_previous_score():
    got = trend([50, 52, 60, 40, 30, 55], pd.array([None, 50, 55, 45, 36, 50], dtype="Int64"))
    assert list(got) == ["new", "steady", "rising", "falling", "falling", "rising"]


@pytest.fixture
def two_runs(small_models, tmp_path):
    bundle, crm = small_models["lightgbm"], small_models["crm"]
    history = ScoreHistory(tmp_path / "history")
    outputs = []
    for as_of in ("2025-10-01", "2025-11-15"):
        out = tmp_path / f"scores_{as_of}.parquet"
        score_lead_base(bundle, crm.leads, crm.events, as_of=pd.Timestamp(as_of), out=out, deals=crm.deals,
                        model_version="7", model_name="lead-conversion", history=history, chunk_size=400)
        outputs.append(pd.read_parquet(out))
    return history, outputs


def test_two_runs_give_previous_scores_and_trends(two_runs, capsys):
    history, (first, second) = two_runs
    assert {"previous_score", "previous_scored_at", "trend"} <= set(second.columns)
    assert (first["trend"] == "new").all() and first["previous_score"].isna().all()
    merged = second.merge(first[["lead_id", "score"]], on="lead_id", how="left", suffixes=("", "_first"))
    again = merged["score_first"].notna()
    assert again.sum() > 100 and (~again).sum() > 0  # leads scored twice, and leads new in the second run
    np.testing.assert_array_equal(merged.loc[again, "previous_score"].astype(int), merged.loc[again, "score_first"])
    change = merged["score"] - merged["score_first"]
    expected = np.where(~again, "new", np.where(change >= 5, "rising", np.where(change <= -5, "falling", "steady")))
    np.testing.assert_array_equal(merged["trend"], expected)

    stored = history.read()
    assert len(stored) == len(first) + len(second)
    assert stored["as_of"].nunique() == 2 and set(stored["model_name"]) == {"lead-conversion"}
    assert {"fit_score", "engagement_score", "positive_reason_1", "as_of", "model_version"} <= set(stored.columns)
    assert not list(history.folder.rglob("*.tmp"))

    lead = merged.loc[again, "lead_id"].iloc[0]
    assert serve.main(["history", "--history", str(history.folder), "--lead", str(lead)]) == 0
    printed = capsys.readouterr().out
    assert f"lead {lead}: 2 stored score(s)" in printed
    assert "2025-10-01" in printed and "2025-11-15" in printed
    assert serve.main(["history", "--history", str(history.folder), "--lead", "no-such-lead"]) == 1


def test_a_failed_run_adds_nothing_to_the_history(small_models, tmp_path):
    bundle, crm = small_models["logistic"], small_models["crm"]
    history = ScoreHistory(tmp_path / "history")

    class BrokenSink:
        def __enter__(self):
            self.chunks = 0
            return self

        def write(self, frame):
            self.chunks += 1
            if self.chunks == 2:
                raise OSError("disk full")

        def __exit__(self, *exc):
            return False

    with pytest.raises(OSError, match="disk full"):
        score_lead_base(bundle, crm.leads, crm.events, as_of=pd.Timestamp("2025-10-01"), out=BrokenSink(),
                        deals=crm.deals, history=history, chunk_size=100, explain=False)
    assert history.read().empty
    assert not [path for path in history.folder.rglob("*") if path.is_file()]


def test_stored_scores_against_later_outcomes_worked_by_hand(tmp_path, capsys):
    history = pd.DataFrame({
        "lead_id": [1, 2, 3, 3, 4],
        "as_of": pd.to_datetime(["2025-01-01"] * 3 + ["2025-05-01"] * 2),
        "scored_at": pd.to_datetime(["2025-01-01 02:00"] * 3 + ["2025-05-01 02:00"] * 2),
        "model_name": "m", "model_version": ["1", "1", "1", "2", "2"],
        "probability": [0.8, 0.2, 0.5, 0.6, 0.3], "score": [80, 20, 50, 60, 30],
        "tier": ["SQL", "nurture", "MQL", "SQL", "MQL"],
    })
    deals = pd.DataFrame({"lead_id": [1, 2, 3], "outcome": ["won", "lost", "won"],
                          "closed_at": ["2025-02-01", "2025-01-15", "2025-06-01"]})
    labelled = outcome_labels(history, deals, horizon_days=90)
    # lead 1 won within 90 days; lead 2 lost; lead 3 won after the first horizon but within the second;
    # lead 4 has no deal and its horizon (to 2025-07-30) has not ended by the last deal (2025-06-01).
    assert labelled["label"].tolist() == [1, 0, 0, 1, 0]
    assert labelled["resolved"].tolist() == [True, True, True, True, False]

    table = evaluate_history(history, deals, horizon_days=90).set_index("model_version")
    assert table.loc["1", ["leads", "resolved", "conversions"]].tolist() == [3, 3, 1]
    assert table.loc["1", "roc_auc"] == 1.0
    assert table.loc["1", "brier"] == pytest.approx((0.2 ** 2 + 0.2 ** 2 + 0.5 ** 2) / 3)
    assert table.loc["1", "SQL_conversion"] == 1.0 and table.loc["1", "nurture_conversion"] == 0.0
    assert table.loc["2", ["leads", "resolved", "conversions"]].tolist() == [2, 1, 1]
    assert np.isnan(table.loc["2", "roc_auc"])
    # Expected when scored, over all the run's leads: 0.8 + 0.2 + 0.5 conversions; pairs (converting, not)
    # weighted p_i (1 - p_j): right 0.8*0.8 + 0.8*0.5 + 0.5*0.8 = 1.44 of 1.44 + 0.2*0.2 + 0.2*0.5 + 0.5*0.2 = 1.68.
    assert table.loc["1", "expected_conversions"] == pytest.approx(1.5)
    assert table.loc["1", "expected_roc_auc"] == pytest.approx(1.44 / 1.68)
    assert table.loc["1", "expected_sql_precision"] == pytest.approx(0.8)
    assert table.loc["2", "expected_conversions"] == pytest.approx(0.9)
    assert list(table.columns[:5]) == ["scored_at", "as_of", "model_name", "leads", "resolved"]

    # The same through the CLI, from a stored history and a deals file.
    folder = tmp_path / "history"
    for scored_at, rows in history.groupby("scored_at"):
        writer = ScoreHistory(folder).writer(scored_at)
        writer.write(rows)
        writer.commit()
    deals.to_csv(tmp_path / "deals.csv", index=False)
    assert serve.main(["history", "--history", str(folder), "--evaluate", "--deals", str(tmp_path / "deals.csv")]) == 0
    printed = capsys.readouterr().out
    assert "1.000" in printed and "within 90 days" in printed
    assert "expected_roc_auc" in printed and "0.857" in printed


def test_a_damaged_history_is_skipped_with_one_warning_per_file_and_set_aside(two_runs, small_models, tmp_path,
                                                                              capsys):
    import subprocess
    import sys

    history, (first, second) = two_runs
    folder = history.folder
    good = sorted(folder.glob("scored_date=*/*.parquet"))
    partition = good[-1].parent
    (partition / "run-empty.parquet").write_bytes(b"")
    (partition / "run-cut.parquet").write_bytes(good[0].read_bytes()[:300])  # killed mid-copy
    (partition / "run-text.parquet").write_text("lead_id,score\n1,50\n")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_temp = partition / f".run-x.parquet.{dead.stdout.strip()}.abc.tmp"  # its writer was killed
    old_temp = partition / ".run-y.parquet.abc.tmp"  # an old writer's name, without a process id
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    live_temp = partition / f".run-z.parquet.{live.pid}.abc.tmp"
    for temp in (dead_temp, old_temp, live_temp):
        temp.write_bytes(b"PAR1")
    try:
        lead = first["lead_id"].iloc[0]
        capsys.readouterr()
        with pytest.warns(DamagedHistoryWarning) as recorded:
            assert serve.main(["history", "--history", str(folder), "--lead", str(lead)]) == 0
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err and f"lead {lead}: 2 stored score(s)" in captured.out
        warned = [str(warning.message) for warning in recorded]
        assert len(warned) == 3 and all("\n" not in line for line in warned), warned
        for name, problem in (("run-empty", "the file is empty"), ("run-cut", "not a readable Parquet file"),
                              ("run-text", "not a readable Parquet file")):
            line = next(line for line in warned if f"{name}.parquet:" in line)
            assert problem in line and str(folder / "_damaged" / partition.name / f"{name}.parquet") in line
            assert (folder / "_damaged" / partition.name / f"{name}.parquet").exists()
            assert not (partition / f"{name}.parquet").exists()
        assert not dead_temp.exists() and not old_temp.exists() and live_temp.exists()
    finally:
        live.kill()
        live.wait()
    # The next scoring run reads the history that is left, and adds to it.
    out = tmp_path / "third.parquet"
    score_lead_base(small_models["lightgbm"], small_models["crm"].leads, small_models["crm"].events,
                    as_of=pd.Timestamp("2025-12-01"), out=out, deals=small_models["crm"].deals, model_version="7",
                    model_name="lead-conversion", history=history, chunk_size=400)
    third = pd.read_parquet(out)
    assert (third["trend"] != "new").sum() > 100
    assert len(history.read()) == len(first) + len(second) + len(third)
