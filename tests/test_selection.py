"""Selection over several windows: the noise rule by hand, fitting only on known labels, and behaviour in training."""

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.spec import FeatureSpec
from models.estimators import make_candidates
from training.selection import choose, compare_candidates, fold_splits, selection_windows, time_splits

SPEC = FeatureSpec(categorical_columns=("Source",), numeric_columns=("Visits", "Pages"), job_title_column=None,
                   email_column=None, event_log=False, lead_age=False)


def window_table(losses: dict) -> pd.DataFrame:
    rows = [{"window": window, "candidate": name, "log_loss": loss, "roc_auc": 0.7,
             "log_loss_sigmoid": loss, "log_loss_isotonic": loss + 0.001}
            for name, per_window in losses.items() for window, loss in enumerate(per_window, start=1)]
    return pd.DataFrame(rows)


def test_a_consistent_gain_beats_the_noise_and_a_lucky_window_does_not():
    # Gains of the second over the first: 0.02, 0.01, 0.02 -> mean 0.01667, sd 0.005774, se 0.003333;
    # 0.01667 > 2 x 0.003333, so it wins.
    steady = choose(window_table({"logistic": [0.30, 0.31, 0.29], "lightgbm": [0.28, 0.30, 0.27]}),
                    order=["logistic", "lightgbm"])
    assert steady.model == "lightgbm"
    assert "by 0.0167" in steady.reason and "(0.0033)" in steady.reason
    # Gains 0.02, -0.02, 0.01 -> mean 0.00333, sd 0.020817, se 0.012019: within the noise, the simpler stays.
    lucky = choose(window_table({"logistic": [0.30, 0.31, 0.29], "lightgbm": [0.28, 0.33, 0.28]}),
                   order=["logistic", "lightgbm"])
    assert lucky.model == "logistic"
    summary = lucky.summary.set_index("candidate")
    assert summary.loc["lightgbm", "log_loss_mean"] == pytest.approx((0.28 + 0.33 + 0.28) / 3)
    assert summary.loc["lightgbm", "log_loss_sd"] == pytest.approx(np.std([0.28, 0.33, 0.28], ddof=1))


def test_one_window_is_no_evidence_and_no_window_keeps_the_simplest():
    single = choose(window_table({"logistic": [0.30], "lightgbm": [0.10]}), order=["logistic", "lightgbm"])
    assert single.model == "logistic"  # one window: no estimate of the noise, so no win
    empty = choose(pd.DataFrame(), order=["logistic", "lightgbm"])
    assert empty.model == "logistic" and "no selection window" in empty.reason


def dated_leads(n=3000, *, band: bool, seed=0):
    """Leads over 400 days whose outcome is linear in log visits, or a shape trees find and a linear model
    cannot (converts when visits lie in a middle band, rarely when few or many)."""
    rng = np.random.default_rng(seed)
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.sort(rng.uniform(0, 400, n)), unit="D")
    visits, pages = rng.gamma(2.0, 5.0, n), rng.gamma(2.0, 5.0, n)
    if band:
        logit = np.where((visits > 5) & (visits < 15), 1.0, -2.5)
    else:
        logit = -2.3 + 2.5 * (np.log1p(visits) - 2.2)
    converted = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    leads = pd.DataFrame({"lead_id": [f"L{i}" for i in range(n)], "created_at": created, "Visits": visits,
                          "Pages": pages, "Source": rng.choice(["web", "ads"], size=n)})
    return leads, converted


def candidates_of(spec):
    made = make_candidates(spec, random_state=0, n_jobs=1)
    return {"logistic": (made["logistic"], False), "lightgbm": (made["lightgbm"], False)}


@pytest.mark.parametrize("band, expected", [(False, "logistic"), (True, "lightgbm")])
def test_the_windows_keep_the_linear_model_on_linear_data_and_take_trees_on_an_band(band, expected):
    leads, labels = dated_leads(band=band)
    features = build_features(pd.DataFrame({"lead_id": leads["lead_id"], "as_of": pd.NaT}), leads, None, SPEC)
    pool = np.ones(len(leads), dtype=bool)
    windows = selection_windows(leads["created_at"], pool=pool, n_windows=3)
    table = compare_candidates(features, labels, candidates=candidates_of(SPEC),
                               splits=time_splits(leads["created_at"], windows=windows), log=lambda line: None)
    assert sorted(table["window"].unique()) == [1, 2, 3]
    assert choose(table, order=["logistic", "lightgbm"]).model == expected


