"""The model registry and run tracking on MLflow: the one room that imports mlflow; training and scoring both use it.

Importing this package imports nothing heavy: what command lines need before any MLflow work lives here.
"""

#: The registered model's name when neither --model-name nor the project config names one.
DEFAULT_MODEL_NAME = "lead-conversion"
#: MLflow's advice about how a model is logged, which a user scoring or serving it cannot act on: kept off the
#: console unless -v (here, not in ``registry.store``, so the command lines read it without importing mlflow).
MLFLOW_ADVICE = (r".*Add type hints to the `predict` method", r".*CloudPickle", r".*Any type hint is inferred")


def default_model_uri(config_path=None) -> str:
    """The champion a command uses when given no --model: the project config's model_name, else the default's.

    A config names its own model (init-config writes it), so scoring or comparing an export through its
    config never borrows the champion of another project's data.
    """
    name = None
    if config_path is not None:
        from crm.config import load_config

        name = load_config(config_path).model_name
    return f"models:/{name or DEFAULT_MODEL_NAME}@champion"
