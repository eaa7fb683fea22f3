"""What a training run is told: snapshot spans, split, tier policy, guards' floors, selection and refit settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from features.timing import duration_days
from models.tiers import POLICIES, CapacityPolicy, policy_from_dict
from training.split import SPLIT_KINDS


@dataclass
class TrainingConfig:
    """How snapshots are taken and split, and how tiers are chosen.

    The four spans are durations in days; ``"6h"``, ``"2d"`` and ``"90d"`` are read as such.
    """

    horizon_days: float = 90
    # Twice a month: more as_of dates let the model see each lead at more stages of its journey.
    snapshot_every_days: float = 15
    test_days: float = 90
    calibration_days: float = 60
    lead_shares: tuple = (0.6, 0.2, 0.2)
    # "lead_share": each lead in one split, by lead_shares; "time": time alone separates the splits, as
    # production spends leads (training.split.temporal_split).
    split_by: str = "lead_share"
    # After evaluation, register the chosen settings refit on every snapshot whose outcome is known at the
    # data's end (training.refit) instead of the model fitted on the training split.
    refit: bool = False
    tier_policy: object = field(default_factory=CapacityPolicy)
    seed: int = 0
    min_positives: int = 40
    min_negatives: int = 40
    min_split_positives: int = 20
    leakage_max_auc: float = 0.95
    post_outcome_columns: tuple = ()
    keep_columns: tuple = ()
    # Kept but flagged, and never promoted automatically: realistic leaks score 0.8-0.92 alone.
    leakage_suspicious_auc: float = 0.80
    # Snapshots repeat leads: the guards also count distinct converting leads.
    min_converted_leads: int = 20
    min_split_converted_leads: int = 10
    # A validation AUC at or below this is noise: not promoted, tiers reported as uninformative.
    min_validation_auc: float = 0.55
    # One model per value of this categorical lead column with enough data, a global model for the rest.
    segment_by: str | None = None
    # Wall-clock seconds for the LightGBM hyperparameter search on train -> calibration; 0 turns it off.
    search_seconds: float = 0.0
    #: LightGBM's threads (BLAS gets one for small fits); None: LEAD_SCORING_THREADS or the cores available.
    threads: int | None = None
    # Candidates fitted with each lead weighing one, shared by its snapshots, so long-open leads do not
    # dominate: LightGBM gained 0.003-0.004 test AUC on the demo (three seeds, two LightGBM seeds) and
    # nothing on a real log; the logistic model lost 0.001-0.005 validation AUC on both. Calibration
    # and evaluation stay per row.
    per_lead_candidates: tuple = ("lightgbm",)
    # Rolling-origin windows before the test window on which candidates and calibration maps are compared
    # (training.selection); 0 picks by the one calibration split's ROC AUC, as before.
    selection_windows: int = 3
    # Half-lives (durations) of LightGBM candidates fitted with recent snapshots weighing more, for data that
    # moves; the selection windows keep one only when it beats the plain fit beyond their noise. None by default:
    # on the stationary synthetic demo each lost forward ROC AUC (benchmarks/forward_variants.py).
    recency_half_lives: tuple = ()

    def __post_init__(self):
        for name in _SPANS:
            days = duration_days(getattr(self, name), name=f"The {name!r} parameter of TrainingConfig")
            setattr(self, name, int(days) if days.is_integer() else days)  # 90, not 90.0, in logged params
        listed = self.per_lead_candidates
        if isinstance(listed, str) or not isinstance(listed, (list, tuple)) or not all(
                isinstance(name, str) for name in listed):
            raise ValueError("The 'per_lead_candidates' parameter of TrainingConfig must be a list of candidate names "
                             f"such as ['lightgbm'] (or empty). Got {listed!r} instead.")
        self.per_lead_candidates = tuple(listed)
        if isinstance(self.recency_half_lives, (str, int, float)):
            raise ValueError("The 'recency_half_lives' parameter of TrainingConfig must be a list of durations such "
                             f"as ['180d'] (or empty). Got {self.recency_half_lives!r} instead.")
        self.recency_half_lives = tuple(duration_days(value, name="A value of the 'recency_half_lives' parameter of "
                                                      "TrainingConfig") for value in self.recency_half_lives)
        if self.split_by not in SPLIT_KINDS:
            raise ValueError(f"The 'split_by' parameter of TrainingConfig must be one of {list(SPLIT_KINDS)}. "
                             f"Got {self.split_by!r} instead.")

    def as_params(self) -> dict:
        params = asdict(self)
        params["tier_policy"] = {"kind": type(self.tier_policy).__name__, **asdict(self.tier_policy)}
        return params


_SPANS = ("horizon_days", "snapshot_every_days", "test_days", "calibration_days")


def config_from_params(params: dict) -> TrainingConfig:
    """The TrainingConfig a run logged in its bundle's ``metadata["params"]`` (tier policy included)."""
    names = {"horizon_days", "snapshot_every_days", "test_days", "calibration_days", "lead_shares", "seed",
             "split_by"}
    values = {key: params[key] for key in names if key in params}
    if "lead_shares" in values:
        values["lead_shares"] = tuple(values["lead_shares"])
    if isinstance(params.get("tier_policy"), dict):
        policy = dict(params["tier_policy"])
        kind = {cls.__name__: name for name, cls in POLICIES.items()}.get(policy.pop("kind", None), "capacity")
        values["tier_policy"] = policy_from_dict({"kind": kind, **policy})
    return TrainingConfig(**values)
