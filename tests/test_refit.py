"""The champion refit on everything known: it never sees an outcome after the data's end, it is what gets
registered, and a refit champion is judged only on outcomes it did not see."""

import numpy as np
import pandas as pd

from crm.synthetic import generate_crm
from training.pipeline import TrainingConfig, labelled_snapshots, train_model
from training.refit import champion_rows


def cut_at(crm, end):
    """The CRM as it stood at ``end``: nothing created, done or decided from then on."""
    return (crm.leads[crm.leads["created_at"] < end], crm.events[crm.events["occurred_at"] < end],
            crm.deals[crm.deals["closed_at"] < end])


def test_the_refit_never_sees_an_outcome_after_the_data_end():
    crm = generate_crm(2000, months=15, seed=6)
    end = crm.end - pd.Timedelta(days=45)
    config = TrainingConfig(refit=True, threads=1, selection_windows=0)
    quiet = dict(config=config, data_end=end, log=lambda line: None)
    full = train_model(crm.leads, crm.events, crm.deals, **quiet)
    known = train_model(*cut_at(crm, end), **quiet)
    # Everything after the end (45 days of deals, events and leads) changes nothing the refit learned.
    rows = full.test_features.head(500)
    np.testing.assert_array_equal(full.bundle.predict_probability(rows), known.bundle.predict_probability(rows))
    assert full.params["refit_calibration_last"] == known.params["refit_calibration_last"]
    # The newest calibration snapshot's horizon ends by the data's end; fitting rows' by calibration's opening.
    horizon = pd.Timedelta(days=config.horizon_days)
    assert pd.Timestamp(full.params["refit_calibration_last"]) + horizon <= end
    assert pd.Timestamp(full.params["refit_fit_as_of_last"]) + horizon <= pd.Timestamp(
        full.params["refit_calibration_first"])
    # It is newer than the evaluated model: it fits on snapshots the training split never held.
    assert pd.Timestamp(full.params["refit_fit_as_of_last"]) > pd.Timestamp(full.params["window_train_last"])
    assert full.params["registered_model"].startswith("refit on everything known")
    # Every lead's known snapshots fit, whatever its split: counted here from the snapshots themselves.
    labelled, _ = labelled_snapshots(crm.leads, crm.deals, config=config, data_end=end)
    known_before = labelled["as_of"] + horizon <= pd.Timestamp(full.params["refit_calibration_first"])
    assert full.params["refit_rows_fit"] == int(known_before.sum())
    assert full.params["refit_leads_fit"] == labelled.loc[known_before, "lead_id"].nunique()
    trained = full.datasets["train"][0]
    assert full.params["refit_rows_fit"] > len(trained) + full.params["rows_calibration"]
    evaluated = train_model(crm.leads, crm.events, crm.deals, config=TrainingConfig(threads=1, selection_windows=0),
                            data_end=end, log=lambda line: None)
    # Same procedure, same held-out test figures; a different registered model.
    assert evaluated.metrics["test_roc_auc"] == full.metrics["test_roc_auc"]
    assert not np.allclose(evaluated.bundle.predict_probability(rows), full.bundle.predict_probability(rows))


def test_a_refit_champion_is_judged_only_after_its_data_ended():
    test = pd.DataFrame({"as_of": pd.to_datetime(["2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01"])})
    fair, said = champion_rows(test, {"refit_data_end": "2025-02-15 00:00:00"})
    assert fair.tolist() == [False, False, True, True] and "after the champion's refit data ended" in said
    everything, said = champion_rows(test, {"data_end": "2025-02-15"})  # not refit: its split ended earlier
    assert everything.all() and said == "the same test window"


def test_a_champion_of_another_data_contract_is_not_compared(small_models):
    from dataclasses import replace

    from training.refit import compare_champion, other_contract

    import copy

    champion = copy.copy(small_models["lightgbm"])  # the session's bundle is shared: its metadata stays as it is
    # Trained on snapshots with a 90-day horizon, on the synthetic CRM's lead columns.
    champion.metadata = {**champion.metadata, "params": {**champion.metadata["params"], "split": "temporal"}}
    spec = champion.spec
    assert other_contract(champion, spec=spec, label="won within 90 days of as_of") == ""
    assert other_contract(champion, spec=spec, label="won within 30 days of as_of") == (
        "another label (won within 90 days of as_of; this run: won within 30 days of as_of)")
    elsewhere = replace(spec, categorical_columns=("Source",), numeric_columns=("Visits",))
    said = other_contract(champion, spec=elsewhere, label="won within 90 days of as_of")
    assert said.startswith("lead columns this data does not declare (") and "industry" in said
    fitted, lines = {"params": {}, "metrics": {}, "y_test": np.array([0, 1])}, []
    compare_champion(champion, pd.DataFrame({"lead_id": [1, 2]}), None, None, fitted, spec=elsewhere,
                     label="won within 90 days of as_of", log=lines.append)
    assert fitted["params"]["champion_comparison"].startswith("not compared: the champion was trained on lead columns")
    assert "champion_test_roc_auc" not in fitted["metrics"] and lines


def test_the_hold_says_why_the_champion_was_not_compared():
    from training.promotion import decide_promotion

    held = decide_promotion(challenger_auc=0.8, has_champion=True, champion_version="3",
                            champion_comparison="not compared: the champion was trained on another label "
                                                "(x; this run: y)")
    assert held.outcome == "held for review"
    assert held.reason == "champion not compared: the champion was trained on another label (x; this run: y)"


def test_a_champion_refit_on_the_same_data_is_compared_by_its_procedure(small_models):
    import copy

    from training.refit import compare_champion

    split = {"data_end": "2026-06-30 00:00:00", "horizon_days": 90, "snapshot_every_days": 15, "test_days": 90,
             "calibration_days": 60, "lead_shares": (0.6, 0.2, 0.2), "split_by": "lead_share", "seed": 0,
             "window_test_first": "2026-01-01", "window_test_last": "2026-03-31"}
    champion = copy.copy(small_models["lightgbm"])
    # As MLflow gives it back: the shares a list; refit on every outcome up to the same data end.
    champion.metadata = {"params": {**champion.metadata["params"], **split, "lead_shares": [0.6, 0.2, 0.2],
                                    "refit_data_end": split["data_end"]}, "metrics": {"test_roc_auc": 0.8123}}
    test = pd.DataFrame({"lead_id": [1, 2, 3], "as_of": pd.to_datetime(["2026-01-01"] * 3)})
    lines = []
    fitted = {"params": {}, "metrics": {}, "y_test": np.array([0, 1, 0])}
    compare_champion(champion, test, None, None, fitted, spec=champion.spec, split=split, log=lines.append)
    assert fitted["metrics"]["champion_test_roc_auc"] == 0.8123
    assert fitted["params"]["champion_comparison"].startswith("the procedures on the same test window")
    # A later data end is another test window: the champion saw these outcomes, and is not compared.
    fitted = {"params": {}, "metrics": {}, "y_test": np.array([0, 1, 0])}
    compare_champion(champion, test, None, None, fitted, spec=champion.spec,
                     split={**split, "data_end": "2026-07-15 00:00:00"}, log=lines.append)
    assert "champion_test_roc_auc" not in fitted["metrics"]
    assert fitted["params"]["champion_comparison"].startswith("not compared: the champion was refit")
