"""Training: labelled snapshots, temporal splits, fit and calibrate, evaluate, track in MLflow."""
