"""The standard pictures of a binary classifier on its test split, one figure per function.

ROC and precision-recall curves and the reliability diagram are scikit-learn's Display classes
drawn on axes these functions own; lift, KS, the threshold picture with tier cut-offs, confusion
at the tier thresholds and factor importance are what those classes lack.
"""

from __future__ import annotations

import numpy as np

from analysis.plots import _detached, _pyplot, gains_curve

#: Colours of the tiers wherever a picture marks them.
TIER_COLOURS = {"SQL": "#d62728", "MQL": "#ff7f0e"}


def roc_figure(y_true, probability, *, title: str = "ROC curve on the test split"):
    """True positive rate against false positive rate (scikit-learn's RocCurveDisplay), chance level drawn."""
    from sklearn.metrics import RocCurveDisplay

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 5))
    RocCurveDisplay.from_predictions(y_true, probability, ax=axis, name="model", plot_chance_level=True)
    axis.set_xlabel("false positive rate (non-converters flagged)")
    axis.set_ylabel("true positive rate (converters caught)")
    axis.set_title(title)
    figure.tight_layout()
    return _detached(figure)


def precision_recall_figure(y_true, probability, *, title: str = "Precision-recall on the test split"):
    """Precision against recall (scikit-learn's PrecisionRecallDisplay), the base rate as chance level."""
    from sklearn.metrics import PrecisionRecallDisplay

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 5))
    PrecisionRecallDisplay.from_predictions(y_true, probability, ax=axis, name="model", plot_chance_level=True)
    axis.set_xlabel("recall (share of converters caught)")
    axis.set_ylabel("precision (conversion among flagged leads)")
    axis.set_title(title)
    figure.tight_layout()
    return _detached(figure)


def lift_gains_figure(y_true, probability, *, title: str = "Cumulative gains and lift on the test split"):
    """Two panels: share of conversions captured, and cumulative lift, against share of leads contacted."""
    plt = _pyplot()
    contacted, captured, lift = gains_curve(y_true, probability)
    figure, (gains, lifted) = plt.subplots(1, 2, figsize=(10, 4.5))
    base = float(np.mean(np.asarray(y_true, dtype=float)))
    gains.plot(contacted, captured, label="model")
    gains.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    gains.plot([0, base, 1], [0, 1, 1], linestyle=":", color="black", label="perfect")
    gains.set_xlabel("share of leads, highest score first")
    gains.set_ylabel("share of conversions captured")
    gains.set_title("Cumulative gains")
    gains.legend(loc="lower right")
    start = max(1, int(0.01 * contacted.size))  # the first handful of leads make a noisy spike
    lifted.plot(contacted[start:], lift[start:], label="model")
    lifted.axhline(1.0, linestyle="--", color="grey", label="random")
    lifted.set_xlabel("share of leads, highest score first")
    lifted.set_ylabel("conversion rate over the base rate")
    lifted.set_title("Cumulative lift")
    lifted.legend(loc="upper right")
    figure.suptitle(title)
    figure.tight_layout()
    return _detached(figure)


def ks_figure(y_true, probability, *, title: str = "Kolmogorov-Smirnov separation on the test split"):
    """Cumulative share of converters and non-converters by probability; KS is the widest gap between them."""
    plt = _pyplot()
    cut, converters, others, ks, at = ks_curves(y_true, probability)
    figure, axis = plt.subplots(figsize=(6, 4.5))
    axis.plot(cut, converters, label="converters")
    axis.plot(cut, others, label="non-converters")
    i = int(np.searchsorted(cut, at))
    i = min(i, cut.size - 1)
    axis.vlines(at, converters[i], others[i], color="black", linestyle="--",
                label=f"KS = {ks:.3f} at probability {at:.3f}")
    axis.set_xscale("log")
    axis.set_xlabel("predicted probability (log scale)")
    axis.set_ylabel("share of leads at or below it")
    axis.set_title(title)
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return _detached(figure)


