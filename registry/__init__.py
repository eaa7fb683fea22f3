"""The model registry and run tracking on MLflow: the one room that imports mlflow; training and scoring both use it.

Importing this package imports nothing heavy: what command lines need before any MLflow work lives here.
"""

#: The registered model's name when neither --model-name nor the project config names one.
DEFAULT_MODEL_NAME = "lead-conversion"
#: MLflow's advice about how a model is logged, which a user scoring or serving it cannot act on: kept off the
#: console unless -v (here, not in ``registry.store``, so the command lines read it without importing mlflow).
MLFLOW_ADVICE = (r".*Add type hints to the `predict` method", r".*CloudPickle", r".*Any type hint is inferred")
