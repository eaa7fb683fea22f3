"""Models logged before models-from-code pickled ``training.tracking.LeadConversionModel``: that name still loads."""

from __future__ import annotations

import sys

import mlflow
import pandas as pd

from models.bundle import ModelBundle

#: Where the class lived when those models were logged.
LEGACY_MODULE = "training.tracking"


class LeadConversionModel(mlflow.pyfunc.PythonModel):
    """pyfunc face of a bundle, as pickled by reference before ``registry/lead_model.py`` existed."""

    def load_context(self, context):
        self.bundle = ModelBundle.load(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None):  # typed: see registry/lead_model.py
        return self.bundle.score(model_input)


def expose_legacy_names() -> None:
    """Let unpickling find ``training.tracking.LeadConversionModel`` (the module itself is gone)."""
    sys.modules.setdefault(LEGACY_MODULE, sys.modules[__name__])
