"""The champion refit on everything known: it never sees an outcome after the data's end, it is what gets
registered, and a refit champion is judged only on outcomes it did not see."""

import numpy as np
import pandas as pd

from crm.synthetic import generate_crm
from training.pipeline import TrainingConfig, train_model
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
