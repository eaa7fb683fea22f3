"""Pictures of test performance: reliability, cumulative gains, tiers side by side, score vs. points, forecast."""

from __future__ import annotations

import numpy as np

from training.evaluate import calibration_bins


def reliability_figure(y_true, probability, *, n_bins: int = 10, title: str = "Reliability on the test split"):
    """Observed conversion against mean predicted probability per equal-frequency bin."""
    plt = _pyplot()
    bins = calibration_bins(y_true, probability, n_bins=n_bins)
    predicted, observed = bins["predicted"].tolist(), bins["observed"].tolist()
    figure, axis = plt.subplots(figsize=(5.5, 5))
    top = max(max(predicted), max(observed)) * 1.05
    axis.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect calibration")
    axis.plot(predicted, observed, marker="o", label="model")
    axis.set_xlabel("mean predicted probability")
    axis.set_ylabel("observed conversion rate")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    return _detached(figure)


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
    return _detached(figure)


def tier_conversion_figure(tiers, *, title: str = "Conversion by tier on the test split"):
    """Grouped bars of conversion rate per tier, one bar per scorer, lead counts written on the bars.

    ``tiers`` is :func:`analysis.compare.tier_comparison`'s table (scorer, tier, leads, conversion_rate).
    """
    plt = _pyplot()
    scorers = list(dict.fromkeys(tiers["scorer"]))
    names = list(dict.fromkeys(tiers["tier"]))
    width = 0.8 / len(scorers)
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for i, scorer in enumerate(scorers):
        rows = tiers[tiers["scorer"].eq(scorer)].set_index("tier").reindex(names)
        positions = np.arange(len(names)) + (i - (len(scorers) - 1) / 2) * width
        bars = axis.bar(positions, rows["conversion_rate"].fillna(0), width, label=scorer)
        for bar, leads in zip(bars, rows["leads"]):
            axis.annotate(f"{int(leads):,}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          ha="center", va="bottom", fontsize=7)
    axis.set_xticks(np.arange(len(names)), names)
    axis.set_ylabel("conversion rate (leads on bars)")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    return _detached(figure)


def score_points_figure(probability, points, y_true, *, title: str = "Model probability vs. rule points"):
    """Each test lead at (rule points, model probability), converted leads drawn on top in colour."""
    plt = _pyplot()
    probability, points = np.asarray(probability, dtype=float), np.asarray(points, dtype=float)
    y_true = np.asarray(y_true, dtype=int)
    figure, axis = plt.subplots(figsize=(6, 5))
    for label, colour, name, size in ((0, "#bbbbbb", "did not convert", 6), (1, "#d62728", "converted", 10)):
        chosen = y_true == label
        axis.scatter(points[chosen], probability[chosen], s=size, c=colour, alpha=0.6, label=name, linewidths=0)
    axis.set_yscale("log")
    axis.set_xlabel("rule points")
    axis.set_ylabel("model probability (log scale)")
    axis.set_title(title)
    axis.legend(loc="lower right")
    figure.tight_layout()
    return _detached(figure)


def forecast_figure(forecast, *, title: str = "Forecast vs. actual conversions (test window)"):
    """Expected conversions with their interval and the actual count, per forecast date and group."""
    plt = _pyplot()
    labels = [f"{row.as_of}\n{row.group}" for row in forecast.itertuples()]
    x = np.arange(len(forecast))
    expected = forecast["expected_conversions"].to_numpy()
    figure, axis = plt.subplots(figsize=(max(6, 0.6 * len(x)), 4.5))
    axis.errorbar(x - 0.12, expected, yerr=[expected - forecast["low"], forecast["high"] - expected], fmt="o",
                  capsize=4, label="calibrated probabilities (Poisson-binomial)")
    if "expected_adjusted" in forecast:
        adjusted = forecast["expected_adjusted"].to_numpy()
        axis.errorbar(x + 0.12, adjusted, yerr=[adjusted - forecast["low_adjusted"], forecast["high_adjusted"] - adjusted],
                      fmt="s", capsize=4, label="level-checked on recent history")
    if "actual_conversions" in forecast:
        axis.scatter(x, forecast["actual_conversions"], marker="x", color="black", zorder=3, label="actual")
    axis.set_xticks(x, labels, fontsize=7)
    axis.set_ylabel("conversions within the horizon")
    axis.set_title(title)
    axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    figure.tight_layout()
    return _detached(figure)


def _pyplot():
    """pyplot with whatever backend the session chose: inline in a notebook, Agg on a machine without a display.

    No backend is forced here: forcing Agg would leave notebooks printing ``<Figure ...>``
    instead of the picture. matplotlib itself falls back to Agg when there is no display.
    """
    import matplotlib.pyplot as plt

    return plt


def _detached(figure):
    """The figure, no longer tracked by pyplot: shown once where a notebook cell returns it, never twice.

    pyplot's inline backend shows every figure still open at the end of a cell; a figure a
    report builds and keeps in a dict would otherwise appear in the cell that built it as well.
    A detached figure still renders, saves and displays as the value of a cell.
    """
    import matplotlib.pyplot as plt

    plt.close(figure)
    return figure
