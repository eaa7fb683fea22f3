"""Rolling-origin backtest: cut-offs, PSI by hand, and a planted shift that the findings must name."""

import math

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.spec import FeatureSpec
from training.backtest import population_stability, rolling_cutoffs, run_backtest
from train import main as training_main

SPEC = FeatureSpec(categorical_columns=("Source",), numeric_columns=("Visits",), job_title_column=None,
                   email_column=None, event_log=False, lead_age=False)


def test_rolling_cutoffs_split_the_newest_half_into_equal_windows():
    times = pd.date_range("2025-01-01", periods=101, freq="D")
    windows = rolling_cutoffs(times, n_windows=4, first_share=0.5)
    starts = [(start - times[0]) / pd.Timedelta(days=1) for start, _ in windows]
    assert starts == [50.0, 62.5, 75.0, 87.5]
    assert windows[-1][1] > times[-1]  # the newest day is inside the last window
    with pytest.raises(ValueError, match="'n_windows' parameter of rolling_cutoffs must be at least 1"):
        rolling_cutoffs(times, n_windows=0)


def test_population_stability_by_hand():
    # p = (0.5, 0.5), q = (0.75, 0.25): 0.25 ln 1.5 + (-0.25) ln 0.5
    expected = 0.25 * math.log(1.5) - 0.25 * math.log(0.5)
    assert population_stability(list("aabb"), list("aaab")) == pytest.approx(expected)
    assert population_stability(list("abab"), list("baba")) == 0.0


def shifted_leads(n=4000, *, shift=True, seed=0):
    """Leads over 400 days; from day 300 on the base rate doubles, visits stop predicting the outcome and
    the web source takes over (feature drift)."""
    rng = np.random.default_rng(seed)
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.sort(rng.uniform(0, 400, n)), unit="D")
    visits = rng.gamma(2.0, 5.0, n)
    source = rng.choice(["web", "ads", "referral"], size=n)
    late = (created >= pd.Timestamp("2024-01-01") + pd.Timedelta(days=300)) & shift
    source = np.where(late & (rng.random(n) < 0.8), "web", source)
    signal = (np.log1p(visits) - 2.2) * 2.5
    logit = np.where(late, -0.5 + 0.0 * signal, -2.3 + signal)
    converted = rng.random(n) < 1 / (1 + np.exp(-logit))
    leads = pd.DataFrame({"lead_id": [f"L{i}" for i in range(n)], "created_at": created, "Visits": visits,
                          "Source": source})
    return leads, converted.astype(int)


def backtest_of(leads, labels):
    rows = pd.DataFrame({"lead_id": leads["lead_id"], "as_of": pd.NaT})
    features = build_features(rows, leads, None, SPEC)
    windows = rolling_cutoffs(leads["created_at"], n_windows=4, first_share=0.5)
    return run_backtest(features, labels, leads["created_at"], spec=SPEC, windows=windows, model="logistic",
                        log=lambda line: None)


def test_a_planted_shift_is_reported_window_by_window():
    result = backtest_of(*shifted_leads())
    table = result.windows.set_index("window")
    assert list(table.index) == [1, 2, 3, 4]
    # Windows start on days 200, 250, 300 and 350: the shift opens window 3.
    assert table.loc[1, "roc_auc"] > 0.75 and table.loc[3, "roc_auc"] < 0.6 and table.loc[4, "roc_auc"] < 0.6
    assert table.loc[3, "test_base_rate"] > 1.8 * table.loc[3, "train_base_rate"] and table.loc[3, "ece"] > 0.15
    assert table.loc[3, "most_drifted_feature"] == "source" and table.loc[3, "max_psi"] > 0.25
    shifted = table.loc[3, "test_from"]
    assert [sentence.split(" in the window from ")[-1][:10] for sentence in result.findings
            if sentence.startswith("The model degrades")] == [shifted, table.loc[4, "test_from"]]
    assert (f"The base rate moves: {table.loc[3, 'test_base_rate']:.0%} in the window from {shifted} against "
            f"{table.loc[3, 'train_base_rate']:.0%} in its training data") in " ".join(result.findings)
    assert f"Features drift in the window from {shifted}: 1 with PSI above 0.25, most of all source" in " ".join(
        result.findings)
    assert not any("from " + table.loc[1, "test_from"] in sentence for sentence in result.findings
                   if not sentence.startswith("The model degrades"))
    # Training rows of a window are those known at its start: more history, more rows.
    assert table["train_rows"].is_monotonic_increasing