def reliability_histogram_figure(y_true, probability, *, n_bins: int = 10,
                                 title: str = "Reliability on the test split"):
    """Observed conversion against predicted probability in equal-count bins, the predictions' histogram below.

    scikit-learn's CalibrationDisplay with ``strategy="quantile"`` (each point the same number of
    leads, so the same noise); both axes are logarithmic because lead probabilities are skewed:
    on a linear axis most points would sit in the bottom-left corner.
    """
    from sklearn.calibration import CalibrationDisplay

    plt = _pyplot()
    y_true = np.asarray(y_true, dtype=int)
    probability = np.asarray(probability, dtype=float)
    figure, (curve, histogram) = plt.subplots(2, 1, figsize=(6, 7), sharex=True,
                                              gridspec_kw={"height_ratios": [3, 1]})
    display = CalibrationDisplay.from_predictions(y_true, probability, n_bins=n_bins, strategy="quantile",
                                                  ax=curve, name="model")
    shown = np.concatenate([display.prob_pred, display.prob_true])
    shown = shown[shown > 0]
    # From the lowest point drawn, not the lowest prediction: a few near-zero leads would squash the rest.
    low = max(float(shown.min()) * 0.5 if shown.size else 1e-3, 1e-4)
    high = min(1.0, max(float(probability.max()), float(shown.max()) if shown.size else 0.0) * 1.25)
    curve.set_xscale("log")
    curve.set_yscale("log")
    curve.set_xlim(low, high)
    curve.set_ylim(low, high)
    curve.set_xlabel("")
    curve.set_ylabel("observed conversion rate (log scale)")
    curve.set_title(title)
    curve.legend(loc="upper left")
    edges = np.geomspace(low, high, 40)
    for label, colour, name in ((0, "#9e9e9e", "did not convert"), (1, "#d62728", "converted")):
        histogram.hist(np.clip(probability[y_true == label], low, high), bins=edges, color=colour, alpha=0.7,
                       label=name)
    histogram.set_yscale("log")
    histogram.set_xlabel("predicted probability (log scale)")
    histogram.set_ylabel("leads")
    histogram.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    return _detached(figure)


def threshold_figure(y_true, probability, thresholds: dict, *,
                     title: str = "What a cut-off gives: conversion, volume and capture"):
    """Conversion among leads above a cut-off, their share of all leads, and their share of conversions.

    ``thresholds`` maps tier name to its probability threshold (e.g. ``{"SQL": 0.3, "MQL": 0.1}``);
    each is drawn as a vertical line with the three values it gives.
    """
    plt = _pyplot()
    table = threshold_curve(y_true, probability)
    figure, axis = plt.subplots(figsize=(8, 5.6))
    axis.plot(table["cutoff"], table["conversion"], label="conversion of leads above the cut-off")
    axis.plot(table["cutoff"], table["volume"], label="share of leads above it (volume)")
    axis.plot(table["cutoff"], table["capture"], label="share of conversions above it (capture)")
    for tier, cut in thresholds.items():
        at = threshold_point(y_true, probability, cut)
        axis.axvline(cut, color=TIER_COLOURS.get(tier, "black"), linestyle="--")
        axis.annotate(f"{tier} >= {cut:.3f}\nconversion {at['conversion']:.0%}\nvolume {at['volume']:.1%}\n"
                      f"capture {at['capture']:.0%}", (cut, 1.0), xycoords=("data", "axes fraction"),
                      ha="center", va="bottom", fontsize=8, xytext=(0, 4), textcoords="offset points",
                      color=TIER_COLOURS.get(tier, "black"))
    axis.set_xscale("log")
    axis.set_ylim(0, 1.02)
    axis.set_xlabel("probability cut-off (log scale)")
    axis.set_ylabel("share")
    axis.yaxis.set_major_formatter(_percent_formatter())
    axis.set_title(title, pad=58)
    axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8)
    figure.tight_layout()
    return _detached(figure)


