"""Champion/challenger in a real MLflow store: a leaky run is held, promote and revert move aliases and leave tags."""

import time

import mlflow
import numpy as np
import pandas as pd
import pytest
from own_export import make_export

from train import main as training_main

MODEL = "planted-leak"

CONFIG = """
[data]
leads = "export.csv"
[columns]
id = "Lead Ref"
label = "Deal Won"
positive = ["Yes"]
negative = ["No"]
email = "Contact Email"
[roles]
categorical = ["Source", "Region", "Rep Verdict", "Call Outcome"]
numeric = ["Visits"]
boolean = ["Opted Out"]
pii = ["Phone"]
ignore = ["Constant"]
[leakage]
post_outcome = {post_outcome}
[training]
model_name = "{model}"
"""


@pytest.fixture
def project(tmp_path):
    frame = make_export(1500, seed=2)
    won = frame["Deal Won"].eq("Yes").to_numpy()
    # Written after the call: agrees with the outcome except on 15 % of each class -> single-column AUC ~0.85.
    rng = np.random.default_rng(0)
    flipped = rng.random(len(frame)) < 0.15
    frame["Call Outcome"] = np.where(won ^ flipped, "interested", "no answer")
    frame.to_csv(tmp_path / "export.csv", index=False)
    honest = tmp_path / "honest.toml"
    honest.write_text(CONFIG.format(post_outcome='["Rep Verdict", "Call Outcome"]', model=MODEL))
    leaky = tmp_path / "leaky.toml"
    leaky.write_text(CONFIG.format(post_outcome='["Rep Verdict"]', model=MODEL))
    return honest, leaky


def test_leaky_run_is_held_then_promoted_and_reverted_by_hand(project, mlflow_store, capsys):
    honest, leaky = project
    started_ms = time.time() * 1000
    assert training_main(["train", "--config", str(honest)]) == 0
    out = capsys.readouterr().out
    assert "PROMOTED: first model under this name" in out and "SUSPICIOUS" not in out
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias(MODEL, "champion").version == 1

    assert training_main(["train", "--config", str(leaky)]) == 0
    out = capsys.readouterr().out
    # The doubt comes first, before the figures, and the run says why the champion stays.
    # The summary (progress lines go to stderr) opens with the doubt, before any figure.
    assert out.lstrip().startswith("SUSPICIOUS: Call Outcome (single-column AUC 0.8"), out
    assert "HELD FOR REVIEW: uses suspicious column(s) Call Outcome" in out
    assert f"lead-train promote --model-name {MODEL} --version 2" in out
    assert client.get_model_version_by_alias(MODEL, "champion").version == 1
    held = client.get_model_version(MODEL, "2")
    assert held.tags["promotion_decision"] == "held for review"
    assert held.tags["suspicious_columns"] == "Call Outcome"
    assert float(held.tags["challenger_test_roc_auc"]) > float(held.tags["champion_test_roc_auc"])
    assert "Promotion: held for review" in held.description
    run = client.get_run(held.run_id)
    assert run.data.tags["suspicious_columns"] == "Call Outcome"
    assert run.data.tags["promoted_to_champion"] == "false"

    assert training_main(["promote", "--model-name", MODEL, "--version", "2",
                          "--reason", "checked: logged before the call"]) == 0
    assert "version 2 is the champion; version 1 keeps the alias previous-champion" in capsys.readouterr().out
    assert client.get_model_version_by_alias(MODEL, "champion").version == 2
    assert client.get_model_version_by_alias(MODEL, "previous-champion").version == 1
    promoted = client.get_model_version(MODEL, "2")
    assert promoted.tags["promoted_by"] == "person"
    assert promoted.tags["promotion_decision"] == "promoted by hand"
    assert promoted.tags["promotion_reason"] == "checked: logged before the call"
    assert "champion (person): checked: logged before the call; replaced version 1" in promoted.description
    assert client.get_model_version(MODEL, "1").tags["replaced_by"] == "2"

    assert training_main(["revert", "--model-name", MODEL, "--reason", "scores drifted"]) == 0
    assert client.get_model_version_by_alias(MODEL, "champion").version == 1
    assert client.get_model_version_by_alias(MODEL, "previous-champion").version == 2
    assert "scores drifted" in client.get_model_version(MODEL, "2").tags["reverted"]
    assert client.get_model_version(MODEL, "1").tags["promoted_by"] == "person (revert)"

    # Unknown versions and a model with nothing to revert to are errors, not silent no-ops.
    assert training_main(["promote", "--model-name", MODEL, "--version", "9"]) == 2
    assert "Model 'planted-leak' has no version '9' in the registry" in capsys.readouterr().err

    # Browsing: one experiment named after the model, marked as model development; named, tagged runs.
    experiment = client.get_experiment_by_name(MODEL)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert len(runs) == 2
    first = runs[0]
    assert first.info.run_name.endswith("1,500 leads, stratified")
    assert first.info.run_name.split()[0] in ("logistic", "lightgbm")
    assert first.data.tags["kind"] == "training" and first.data.tags["label"] == "converted (label column)"
    # The run spans the training: it opened before training started, not when logging began.
    training_started = pd.Timestamp(first.data.params["training_started_at"]).value // 10 ** 6
    assert started_ms <= first.info.start_time <= training_started
    inputs = {item.dataset.name: item for item in first.inputs.dataset_inputs}
    assert set(inputs) == {"train split", "calibration split", "test split"}
    rows = {name: int({tag.key: tag.value for tag in item.tags}["rows"]) for name, item in inputs.items()}
    assert rows == {"train split": 900, "calibration split": 300, "test split": 300}
    assert all(len(item.dataset.digest) == 12 for item in inputs.values())
    assert '"num_rows": 900' in inputs["train split"].dataset.profile
    version_one = client.get_model_version(MODEL, "1")
    assert version_one.tags["test_roc_auc"] == f"{first.data.metrics['test_roc_auc']:.4f}"
    # The version's logged model lists the split its test figures were measured on (name and digest).
    (logged,) = [model for model in client.search_logged_models([experiment.experiment_id])
                 if model.source_run_id == first.info.run_id]
    linked = {(metric.key, metric.dataset_name, metric.dataset_digest) for metric in logged.metrics}
    assert ("test_roc_auc", "test split", inputs["test split"].dataset.digest) in linked
    assert version_one.tags["data_window"] == "1,500 leads, stratified"


def test_revert_without_a_previous_champion_is_an_error(mlflow_store, capsys):
    assert training_main(["revert", "--model-name", "nothing-here"]) == 2
    assert "no 'previous-champion' version to revert to" in capsys.readouterr().err


def test_input_example_is_a_real_feature_row(project, mlflow_store, tmp_path):
    honest, _ = project
    assert training_main(["train", "--config", str(honest)]) == 0
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias(MODEL, "champion")
    example = mlflow.models.Model.load(f"models:/{MODEL}/1").load_input_example(
        mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1", dst_path=str(tmp_path / "model")))
    frame = make_export(1500, seed=2)
    assert example.shape[0] == 1 and str(version.version) == "1"
    # The example's numbers are those of one real lead of the export (visits as log1p), not zeros.
    assert example["log_visits"].iloc[0] in set(np.log1p(frame["Visits"]).round(12)) or \
        np.isclose(np.log1p(frame["Visits"]), example["log_visits"].iloc[0]).any()
    assert example["source"].iloc[0] in {"web", "referral", "ads"}
    assert pd.notna(example["log_visits"].iloc[0]) and example["log_visits"].iloc[0] > 0
