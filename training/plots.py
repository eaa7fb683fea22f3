"""Pictures of a model's test performance: reliability diagram and cumulative gains."""

from __future__ import annotations

import numpy as np


def reliability_figure(y_true, probability, *, n_bins: int = 10, title: str = "Reliability on the test split"):
    """Observed conversion against mean predicted probability per equal-frequency bin."""
    plt = _pyplot()
    y_true = np.asarray(y_true, dtype=float)
    probability = np.asarray(probability, dtype=float)
    order = np.argsort(probability, kind="stable")
    chunks = [chunk for chunk in np.array_split(order, n_bins) if chunk.size]
    predicted = [probability[chunk].mean() for chunk in chunks]
    observed = [y_true[chunk].mean() for chunk in chunks]
    figure, axis = plt.subplots(figsize=(5.5, 5))
    top = max(max(predicted), max(observed)) * 1.05
    axis.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect calibration")
    axis.plot(predicted, observed, marker="o", label="model")
    axis.set_xlabel("mean predicted probability")
    axis.set_ylabel("observed conversion rate")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    return figure


def gains_figure(y_true, scores: dict, *, title: str = "Cumulative gains on the test split"):
    """Share of conversions captured against share of leads contacted, for one or more scorers."""
    plt = _pyplot()
    y_true = np.asarray(y_true, dtype=float)
    figure, axis = plt.subplots(figsize=(5.5, 5))
    contacted = np.arange(1, y_true.size + 1) / y_true.size
    for name, score in scores.items():
        order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
        captured = np.cumsum(y_true[order]) / max(y_true.sum(), 1)
        axis.plot(contacted, captured, label=name)
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    axis.set_xlabel("share of leads, highest score first")
    axis.set_ylabel("share of conversions captured")
    axis.set_title(title)
    axis.legend(loc="lower right")
    figure.tight_layout()
    return figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # batch jobs and CI have no display
    import matplotlib.pyplot as plt

    return plt
