"""Champion/challenger: whether a freshly trained model may replace the champion without a person deciding."""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: A gain above this on the same test window is more often a leak than skill: a person decides.
MAX_PLAUSIBLE_GAIN = 0.05


@dataclass(frozen=True)
class PromotionDecision:
    """The verdict on a challenger, with the figures and the reason a person reads in the registry.

    ``outcome`` is ``promoted``, ``kept champion`` (the challenger is worse or has no signal) or
    ``held for review`` (it may be better, but a person must look first).
    """

    outcome: str
    reason: str
    challenger_auc: float
    champion_auc: float | None = None
    champion_version: str | None = None

    @property
    def promote(self) -> bool:
        return self.outcome == "promoted"

    def as_dict(self) -> dict:
        return asdict(self)


def decide_promotion(*, challenger_auc: float, champion_auc: float | None = None, has_champion: bool = False,
                     champion_version: str | None = None, suspicious_columns=(), has_signal: bool = True,
                     drift: str | None = None, champion_comparison: str | None = None,
                     max_gain: float = MAX_PLAUSIBLE_GAIN) -> PromotionDecision:
    """Decide on a challenger, in this order: signal, suspicious columns, moving data, comparability, the figures.

    ``champion_comparison`` is the run's word on the comparison (``training.refit.compare_champion``): when
    it says why the champion was not compared, that is the reason given for holding the model.
    ``drift`` is the training run's sentence on its newest labelled window (``training.drift``; empty,
    ``"none"`` or ``"not checked"`` when nothing moved): a model trained on data that moves is held.

    ``champion_auc`` is the champion's test AUC on the challenger's test window (None when there is
    no champion, or it could not be scored on this data: ``has_champion`` tells which).
    """
    if max_gain <= 0:
        raise ValueError(f"The 'max_gain' parameter of decide_promotion must be positive. Got {max_gain!r} instead.")
    decision = dict(challenger_auc=float(challenger_auc), champion_auc=None if champion_auc is None
                    else float(champion_auc), champion_version=champion_version)
    if not has_signal:
        return PromotionDecision("kept champion", "the model does not beat the validation AUC floor: its ranking "
                                 "and tiers carry no information", **decision)
    suspicious = list(suspicious_columns)
    if suspicious:
        return PromotionDecision("held for review", f"uses suspicious column(s) {', '.join(suspicious)}: check they "
                                 "are known before the outcome, then promote by hand", **decision)
    if drift and drift not in ("none", "not checked"):
        return PromotionDecision("held for review", f"{drift}: check the data (or retrain with spans that fit "
                                 "it), then promote by hand", **decision)
    if champion_auc is None:
        if has_champion:
            if champion_comparison and champion_comparison.startswith("not compared"):
                return PromotionDecision("held for review", f"champion {champion_comparison}", **decision)
            return PromotionDecision("held for review", "the champion could not be scored on this data, so the two "
                                     "cannot be compared on the same window", **decision)
        return PromotionDecision("promoted", "first model under this name", **decision)
    gain = challenger_auc - champion_auc
    if gain < 0:
        return PromotionDecision("kept champion", f"worse than the champion on the same test window "
                                 f"({challenger_auc:.4f} < {champion_auc:.4f})", **decision)
    if gain > max_gain + 1e-9:  # 0.75 - 0.70 is 0.05000000000000004 in floating point
        return PromotionDecision("held for review", f"gains {gain:.4f} AUC over the champion on the same test window, "
                                 f"more than the plausible {max_gain}: look for a leak before promoting by hand",
                                 **decision)
    return PromotionDecision("promoted", f"not worse than the champion on the same test window "
                             f"({challenger_auc:.4f} >= {champion_auc:.4f})", **decision)
