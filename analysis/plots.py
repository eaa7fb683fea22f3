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


def gains_curve(y_true, probability) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(contacted, captured, lift)`` per lead, highest probability first."""
    y_true = np.asarray(y_true, dtype=float)
    order = np.argsort(-np.asarray(probability, dtype=float), kind="stable")
    hits = np.cumsum(y_true[order])
    contacted = np.arange(1, y_true.size + 1) / y_true.size
    captured = hits / max(y_true.sum(), 1)
    base = y_true.mean()
    lift = (hits / np.arange(1, y_true.size + 1)) / base if base > 0 else np.full(y_true.size, np.nan)
    return contacted, captured, lift


def gains_figure(y_true, scores: dict, *, title: str = "Cumulative gains on the test split"):
    """Share of conversions captured against share of leads contacted, for one or more scorers."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 5))
    for name, score in scores.items():
        contacted, captured, _ = gains_curve(y_true, score)
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
    from matplotlib.ticker import PercentFormatter

    axis.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
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


def forecast_figure(forecast, *, title: str = "Forecast vs. actual conversions on the test leads"):
    """Expected conversions with their interval and the actual count: one panel per tier, forecast dates across.

    Without forecast dates (a single-table model) one panel holds every tier side by side.
    """
    plt = _pyplot()
    groups = list(dict.fromkeys(forecast["group"]))
    dated = "as_of" in forecast
    panels = groups if dated else ["all tiers"]
    columns = min(2, len(panels))
    rows = int(np.ceil(len(panels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.6 * rows), squeeze=False)
    for axis, panel in zip(axes.ravel(), panels):
        part = forecast[forecast["group"].eq(panel)] if dated else forecast
        x = np.arange(len(part))
        expected = part["expected_conversions"].to_numpy()
        axis.errorbar(x - 0.1, expected, yerr=[expected - part["low"], part["high"] - expected], fmt="o", capsize=4,
                      label="expected (calibrated), 90 % interval")
        if "expected_adjusted" in part:
            adjusted = part["expected_adjusted"].to_numpy()
            axis.errorbar(x + 0.1, adjusted, yerr=[adjusted - part["low_adjusted"], part["high_adjusted"] - adjusted],
                          fmt="s", capsize=4, label="expected (level-checked)")
        if "actual_conversions" in part:
            axis.scatter(x, part["actual_conversions"], marker="x", s=60, color="black", zorder=3, label="actual")
        names = ([_short_date(value) for value in part["as_of"]] if dated
                 else ["all tiers" if group == "all" else group for group in part["group"]])
        axis.set_xticks(x, names, fontsize=8, rotation=30 if dated and len(x) > 4 else 0)
        axis.set_xlim(-0.6, len(x) - 0.4)
        axis.set_ylim(bottom=0)
        axis.set_title("all tiers" if panel == "all" else panel if dated else "", fontsize=10)
        axis.set_ylabel("conversions")
        if dated:
            axis.set_xlabel("forecast date")
    for axis in axes.ravel()[len(panels):]:
        axis.set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    return _detached(figure)


def _short_date(value) -> str:
    import pandas as pd

    return pd.Timestamp(value).strftime("%d %b %Y")


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
