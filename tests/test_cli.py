"""The command lines behave like the tools people know: versions, help with examples, quiet, console scripts."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

import serve
from train import build_parser
from train import main as training_main

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("command", ["lead-train", "lead-serve"])
def test_console_commands_are_installed_with_a_version(command):
    path = shutil.which(command, path=str(BIN))
    assert path, f"{command} not installed beside {sys.executable}"
    done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and re.fullmatch(rf"{command} \d+\.\d+\.\d+\n", done.stdout)


def test_every_subcommand_has_help_with_defaults_and_an_example(capsys):
    for main, commands in ((training_main, ("generate", "init-config", "train", "compare", "demo")),
                           (serve.main, ("score", "http", "policy"))):
        for command in commands:
            with pytest.raises(SystemExit):
                main([command, "--help"])
            text = capsys.readouterr().out
            assert "example:" in text and "(default: " in text, command
            assert "``" not in text and ":class:" not in text  # no RST markup
            assert all(action.help for action in _actions(command)) if main is training_main else True


def _actions(command):
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return [action for action in sub._actions if action.option_strings and action.dest != "help"]


def test_quiet_training_run_keeps_mlflow_noise_off_the_console(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data = tmp_path / "crm"
    assert training_main(["generate", "-q", "--leads", "2500", "--months", "15", "--seed", "2",
                          "--out", str(data)]) == 0
    store = tmp_path / "elsewhere.db"
    code = training_main(["train", "-q", "--tracking-uri", f"sqlite:///{store}", "--experiment", "my-team",
                          *[part for name in ("leads", "events", "deals")
                            for part in (f"--{name}", str(data / f"{name}.parquet"))]])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "test ROC AUC" in captured.out  # the result is printed even when quiet
    for noise in ("\x1b[", "CloudPickle", "Add type hints", "Successfully registered", "INFO mlflow",
                  "Downloading artifacts", "candidate logistic"):
        assert noise not in captured.err, noise
    # --tracking-uri and --experiment pass through to MLflow, and the caller's environment is left alone.
    assert store.exists() and not (tmp_path / "mlflow.db").exists()
    mlflow.set_tracking_uri(f"sqlite:///{store}")
    assert len(mlflow.search_runs(experiment_names=["my-team"])) == 1
    import os
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_verbose_shows_progress_lines(tmp_path, capsys):
    assert training_main(["generate", "--leads", "300", "--months", "6", "--out", str(tmp_path)]) == 0
    assert re.search(r"generating 300 synthetic leads: done in \d+\.\d s", capsys.readouterr().err)
