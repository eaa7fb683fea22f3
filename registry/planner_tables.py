"""The logged aggregates a tier planner reads: a version's test-lead probability bins and the rules' gains.

Both were logged as CSV by the runs that computed them (``evaluation/test_probability_bins.csv`` by
training, ``comparison/rules_gains.csv`` by ``compare``): aggregates only, never a lead row.
"""

from __future__ import annotations

import io

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

TEST_BINS = "evaluation/test_probability_bins.csv"
RULES_GAINS = "comparison/rules_gains.csv"


def logged_test_bins(run_id: str | None) -> pd.DataFrame | None:
    """The test leads' probability bins logged by a training run; None for a run logged before they existed."""
    return _logged_csv(run_id, TEST_BINS) if run_id else None


def latest_rules_gains(model_name: str | None, version) -> tuple[pd.DataFrame, dict] | None:
    """The points rules' gains on the version's test leads from its latest comparison run, and that run's facts.

    None when no comparison of this version was logged (``lead-train compare --model models:/name/<version>``).
    """
    if not model_name or not str(version or "").isdigit():
        return None
    runs = MlflowClient().search_runs(
        [experiment.experiment_id for experiment in MlflowClient().search_experiments()],
        filter_string=f"tags.kind = 'comparison' AND tags.model_name = '{model_name.replace(chr(39), '')}' "
                      f"AND tags.model_version = '{version}'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return None
    run = runs[0]
    gains = _logged_csv(run.info.run_id, RULES_GAINS)
    if gains is None:
        return None
    return gains, {"run_id": run.info.run_id, "rules": run.data.params.get("rules", ""),
                   "at": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M UTC")}


def _logged_csv(run_id: str, path: str) -> pd.DataFrame | None:
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")
    except (mlflow.exceptions.MlflowException, OSError):
        return None
    return pd.read_csv(io.StringIO(text))
