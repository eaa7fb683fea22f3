"""Screening the forward gap: variants of the refit champion fitted on the same known snapshots of one world, each
scoring the same open base at the end of the training data, judged against what then happened beside the oracle.

``benchmarks/forward_gap.py`` runs the whole training (selection, evaluation, refit) once per seed; here the
world, its labelled snapshots and their features are built once per seed (cached in ``bench_data/forward/``)
and only the registered model's fit changes, through :func:`training.refit.refit_on_known`, so a variant costs
one fit. ``--ceiling`` adds the observable ceiling on the open base (the best any model reading the export
could do: ``crm.synthetic_truth.SyntheticTruth.filtered_probability`` with the exported leads).

    LEAD_SCORING_THREADS=1 nice -n 19 .venv/bin/python benchmarks/forward_variants.py --seeds 0 1 2 \
        --variants default trees_1200 recency_365
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crm.synthetic import as_it_stood, generate_crm  # noqa: E402
from features.build import build_features  # noqa: E402
from features.spec import FeatureSpec  # noqa: E402
from models.estimators import make_lightgbm, make_logistic_regression  # noqa: E402
from training.config import TrainingConfig  # noqa: E402
from training.refit import refit_on_known  # noqa: E402
from training.snapshot_split import split_snapshots  # noqa: E402

CACHE = Path(__file__).resolve().parent.parent / "bench_data" / "forward"


def lightgbm(**options):
    def make(spec, seed):
        pipeline = make_lightgbm(spec, random_state=seed)
        return pipeline.set_params(**{f"classifier__{key}": value for key, value in options.items()})
    return make


#: name -> (candidate maker, per-lead weights, recency half-life in days or None, fit through the data's end)
VARIANTS = {
    "default": (lightgbm(), True, None, False),
    "no_lead_weights": (lightgbm(), False, None, False),
    "trees_1200": (lightgbm(n_estimators=1200), True, None, False),
    "trees_1200_lr015": (lightgbm(n_estimators=1200, learning_rate=0.015), True, None, False),
    "leaves_11": (lightgbm(num_leaves=11), True, None, False),
    "leaves_15_trees_900": (lightgbm(num_leaves=15, n_estimators=900), True, None, False),
    "min_child_100": (lightgbm(min_child_samples=100), True, None, False),
    "min_child_400": (lightgbm(min_child_samples=400), True, None, False),
    "lambda_10": (lightgbm(reg_lambda=10.0), True, None, False),
    "subsample_0.5": (lightgbm(subsample=0.5), True, None, False),
    "max_bin_63": (lightgbm(max_bin=63), True, None, False),
    "every_30d": (lightgbm(), True, None, "every_30d"),
    "recency_180": (lightgbm(), True, 180, False),
    "recency_365": (lightgbm(), True, 365, False),
    "recency_730": (lightgbm(), True, 730, False),
    "fit_to_end": (lightgbm(), True, None, True),
    "fit_to_end_every_30d": (lightgbm(), True, None, "end_every_30d"),
    "fit_to_end_leads_80": (lightgbm(), True, None, "end_leads_80"),
    "logistic": (lambda spec, seed: make_logistic_regression(spec), False, None, False),
}


def world_rows(seed: int, *, leads: int, months: int, horizon_days: int = 90) -> dict:
    """The seed's labelled snapshots and features, the open base's features and labels, oracle (cached)."""
    directory = CACHE / f"seed{seed}_leads{leads}_months{months}"
    if not (directory / "done").exists():
        directory.mkdir(parents=True, exist_ok=True)
        world = generate_crm(leads, months=months + 3, seed=seed)
        end = pd.Timestamp("2025-01-01") + pd.DateOffset(months=months)
        cut = as_it_stood(world, end)
        spec = FeatureSpec()
        labelled, _, _ = split_snapshots(cut.leads, cut.deals, config=TrainingConfig(seed=seed), data_end=end,
                                         unassigned=True)
        features = build_features(labelled, cut.leads, cut.events, spec)
        closed = cut.deals["lead_id"].unique()
        base = pd.DataFrame({"lead_id": cut.leads.loc[~cut.leads["lead_id"].isin(closed), "lead_id"].to_numpy(),
                             "as_of": end})
        won = world.deals[world.deals["outcome"].eq("won") & (world.deals["closed_at"] >= end)
                          & (world.deals["closed_at"] < end + pd.Timedelta(days=horizon_days))]
        base["label"] = base["lead_id"].isin(won["lead_id"]).astype(int)
        base["oracle"] = world.truth.oracle_probability(base, horizon_days=horizon_days)
        started = time.perf_counter()
        base["ceiling"] = world.truth.filtered_probability(base, cut.events, horizon_days, leads=cut.leads)
        print(f"seed {seed}: observable ceiling on {len(base):,} open leads in {time.perf_counter() - started:.0f} s",
              flush=True)
        labelled.drop(columns=["split"]).to_parquet(directory / "snapshots.parquet")
        features.to_parquet(directory / "features.parquet")
        build_features(base[["lead_id", "as_of"]], cut.leads, cut.events, spec).to_parquet(
            directory / "open_features.parquet")
        base.to_parquet(directory / "open_base.parquet")
        (directory / "done").write_text("")
    return {name: pd.read_parquet(directory / f"{name}.parquet")
            for name in ("snapshots", "features", "open_features", "open_base")}


def run_variant(rows: dict, name: str, *, seed: int, end) -> float:
    make, per_lead, half_life, to_end = VARIANTS[name]
    spec = FeatureSpec()
    snapshots, features = rows["snapshots"], rows["features"]
    if to_end in ("every_30d", "end_every_30d"):  # every other as_of date: half the rows, the same leads
        dates = np.sort(snapshots["as_of"].unique())
        keep = snapshots["as_of"].isin(dates[::2]).to_numpy()
        snapshots, features = snapshots[keep].reset_index(drop=True), features[keep].reset_index(drop=True)
        to_end = to_end == "end_every_30d"
    if to_end == "end_leads_80":  # a fifth of the leads held out whole (they would calibrate), the rest fit to the end
        leads = np.sort(snapshots["lead_id"].unique())
        held = np.random.default_rng(seed).choice(leads, size=len(leads) // 5, replace=False)
        keep = ~snapshots["lead_id"].isin(held).to_numpy()
        snapshots, features = snapshots[keep].reset_index(drop=True), features[keep].reset_index(drop=True)
    config = TrainingConfig(seed=seed)
    if to_end:  # every labelled snapshot fits; the ranking (all that is judged here) needs no calibration map
        from training.weights import fit_weighted, lead_weights

        model = fit_weighted(make(spec, seed), features, snapshots["label"].to_numpy(),
                             lead_weights(snapshots["lead_id"]) if per_lead else None)
        probability = model.predict_proba(rows["open_features"][features.columns])[:, 1]
        return float(roc_auc_score(rows["open_base"]["label"], probability))
    refit = refit_on_known(features, snapshots["label"], snapshots["as_of"], groups=snapshots["lead_id"],
                           candidate=make(spec, seed), per_lead=per_lead, horizon_days=config.horizon_days,
                           calibration_days=config.calibration_days,
                           tier_policy=config.tier_policy, categorical=spec.categorical_feature_names, seed=seed,
                           half_life_days=half_life)
    probability = refit["model"].predict_proba(rows["open_features"][features.columns])[:, 1]
    return float(roc_auc_score(rows["open_base"]["label"], probability))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--variants", nargs="+", default=["default"], choices=sorted(VARIANTS))
    args = parser.parse_args(argv)
    results = []
    for seed in args.seeds:
        rows = world_rows(seed, leads=args.leads, months=args.months)
        end = pd.Timestamp("2025-01-01") + pd.DateOffset(months=args.months)
        base = rows["open_base"]
        oracle = roc_auc_score(base["label"], base["oracle"])
        ceiling = roc_auc_score(base["label"], base["ceiling"])
        for name in args.variants:
            started = time.perf_counter()
            auc = run_variant(rows, name, seed=seed, end=end)
            results.append({"seed": seed, "variant": name, "forward_roc_auc": auc, "oracle": oracle,
                            "ceiling_gap": oracle - ceiling, "forward_gap": oracle - auc,
                            "seconds": time.perf_counter() - started})
            print(pd.DataFrame(results[-1:]).to_string(index=False, header=len(results) == 1,
                                                       float_format=lambda v: f"{v:.4f}"), flush=True)
    table = pd.DataFrame(results)
    wide = table.pivot(index="variant", columns="seed", values="forward_gap").reindex(args.variants)
    wide["mean"] = wide.mean(axis=1)
    print("\nforward gap by seed\n" + wide.to_string(float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
