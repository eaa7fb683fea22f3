"""The tier planner's server side: probability bins, cut-offs from volumes, and the saved tier policy end to end."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from models.score_bins import gains_by_score, normal_conversion_interval, probability_bins
from models.tiers import TierThresholds
from scoring.planner import WEEKS_PER_MONTH, cutoff_from_setting


def _bin_by_hand(p: float, bins: int) -> int:
    """The last edge k / bins at or below p, one comparison per edge, as ``p >= cut-off`` tiers a lead."""
    return min(max(k for k in range(bins + 1) if p >= k / bins), bins - 1)


def test_bins_hold_the_counts_and_sums_pandas_finds_per_interval():
    rng = np.random.default_rng(3)
    # Values on edges (0.3, 0.001 * k) are where floor(p * bins) would go wrong.
    p = np.r_[rng.beta(0.6, 6, 400), 0.3, 0.3, 0.0, 1.0, 0.001, 0.999, 0.7]
    y = (rng.random(p.size) < p).astype(int)
    bins = probability_bins(p, converted=y, bins=1000)
    by_hand = pd.DataFrame({"bin": [_bin_by_hand(v, 1000) for v in p], "p": p, "y": y})
    expected = by_hand.groupby("bin").agg(leads=("p", "size"), expected=("p", "sum"), converted=("y", "sum"),
                                          variance=("p", lambda s: float((s * (1 - s)).sum()))).reset_index()
    assert bins["bin"].tolist() == expected["bin"].tolist()
    assert bins["leads"].tolist() == expected["leads"].tolist()
    assert bins["converted"].tolist() == expected["converted"].tolist()
    np.testing.assert_allclose(bins["expected"], expected["expected"], rtol=1e-12)
    np.testing.assert_allclose(bins["variance"], expected["variance"], rtol=1e-12, atol=1e-15)
    # A cut-off on an edge splits bins as TierThresholds splits leads.
    for k in (1, 100, 300, 999):
        cut = k / 1000
        assert int(bins.loc[bins["bin"] >= k, "leads"].sum()) == int((p >= cut).sum())


def test_bins_refuse_probabilities_outside_zero_and_one():
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        probability_bins([0.2, 1.5])
    with pytest.raises(ValueError, match="one 0 or 1 per probability"):
        probability_bins([0.2, 0.5], converted=[1, 2])


def test_gains_by_score_counts_each_score_highest_first():
    gains = gains_by_score([10, 30, 30, 5, 10, 30], [1, 1, 0, 0, 0, 1])
    assert gains.to_dict("list") == {"score": [30.0, 10.0, 5.0], "leads": [3, 2, 1], "converted": [2, 1, 0]}


def test_normal_interval_is_the_mean_plus_minus_z_sd_rounded_outwards():
    # 1.6448536... is the 95th percentile of the standard normal: 100 +- 1.645 * 5 = [91.78, 108.22].
    assert normal_conversion_interval(100.0, 25.0, level=0.9) == (91, 109)
    assert normal_conversion_interval(0.2, 0.16, level=0.9) == (0, 1)


def test_volume_cutoff_is_the_highest_edge_with_that_many_leads():
    rng = np.random.default_rng(8)
    p = rng.beta(0.8, 8, 5_000)
    bins = probability_bins(p)
    per_week = 1_000.0  # the whole base is 5,000 leads arriving 1,000 a week
    for wanted_per_week in (7, 40, 123.5, 950):
        cut = cutoff_from_setting({"mode": "per_week", "value": wanted_per_week}, bins, leads_per_week=per_week)
        wanted = wanted_per_week / per_week * p.size
        edges = np.arange(1, 1000) / 1000
        reaching = [edge for edge in edges if (p >= edge).sum() >= wanted]
        assert cut == max(reaching)
    monthly = cutoff_from_setting({"mode": "per_month", "value": 40 * WEEKS_PER_MONTH}, bins, leads_per_week=per_week)
    assert monthly == cutoff_from_setting({"mode": "per_week", "value": 40}, bins, leads_per_week=per_week)
    capacity = cutoff_from_setting({"mode": "capacity", "reps": 4, "per_rep": 10}, bins, leads_per_week=per_week)
    assert capacity == cutoff_from_setting({"mode": "per_week", "value": 40}, bins, leads_per_week=per_week)


@pytest.mark.parametrize("setting, message", [
    ({"mode": "capacity", "reps": 0, "per_rep": 10}, "capacity of 0 reps x 10 leads per rep a week is zero"),
    ({"mode": "per_week", "value": 2_000}, "more than the whole base delivers"),
    ({"mode": "per_week", "value": 0}, "is zero"),
    ({"mode": "per_week", "value": "many"}, "must be a number"),
    ({"mode": "weekly", "value": 3}, "mode must be one of"),
])
def test_senseless_settings_are_refused_in_one_sentence(setting, message):
    bins = probability_bins(np.linspace(0.01, 0.9, 500))
    with pytest.raises(ValueError, match=message) as error:
        cutoff_from_setting(setting, bins, leads_per_week=1_000.0)
    assert str(error.value).count(". ") == 0 and "\n" not in str(error.value)


def test_open_base_reads_the_latest_scores_and_follows_a_new_run(tmp_path):
    from scoring.history import ScoreHistory
    from scoring.planner import OpenBase

    csv = tmp_path / "scores.csv"
    pd.DataFrame({"lead_id": [1, 2, 3], "probability": [0.1, 0.5, 0.5], "model_version": "3"}).to_csv(csv, index=False)
    bins, facts = OpenBase(scores=csv).binned()
    assert bins[["bin", "leads"]].to_dict("list") == {"bin": [100, 500], "leads": [1, 2]}
    assert facts["leads"] == 3 and facts["model_versions"] == ["3"]

    history = ScoreHistory(tmp_path / "history")
    base = OpenBase(history=tmp_path / "history")
    assert base.binned() is None  # nothing scored yet
    for day, probabilities in (("2026-01-01", [0.2, 0.2]), ("2026-01-02", [0.9, 0.3, 0.3])):
        writer = history.writer(pd.Timestamp(f"{day} 06:00"))
        writer.write(pd.DataFrame({"lead_id": range(len(probabilities)), "probability": probabilities,
                                   "model_version": "4"}))
        writer.commit()
        bins, facts = base.binned()
        assert int(bins["leads"].sum()) == len(probabilities)  # the newest run only
    assert bins[["bin", "leads"]].to_dict("list") == {"bin": [300, 900], "leads": [2, 1]}

    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"lead_id": [1, 2], "probability": [0.2, 1.7]}).to_parquet(bad)
    with pytest.raises(ValueError, match=r"bad.parquet: column 'probability' must hold numbers in \[0, 1\]; rows \[1\]"):
        OpenBase(scores=bad).binned()


# --- the saved policy, on a real trained model in a real MLflow store -------------------------------------------

def _score(folder, out, *extra):
    from serve import main as serve_main

    tables = [part for name in ("leads", "events", "deals")
              for part in (f"--{name}", str(folder / "crm" / f"{name}.parquet"))]
    assert serve_main(["score", *tables, "--as-of", (folder / "as_of").read_text(), "--out", str(out),
                       "--no-monitoring", "--no-reasons", "--quiet", *extra]) == 0
    return pd.read_parquet(out)


def test_saved_policy_changes_the_next_score_and_restoring_brings_back_the_tiers(planned, capsys, monkeypatch):
    from serve import main as serve_main

    trained = mlflow.pyfunc.load_model("models:/lead-conversion@champion").unwrap_python_model().bundle.thresholds
    before = _score(planned, planned / "before.parquet")
    assert (before["tier"].to_numpy() == trained.assign(before["probability"])).all()

    # 40 SQLs a week on a base arriving 100 leads a week: the top 40 % of the scored base.
    assert serve_main(["policy", "save", "--sql-per-week", "40", "--mql", "0.02", "--leads-per-week", "100",
                       "--scores", str(planned / "scores.parquet"), "--by", "Sales lead", "--reason",
                       "two more reps"]) == 0
    assert "saved entry " in capsys.readouterr().out
    scored = pd.read_parquet(planned / "scores.parquet")["probability"].to_numpy()
    edges = np.arange(1, 1000) / 1000
    sql = max(edge for edge in edges if (scored >= edge).sum() >= 0.4 * scored.size)
    after = _score(planned, planned / "after.parquet")
    assert (after["tier"].to_numpy() == TierThresholds(mql=0.02, sql=sql).assign(after["probability"])).all()
    assert (after["tier"] != before["tier"]).any()
    # The HTTP service started now serves the saved policy: /model shows it, /score tiers by it.
    served = _http_app(monkeypatch)
    assert served.get("/model").json()["thresholds"] == {"mql": 0.02, "sql": sql}
    lead = {"lead_id": 1, "created_at": "2025-12-01T00:00:00", "attributes": {"industry": "software"},
            "events": [{"occurred_at": "2026-03-20T10:00:00", "event_type": "demo_request"}]}
    result = served.post("/score?as_of=2026-04-01T00:00:00", json=lead).json()["results"][0]
    assert result["tier"] == TierThresholds(mql=0.02, sql=sql).assign([result["probability"]])[0]
    # A flag still overrides the saved policy for one run.
    flagged = _score(planned, planned / "flagged.parquet", "--sql-threshold", "0.9")
    assert (flagged["tier"].to_numpy() == TierThresholds(mql=0.02, sql=0.9).assign(flagged["probability"])).all()

    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("lead-conversion", "champion")
    assert version.tags["tier_policy_reason"] == "two more reps" and version.tags["tier_policy_by"] == "Sales lead"
    history = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/tier_policy/history.json")
    assert [entry["entry"] for entry in history] == list(range(len(history)))
    assert history[-1]["settings"]["sql"] == {"mode": "per_week", "value": 40.0}
    assert history[-1]["sql"] == sql and history[-1]["reason"] == "two more reps"
    assert history[0]["sql"] == trained.sql and history[0]["by"] == "training run"

    assert serve_main(["policy", "restore", "--entry", "0", "--by", "Sales lead", "--reason", "back"]) == 0
    restored = _score(planned, planned / "restored.parquet")
    assert restored["tier"].tolist() == before["tier"].tolist()
    capsys.readouterr()
    assert serve_main(["policy", "show"]) == 0
    shown = capsys.readouterr().out
    assert "two more reps" in shown and "back" in shown and shown.count("SQL from") == len(history) + 1


@pytest.mark.parametrize("arguments, message", [
    (["--sql", "0.1", "--mql", "0.2"], "SQL cut-off must lie above the MQL cut-off"),
    (["--sql-per-week", "500", "--mql", "0.01", "--leads-per-week", "100"], "more than the whole base delivers"),
    (["--sql-per-week", "0", "--mql", "0.01"], "is zero"),
    (["--sql", "0.3", "--mql", "0.1", "--reason", " "], "needs a reason"),
])
def test_bad_policies_are_refused_and_leave_the_saved_one(planned, capsys, arguments, message):
    from serve import main as serve_main

    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("lead-conversion", "champion")
    tags_before = {k: v for k, v in version.tags.items() if k.startswith("tier_policy")}
    history_before = _history_text(version.run_id)
    extra = [] if "--reason" in arguments else ["--reason", "try"]
    code = serve_main(["policy", "save", *arguments, *extra, "--scores", str(planned / "scores.parquet")])
    error = capsys.readouterr().err
    assert code == 2 and message in error and error.count("\n") == 1, error
    after = client.get_model_version_by_alias("lead-conversion", "champion")
    assert {k: v for k, v in after.tags.items() if k.startswith("tier_policy")} == tags_before
    assert _history_text(version.run_id) == history_before


REFUSED = [  # (request body, the sentence's words): each refused, nothing saved
    ({"sql": {"mode": "capacity", "reps": 0, "per_rep": 10}, "mql": {"mode": "probability", "value": 0.05}},
     "A SQL capacity of 0 reps x 10 leads per rep a week is zero"),
    ({"sql": {"mode": "probability", "value": 0.05}, "mql": {"mode": "probability", "value": 0.2}},
     "The SQL cut-off must lie above the MQL cut-off"),
    ({"sql": {"mode": "per_week", "value": 5_000}, "mql": {"mode": "probability", "value": 0.01},
      "leads_per_week": 100}, "more than the whole base delivers"),
    ({"sql": {"mode": "probability", "value": 0.3}, "mql": {"mode": "probability", "value": 0.1}, "reason": ""},
     "needs a reason"),
]


def test_the_page_s_save_route_refuses_senseless_policies_in_one_sentence(planned, monkeypatch):
    client = mlflow.MlflowClient()
    before = client.get_model_version_by_alias("lead-conversion", "champion")
    history = _history_text(before.run_id)
    served = _http_app(monkeypatch, scores=str(planned / "scores.parquet"))  # one worker's app for every case
    for body, message in REFUSED:
        answer = served.post("/planner/policy", json={"by": "Marketing lead", "reason": "try", **body})
        assert answer.status_code == 422, body
        problem = answer.json()["detail"][0]["problem"]
        assert message in problem and "\n" not in problem, problem
    after = client.get_model_version_by_alias("lead-conversion", "champion")
    assert {k: v for k, v in after.tags.items() if k.startswith("tier_policy")} == \
        {k: v for k, v in before.tags.items() if k.startswith("tier_policy")}
    assert _history_text(before.run_id) == history


def _http_app(monkeypatch, scores=None):
    """The app one ``serve.py http`` worker builds (scoring.http_server.http_app), in this process."""
    import gc

    from fastapi.testclient import TestClient

    from scoring import http_server

    monkeypatch.setenv(http_server.HTTP_SETTINGS_VARIABLE, json.dumps({
        "model_uri": "models:/lead-conversion@champion", "pinned_uri": "models:/lead-conversion@champion",
        "workers": 1, "max_body_bytes": 1_000_000, "max_leads": 10, "verbose": 0, "scores": scores, "history": None}))
    app = http_server.http_app()
    gc.unfreeze()  # the worker freezes its model for the process's life; a test process lives on
    return TestClient(app)


def _history_text(run_id):
    try:
        return json.dumps(mlflow.artifacts.load_dict(f"runs:/{run_id}/tier_policy/history.json"))
    except Exception:  # noqa: BLE001 - nothing saved yet is an answer too
        return None