def confusion_figure(y_true, probability, thresholds: dict, *, title: str = "Confusion at the tier thresholds"):
    """One confusion matrix per tier threshold (scikit-learn's ConfusionMatrixDisplay): at or above = flagged."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    y_true = np.asarray(y_true, dtype=int)
    probability = np.asarray(probability, dtype=float)
    figure, axes = plt.subplots(1, len(thresholds), figsize=(4.6 * len(thresholds), 4.2), squeeze=False)
    for axis, (tier, cut) in zip(axes[0], thresholds.items()):
        flagged = (probability >= cut).astype(int)
        ConfusionMatrixDisplay.from_predictions(y_true, flagged, labels=[1, 0], ax=axis, colorbar=False,
                                                display_labels=["converted", "did not"], cmap="Blues",
                                                values_format=",d")
        axis.set_xticks([0, 1], [f"{tier} or above", f"below {tier}"])
        axis.set_xlabel("model")
        axis.set_ylabel("outcome")
        axis.set_title(f"{tier}: probability >= {cut:.3f}")
    figure.suptitle(title)
    figure.tight_layout()
    return _detached(figure)


def conversion_bars_figure(tiers, deciles, *, title: str = "Conversion per tier and per score decile"):
    """Observed and expected conversion per tier and per decile, lead counts on the bars."""
    plt = _pyplot()
    figure, (by_tier, by_decile) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [1, 2]})
    for axis, table, key, label in ((by_tier, tiers, "tier", "tier"),
                                    (by_decile, deciles, "decile", "score decile (1 = highest scores)")):
        x = np.arange(len(table))
        bars = axis.bar(x - 0.2, table["conversion_rate"].fillna(0), 0.4, label="observed")
        axis.bar(x + 0.2, table["expected_rate"].fillna(0), 0.4, label="expected (mean probability)", alpha=0.6)
        for bar, leads in zip(bars, table["leads"]):
            axis.annotate(f"{int(leads):,}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                          va="bottom", fontsize=7)
        axis.set_xticks(x, [str(value) for value in table[key]])
        axis.set_xlabel(label)
        axis.set_ylabel("conversion rate (leads on bars)")
        axis.yaxis.set_major_formatter(_percent_formatter())
        axis.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return _detached(figure)


def importance_figure(importance, *, top: int = 20,
                      title: str = "What moves scores (mean |contribution| per factor)"):
    """Horizontal bars of each factor's mean absolute contribution to the log-odds, strongest on top.

    ``importance`` has ``factor`` (words) and ``mean_abs_contribution``, strongest first.
    """
    plt = _pyplot()
    shown = importance.head(top).iloc[::-1]
    figure, axis = plt.subplots(figsize=(7.5, 0.32 * len(shown) + 1.4))
    axis.barh(shown["factor"], shown["mean_abs_contribution"], color="#1f77b4")
    axis.set_xlabel("mean |contribution| to the log-odds (test leads)")
    axis.set_title(title)
    axis.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    return _detached(figure)


def ks_curves(y_true, probability):
    """``(cut, converters_cdf, others_cdf, ks, at)``: both empirical CDFs at every distinct probability."""
    y_true = np.asarray(y_true, dtype=int)
    probability = np.asarray(probability, dtype=float)
    cut = np.unique(probability)
    converters = np.searchsorted(np.sort(probability[y_true == 1]), cut, side="right") / max((y_true == 1).sum(), 1)
    others = np.searchsorted(np.sort(probability[y_true == 0]), cut, side="right") / max((y_true == 0).sum(), 1)
    gap = others - converters
    best = int(np.argmax(gap))
    return cut, converters, others, float(gap[best]), float(cut[best])


def threshold_curve(y_true, probability, *, points: int = 200):
    """Conversion, volume and capture of the leads at or above each of ``points`` log-spaced cut-offs."""
    import pandas as pd

    probability = np.asarray(probability, dtype=float)
    positive = probability[probability > 0]
    low = max(float(positive.min()) if positive.size else 1e-4, 1e-4)
    cuts = np.geomspace(low, max(float(probability.max()), low * 1.01), points)
    rows = [threshold_point(y_true, probability, cut) for cut in cuts]
    return pd.DataFrame(rows)


def threshold_point(y_true, probability, cut: float) -> dict:
    """``cutoff``, ``conversion``, ``volume`` and ``capture`` of the leads with probability >= ``cut``."""
    y_true = np.asarray(y_true, dtype=float)
    above = np.asarray(probability, dtype=float) >= cut
    flagged = int(above.sum())
    return {"cutoff": float(cut), "conversion": float(y_true[above].mean()) if flagged else np.nan,
            "volume": flagged / max(y_true.size, 1), "capture": float(y_true[above].sum() / max(y_true.sum(), 1))}


def _percent_formatter():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=0)
