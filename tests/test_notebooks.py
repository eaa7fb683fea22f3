"""The notebooks run top to bottom on a small synthetic CRM, so they never rot."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
#: Pictures each executed notebook must show: one per figure cell, none twice.
EXPECTED_IMAGES = {"data_scientist.ipynb": 6, "analyst.ipynb": 4}


def test_notebooks_run_on_small_data(tmp_path, mlflow_store, monkeypatch):
    monkeypatch.setenv("LEADS_DATA", str(tmp_path / "crm"))
    monkeypatch.setenv("LEADS_N", "3000")
    monkeypatch.setenv("LEADS_RULES", str(ROOT / "models" / "rules_example.toml"))
    # The kernel must import this checkout, whatever else is installed.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    # The data scientist trains and promotes the champion the analyst then compares with the rules.
    for name in ("data_scientist.ipynb", "analyst.ipynb"):
        notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
            f"{name} is committed with outputs"
        assert not any("class " in cell.source for cell in notebook.cells if cell.cell_type == "code")
        nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
        outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
        texts = [output.get("text", "") for output in outputs]
        assert not any("Traceback" in text for text in texts)
        # A forced non-interactive backend shows "<Figure size ... with 1 Axes>" instead of the picture.
        images = [output for output in outputs if "image/png" in output.get("data", {})]
        assert len(images) == EXPECTED_IMAGES[name], f"{name}: {len(images)} pictures shown"
        assert not any("<Figure size" in output.get("data", {}).get("text/plain", "") and
                       "image/png" not in output.get("data", {}) for output in outputs)
    assert any("SQL conversion at equal volume" in text for text in texts)
