"""The model registry and run tracking on MLflow: the one room that imports mlflow; training and scoring both use it."""