def test_a_window_fits_only_on_rows_whose_label_was_known_at_its_start():
    leads, labels = dated_leads(band=False, seed=1)
    features = build_features(pd.DataFrame({"lead_id": leads["lead_id"], "as_of": pd.NaT}), leads, None, SPEC)
    known_at = leads["created_at"] + pd.Timedelta(days=30)  # each outcome known a month after the row's time
    pool = (leads["created_at"] < pd.Timestamp("2024-12-01")).to_numpy()  # the test window lies after the pool
    windows = selection_windows(leads["created_at"], pool=pool, n_windows=3)
    table = compare_candidates(features, labels, candidates=candidates_of(SPEC), log=lambda line: None,
                               splits=time_splits(leads["created_at"], windows=windows, known_at=known_at, pool=pool))
    for number, (start, end) in enumerate(windows, start=1):
        rows = table[table["window"].eq(number)].iloc[0]
        # Counted here independently: rows of the pool whose label was known at the window's start.
        assert rows["fit_rows"] == int((pool & (known_at <= start).to_numpy()).sum())
        in_window = pool & ((leads["created_at"] >= start) & (leads["created_at"] < end)).to_numpy()
        assert rows["validation_rows"] == int(in_window.sum())
        assert rows["base_rate"] == pytest.approx(labels[in_window].mean())
    # The newest pool row's time is the last window's end: no pool row past it, none of the test window's.
    assert windows[-1][1] <= leads.loc[pool, "created_at"].max() + pd.Timedelta(seconds=1)


def test_training_shows_the_per_window_table_and_records_it():
    from training.pipeline import TrainingConfig, train_on_table

    leads, labels = dated_leads(band=False, seed=2)
    lines = []
    result = train_on_table(leads, pd.Series(labels, dtype=float), spec=SPEC, config=TrainingConfig(threads=1),
                            log=lines.append)
    table = result.tables["selection_windows"]
    assert set(table["candidate"]) == {"logistic", "lightgbm"} and table["window"].nunique() >= 2
    assert any(line.startswith("selection over") and "log_loss logistic" in line for line in lines)
    assert result.params["model"] == "logistic" and result.params["selection"].startswith("logistic")
    assert result.metrics["selection_log_loss_mean_logistic"] == pytest.approx(
        table.loc[table["candidate"].eq("logistic"), "log_loss"].mean())
    off = train_on_table(leads, pd.Series(labels, dtype=float), spec=SPEC,
                         config=TrainingConfig(threads=1, selection_windows=0), log=lambda line: None)
    assert "selection_windows" not in off.tables and off.params["selection"] == "validation split ROC AUC"


def test_a_table_without_dates_is_compared_over_folds_each_pool_row_validated_once():
    labels = np.r_[np.ones(30), np.zeros(60)].astype(int)
    pool = np.arange(90) < 80  # the last ten rows are the test split's: never fitted, never validated
    splits = fold_splits(labels, pool=pool, n_folds=3, seed=0)
    assert sorted(np.concatenate([split["validate"] for split in splits])) == list(range(80))
    for split in splits:
        assert not set(split["fit"]) & set(split["validate"])
        assert split["fit"].size + split["validate"].size == 80


def test_no_window_with_enough_conversions_is_said_in_one_line_and_falls_back_to_the_simplest():
    from training.config import TrainingConfig
    from training.selection import select_candidate

    leads, _ = dated_leads(n=400, band=False, seed=3)
    labels = np.zeros(len(leads), dtype=int)
    labels[::40] = 1  # 10 converted leads in all: no window has the 20 converted rows it needs to fit on
    features = build_features(pd.DataFrame({"lead_id": leads["lead_id"], "as_of": pd.NaT}), leads, None, SPEC)
    lines = []
    selection = select_candidate(features, labels, leads["created_at"], known_at=leads["created_at"],
                                 pool=np.ones(len(leads), dtype=bool), groups=leads["lead_id"],
                                 candidates=candidates_of(SPEC), config=TrainingConfig(threads=1), log=lines.append)
    assert selection.model == "logistic" and selection.windows.empty
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("selection: no window before the test window has enough converted rows")
    assert "falling back to logistic, the simplest candidate" in line
    # The three windows' own counts: each fits on the converted rows created before it opened.
    windows = selection_windows(leads["created_at"], pool=np.ones(len(leads), dtype=bool), n_windows=3)
    for start, end in windows:
        before = int(labels[(leads["created_at"] <= start).to_numpy()].sum())
        inside = int(labels[((leads["created_at"] >= start) & (leads["created_at"] < end)).to_numpy()].sum())
        assert f"{before} to fit, {inside} to validate" in line