def test_a_stable_history_says_so():
    result = backtest_of(*shifted_leads(shift=False, seed=1))
    assert len(result.findings) == 1 and result.findings[0].startswith("Stable over 4 windows")


def test_backtest_cli_on_a_time_ordered_table_logs_to_mlflow(tmp_path, mlflow_store, capsys):
    import mlflow

    leads, labels = shifted_leads(2000)
    leads.assign(Won=np.where(labels == 1, "yes", "no")).to_csv(tmp_path / "leads.csv", index=False)
    (tmp_path / "config.toml").write_text("""
[data]
leads = "leads.csv"
[columns]
id = "lead_id"
created_at = "created_at"
label = "Won"
[roles]
categorical = ["Source"]
numeric = ["Visits"]
[training]
model_name = "shifty"
""")
    assert training_main(["backtest", "--config", str(tmp_path / "config.toml"), "--model", "logistic"]) == 0
    out = capsys.readouterr().out
    assert "2,000 leads ordered by creation date" in out and "The base rate moves" in out
    client = mlflow.MlflowClient()
    run = client.search_runs([client.get_experiment_by_name("shifty").experiment_id])[0]
    assert run.data.tags["kind"] == "backtest" and "The base rate moves" in run.data.tags["mlflow.note.content"]
    assert len(client.get_metric_history(run.info.run_id, "backtest_roc_auc")) == 4
    assert {item.path for item in client.list_artifacts(run.info.run_id, "backtest")} >= {
        "backtest/backtest.png", "backtest/windows.csv", "backtest/feature_drift.csv"}


def test_findings_on_a_hand_made_table():
    from training.backtest import findings

    table = pd.DataFrame({"window": [1, 2, 3], "test_from": ["2024-01-01", "2024-04-01", "2024-07-01"],
                          "roc_auc": [0.80, 0.77, 0.70], "ece": [0.02, 0.03, 0.09],
                          "train_base_rate": [0.051, 0.057, 0.11], "test_base_rate": [0.046, 0.039, 0.31],
                          "max_psi": [0.1, 0.3, 0.1], "most_drifted_feature": ["a", "b", "c"],
                          "drifted_features": [0, 1, 0]})
    assert findings(table) == [
        # 0.80 - 0.77 = 0.03 is within the 0.05 allowed; 0.10 is not
        "The model degrades: ROC AUC 0.70 in the window from 2024-07-01 against 0.80 in the first window "
        "(from 2024-01-01).",
        # 3.9 % against 5.7 %: less than 1.5 times apart, not a move; 31 % against 11 % is
        "Features drift in the window from 2024-04-01: 1 with PSI above 0.25, most of all b (0.30).",
        "The base rate moves: 31% in the window from 2024-07-01 against 11% in its training data; calibration "
        "does not carry over (ECE 0.09).",
    ]


def test_lightgbm_windows_weigh_each_lead_one_as_training_does():
    """Unequal rows per lead change the LightGBM fit of each window; one row per lead fits as unweighted."""
    leads, labels = shifted_leads(n=3000, shift=False)
    rows = pd.DataFrame({"lead_id": leads["lead_id"], "as_of": pd.NaT})
    features = build_features(rows, leads, None, SPEC)
    windows = rolling_cutoffs(leads["created_at"], n_windows=2, first_share=0.6)
    index = np.arange(len(leads))
    repeated = np.where(index % 2 == 0, index // 6, 10_000 + index)  # a third of the rows: leads with 3 rows

    def auc(groups, per_lead):
        result = run_backtest(features, labels, leads["created_at"], spec=SPEC, windows=windows, model="lightgbm",
                              groups=groups, per_lead_candidates=per_lead, log=lambda line: None)
        return result.windows["roc_auc"].to_numpy()

    assert (auc(repeated, ("lightgbm",)) != auc(repeated, ())).any()
    assert np.array_equal(auc(leads["lead_id"], ("lightgbm",)), auc(leads["lead_id"], ()))
