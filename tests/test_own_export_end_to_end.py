"""A single-table export, no dates: init-config, edit, train (stratified split) into a temporary MLflow store, score."""

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from own_export import make_export, write_quirky_csv

import serve
from features.spec import FeatureSpec
from models.bundle import ModelBundle
from train import main as training_main

MODEL = "own-export-conversion"


@pytest.fixture
def export(tmp_path):
    path = tmp_path / "export.csv"
    write_quirky_csv(make_export(1200, seed=4), path)
    return path


def test_init_config_edit_train_and_score(export, tmp_path, mlflow_store, capsys):
    config = tmp_path / "export.toml"  # the model is named after it: export-conversion
    assert training_main(["init-config", "--leads", str(export), "--out", str(config)]) == 0
    assert training_main(["init-config", "--leads", str(export), "--out", str(config)]) == 2  # no silent overwrite
    # init-config keeps the outcome-like 'Rep Verdict' out of the features, as a label candidate.
    text = config.read_text()
    verdict = next(line for line in text.splitlines() if line.startswith('    "Rep Verdict",'))
    assert "label candidate" in verdict and text.index(verdict) > text.index("ignore = [")
    # The user's edits: a column staff fill in afterwards is declared; 'Rep Verdict' is taken back as a
    # feature, which the leakage guard then catches.
    text = text.replace(verdict + "\n", "").replace("categorical = [\n", 'categorical = [\n    "Rep Verdict",\n')
    text = text.replace("post_outcome = []", 'post_outcome = ["Region"]')
    config.write_text(text.replace('model_name = "export-conversion"', f'model_name = "{MODEL}"'))
    capsys.readouterr()

    assert training_main(["train", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert "seeded stratified split" in captured.err and "stratified split, 240 test leads" in captured.out
    assert "column 'Rep Verdict' EXCLUDED from training (single-column AUC 1.000 >= 0.95)" in captured.err
    assert "leakage guard: excluded as declared post-outcome: Region" in captured.err  # a progress line
    # The user's own decision is reported, not warned about.
    assert not [line for line in captured.err.splitlines() if "WARNING" in line and "Region" in line]

    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias(MODEL, "champion")
    run = client.get_run(version.run_id)
    assert run.data.params["split"] == "stratified"
    assert json.loads(run.data.params["excluded_columns"]) == ["Region", "Rep Verdict"]
    assert 0.6 < run.data.metrics["test_roc_auc"] < 0.95  # real signal, and not the leaky column's 1.0
    report = Path(client.download_artifacts(run.info.run_id, "leakage/leakage_report.json", str(tmp_path))).read_text()
    assert "Rep Verdict" in report and "person0@" not in report
    spec = json.loads(run.data.params["spec_categorical_columns"])
    assert "Rep Verdict" not in spec and "Source" in spec
    assert "Phone" not in json.dumps(run.data.params)  # PII is not even a column name in the run

    # Scoring a later export: a source never seen in training, and an optional column dropped.
    later = make_export(50, seed=9).drop(columns=["Visits", "Deal Won"])
    later.loc[:4, "Source"] = "Podcast"
    later_path = tmp_path / "later.csv"
    later.to_csv(later_path, index=False)
    out = tmp_path / "scores.csv"
    with pytest.warns(UserWarning, match=r"lacks column\(s\) \['Visits'\]"):
        code = serve.main(["score", "--model", f"models:/{MODEL}@champion", "--config", str(config),
                           "--leads", str(later_path), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    scores = pd.read_csv(out)
    assert scores["lead_id"].tolist() == later["Lead Ref"].tolist()
    assert scores["probability"].between(0, 1).all() and set(scores["tier"]) <= {"SQL", "MQL", "nurture"}

    # The id column is required: its absence is an error naming it, and nothing is written.
    later.drop(columns="Lead Ref").to_csv(later_path, index=False)
    out.unlink()
    assert serve.main(["score", "--model", f"models:/{MODEL}@champion", "--config", str(config),
                       "--leads", str(later_path), "--out", str(out)]) == 2
    assert "missing column(s) ['Lead Ref']" in capsys.readouterr().err and not out.exists()


def test_conform_treats_missing_attribute_features_as_missing():
    spec = FeatureSpec(categorical_columns=("Source",), numeric_columns=("Visits",), job_title_column=None,
                       email_column=None, event_log=False, lead_age=False)
    bundle = ModelBundle(spec=spec, model=None, thresholds=None)
    with pytest.warns(UserWarning, match=r"lack column\(s\) \['log_visits'\]"):
        conformed = bundle.conform(pd.DataFrame({"source": ["web", None]}))
    assert list(conformed.columns) == ["source", "log_visits"] and conformed["log_visits"].isna().all()
    dated = ModelBundle(spec=FeatureSpec(), model=None, thresholds=None)
    with pytest.raises(ValueError, match="required column"):
        dated.conform(pd.DataFrame({name: [1.0] for name in FeatureSpec().fit_feature_names}))


def test_default_spec_is_unchanged_and_old_bundles_load():
    spec = FeatureSpec()
    assert len(spec.feature_names) == 109
    assert spec.feature_names[:9] == ["industry", "country", "lead_source", "seniority", "job_function",
                                      "email_domain_type", "log_company_size", "log_annual_revenue", "lead_age_days"]
    old = {key: value for key, value in spec.as_dict().items()
           if key not in ("raw_numeric_columns", "boolean_columns", "event_log", "lead_age")}
    assert FeatureSpec.from_dict(old) == spec
    with pytest.raises(ValueError, match="distinct feature names"):
        FeatureSpec(categorical_columns=("Lead Source", "lead_source"))
    assert FeatureSpec(boolean_columns=("x",)).feature_names.index("x") == 8  # after the numeric fit features
