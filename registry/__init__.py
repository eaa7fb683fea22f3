"""The model registry and run tracking on MLflow: the one room that imports mlflow; training and scoring both use it.

Importing this package imports nothing heavy: only the default name below lives here, for command lines
that need it before any MLflow work.
"""

#: The registered model's name when neither --model-name nor the project config names one.
DEFAULT_MODEL_NAME = "lead-conversion"
