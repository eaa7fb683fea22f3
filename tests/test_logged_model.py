"""The logged MLflow model: feature rows or raw lead rows with nested events in, the project's code inside it."""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.contract import DataContractError
from training.pipeline import TrainingResult
from training.tracking import log_training_run

AS_OF = pd.Timestamp("2025-10-01")


def nest_events(leads: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Each lead's events as a list of {occurred_at, event_type} records, in the leads' order."""
    grouped = {lead_id: group[["occurred_at", "event_type"]].to_dict("records")
               for lead_id, group in events.groupby("lead_id", sort=False)}
    return pd.Series([grouped.get(lead_id, []) for lead_id in leads["lead_id"]], index=leads.index, dtype=object)


@pytest.fixture(scope="module")
def logged(small_models, tmp_path_factory):
    """The LightGBM bundle logged once into a throw-away store, loaded back as MLflow's pyfunc."""
    folder = tmp_path_factory.mktemp("store")
    bundle = small_models["lightgbm"]
    result = TrainingResult(bundle=bundle, params={"model": "lightgbm"}, metrics={"test_roc_auc": 0.8}, tables={},
                            test=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        patch.chdir(folder)
        uri = log_training_run(result, model_name="self-contained")["model_uri"]
        local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(folder / "model")))
    return mlflow.pyfunc.load_model(str(local)), bundle, small_models["crm"], local


def open_leads_at(crm, as_of, n=200):
    leads = crm.leads[crm.leads["created_at"] < as_of].head(n)
    return leads


def test_lead_rows_with_nested_events_score_like_the_builder(logged):
    model, bundle, crm, _ = logged
    leads = open_leads_at(crm, AS_OF)
    rows = leads.assign(events=nest_events(leads, crm.events))
    expected = bundle.score(build_features(pd.DataFrame({"lead_id": leads["lead_id"], "as_of": AS_OF}),
                                           crm.leads, crm.events, bundle.spec))
    predicted = model.predict(rows, params={"as_of": str(AS_OF)})
    assert list(predicted.columns) == ["probability", "score", "tier"]
    np.testing.assert_allclose(predicted["probability"], expected["probability"], rtol=0, atol=1e-12)
    assert predicted["tier"].tolist() == expected["tier"].tolist()
    # A per-row as_of column does the same; so does a time-zoned parameter naming the same instant.
    per_row = model.predict(rows.assign(as_of=AS_OF))
    np.testing.assert_array_equal(per_row["probability"], predicted["probability"])
    zoned = model.predict(rows, params={"as_of": "2025-10-01T02:00:00+02:00"})
    np.testing.assert_array_equal(zoned["probability"], predicted["probability"])
    # Feature rows still work, and give the same numbers.
    features = build_features(pd.DataFrame({"lead_id": leads["lead_id"], "as_of": AS_OF}), crm.leads, crm.events,
                              bundle.spec)
    np.testing.assert_array_equal(model.predict(features)["probability"], predicted["probability"])


def test_events_at_or_after_as_of_change_nothing(logged):
    model, _, crm, _ = logged
    leads = open_leads_at(crm, AS_OF, n=20)
    rows = leads.assign(events=nest_events(leads, crm.events[crm.events["occurred_at"] < AS_OF]))
    later = rows.copy()
    later["events"] = [list(cell) + [{"occurred_at": AS_OF, "event_type": "demo_request"},
                                     {"occurred_at": AS_OF + pd.Timedelta(days=3), "event_type": "free_trial_start"}]
                       for cell in rows["events"]]
    before = model.predict(rows, params={"as_of": str(AS_OF)})
    after = model.predict(later, params={"as_of": str(AS_OF)})
    np.testing.assert_array_equal(before["probability"], after["probability"])
    # ...while the same demo request a day earlier does move the scores.
    earlier = rows.copy()
    earlier["events"] = [list(cell) + [{"occurred_at": AS_OF - pd.Timedelta(days=1), "event_type": "demo_request"}]
                         for cell in rows["events"]]
    moved = model.predict(earlier, params={"as_of": str(AS_OF)})
    assert (moved["probability"].to_numpy() != before["probability"].to_numpy()).any()


def test_lead_rows_without_their_history_are_refused_clearly(logged):
    model, _, crm, _ = logged
    leads = open_leads_at(crm, AS_OF, n=3)
    with pytest.raises(DataContractError, match="lead rows need an 'events' column"):
        model.predict(leads, params={"as_of": str(AS_OF)})
    bad = leads.assign(events=[[{"occurred_at": "not a time", "event_type": "page_view"}], [], None])
    with pytest.raises(DataContractError, match="'occurred_at' must hold a timestamp"):
        model.predict(bad, params={"as_of": str(AS_OF)})
    with pytest.raises(DataContractError, match=r"events\.0\.0 must have 'occurred_at' and 'event_type'"):
        model.predict(leads.assign(events=[[{"when": "2025-01-01"}], [], []]), params={"as_of": str(AS_OF)})
    with pytest.raises(DataContractError, match="leads created after it"):
        model.predict(leads.assign(events=[[], [], []]), params={"as_of": "2020-01-01"})
    with pytest.raises(ValueError, match="'input' parameter .* must be one of"):
        model.predict(leads, params={"input": "rows"})


def test_the_model_carries_its_code_and_requirements(logged):
    folder = logged[3]
    assert (folder / "code" / "features" / "build.py").is_file()
    assert (folder / "code" / "models" / "model_input.py").is_file()
    assert not list((folder / "code").rglob("__pycache__"))
    requirements = (folder / "requirements.txt").read_text().split()
    names = {line.split("==")[0] for line in requirements}
    assert {"mlflow", "scikit-learn", "lightgbm", "pandas", "duckdb", "pyarrow"} <= names
    assert "lead-conversion" not in names  # the code travels inside the model, not as a package
