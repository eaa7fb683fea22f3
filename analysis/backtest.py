"""The backtest picture: ROC AUC, calibration error and base rates window by window."""

from __future__ import annotations


def backtest_figure(windows, *, title: str = "Rolling-origin backtest"):
    """Two panels over the test windows: ROC AUC and ECE; test and training base rates."""
    from analysis.plots import _pyplot

    plt = _pyplot()
    labels = [f"{row.window}: {row.test_from}" for row in windows.itertuples()]
    positions = range(len(labels))
    figure, (quality, rates) = plt.subplots(1, 2, figsize=(11, 4.5))
    quality.plot(positions, windows["roc_auc"], marker="o", label="ROC AUC")
    quality.plot(positions, windows["ece"], marker="s", label="ECE")
    quality.set_ylim(0, 1)
    quality.set_title("discrimination and calibration")
    rates.plot(positions, windows["test_base_rate"], marker="o", label="test base rate")
    rates.plot(positions, windows["train_base_rate"], marker="s", linestyle="--", label="training base rate")
    rates.plot(positions, windows["mean_probability"], marker="^", linestyle=":", label="mean predicted probability")
    rates.set_title("conversion rates")
    for axis in (quality, rates):
        axis.set_xticks(list(positions), labels, rotation=30, ha="right")
        axis.set_xlabel("test window (from)")
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure
