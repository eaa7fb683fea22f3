"""The logged pyfunc model as MLflow's models-from-code: MLflow runs this file when a model loads.

``registry.runs`` logs this file with every model, beside the bundle and the ``features`` and
``models`` packages (``code_paths``), so a logged model loads wherever its own requirements are
installed, without the project. The project never imports this module: its last line registers
the model with MLflow, which is what a models-from-code file is for.
"""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class LeadConversionModel(PythonModel):
    """pyfunc face of a bundle: feature rows, or lead rows with nested events, in; probability, score, tier out.

    Parameters (``params=``): ``input`` ("auto", "features" or "leads") and ``as_of`` (lead rows are
    scored as of it; default now, UTC).
    """

    def load_context(self, context):
        from models.bundle import ModelBundle

        self.bundle = ModelBundle.load(context.artifacts["bundle"])

    # Typed as a DataFrame, a hint MLflow neither validates nor infers a schema from (the logged signature
    # does that): without a hint MLflow warns "Add type hints ..." in colour every time the class is defined.
    def predict(self, context, model_input: pd.DataFrame, params=None):
        from models.model_input import score_model_input

        params = params or {}
        return score_model_input(self.bundle, model_input, input=params.get("input") or "auto",
                                 as_of=params.get("as_of") or None)


mlflow.models.set_model(LeadConversionModel())
