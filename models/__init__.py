"""Estimator factories, the tier policy and the model bundle that scoring loads."""
