"""The demo's gap to the oracle under candidate changes: test ROC AUC, oracle AUC, ECE per seed.

Each variant trains the demo's LightGBM on the pipeline's own snapshots, split and features
(``training.pipeline.split_snapshots``, ``features.build.build_features``), calibrates it as the
pipeline does and scores the test snapshots of the demo's 15-day schedule, so every variant of one
seed is judged on the same rows. Data per seed is generated once into ``--data``.

    .venv/bin/python benchmarks/demo_gap.py --seeds 0 1 2 --variants pipeline no_lead_weights cal_isotonic
    .venv/bin/python benchmarks/demo_gap.py --seeds 0 --ceiling          # adds the observable ceiling
    .venv/bin/python benchmarks/demo_gap.py --seeds 0 1 2 --learning-curve   # the gap against training leads
    .venv/bin/python benchmarks/demo_gap.py --seeds 0 --distill          # the same model fitted to the ceiling

Run it with ``LEAD_SCORING_THREADS=1`` on a shared machine. What was measured with it, and the ideas
tried and dropped (their prototypes left this file once measured), is in docs/results/demo-gap.md.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

#: Each variant: LightGBM parameters (``lightgbm``), per-lead weights (``lead_weights``, the pipeline's
#: default), forced calibration ``methods``, feature spec options (``spec``), a training snapshot spacing
#: (``train_every_days``), feature columns dropped by regular expression (``drop``), or the generator's true
#: fit as a column no model can have (``diagnostic_true_fit``: what reading the fit from attributes costs).
VARIANTS = {
    "pipeline": {"lead_weights": True},
    "no_lead_weights": {},
    "cal_sigmoid": {"lead_weights": True, "methods": ("sigmoid",)},
    "cal_isotonic": {"lead_weights": True, "methods": ("isotonic",)},  # centred, as the pipeline fits it
    "random_state_1": {"lead_weights": True, "lightgbm": {"random_state": 1}},  # the seed-to-seed spread
    "random_state_2": {"lead_weights": True, "lightgbm": {"random_state": 2}},
    "extra_smooth": {"lead_weights": True, "lightgbm": {"extra_trees": True, "path_smooth": 20.0}},
    "trees_400": {"lead_weights": True, "lightgbm": {"n_estimators": 400}},
    "trees_1200_lr015": {"lead_weights": True, "lightgbm": {"n_estimators": 1200, "learning_rate": 0.015}},
    "leaves_5": {"lead_weights": True, "lightgbm": {"num_leaves": 5}},
    "subsample_0.5": {"lead_weights": True, "lightgbm": {"subsample": 0.5}},
    "lambda_10": {"lead_weights": True, "lightgbm": {"reg_lambda": 10.0}},
    "every_7d": {"lead_weights": True, "train_every_days": 7},
    "half_lives_1_3_7_30_90": {"lead_weights": True, "spec": {"half_lives_days": (1.0, 3.0, 7.0, 30.0, 90.0)}},
    "no_type_counts": {"lead_weights": True, "drop": [r"events_(?!any_).+_(\d+d|total)"]},
    "diagnostic_true_fit": {"lead_weights": True, "diagnostic_true_fit": True},
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["pipeline", "no_lead_weights"], choices=list(VARIANTS))
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--data", default="bench_data/demo_gap")
    parser.add_argument("--ceiling", action="store_true", help="also the observable ceiling (fit read from the leads)")
    parser.add_argument("--learning-curve", action="store_true",
                        help="the pipeline's LightGBM on a quarter, half, three quarters and all of the training leads")
    parser.add_argument("--distill", action="store_true",
                        help="the same LightGBM fitted to the observable ceiling's log-odds instead of the labels")
    args = parser.parse_args(argv)
    rows = []
    for seed in args.seeds:
        run = SeedRun(seed, args.leads, Path(args.data))
        if args.ceiling:
            rows.append(run.ceiling())
        if args.learning_curve:
            rows.extend(run.learning_curve())
        if args.distill:
            rows.extend(run.distilled())
        if args.learning_curve or args.distill:
            continue
        for name in args.variants:
            rows.append(run.variant(name))
            print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items()),
                  flush=True)
    table = pd.DataFrame(rows)
    print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    numeric = table.drop(columns=["seed"]).groupby("variant", sort=False).mean(numeric_only=True)
    print("\nmean over seeds\n" + numeric.to_string(float_format=lambda v: f"{v:.4f}"))
    return 0


class SeedRun:
    """One seed's synthetic CRM (generated once into ``folder``), its snapshots and features, cached."""

    def __init__(self, seed, n_leads, folder):
        from crm.readers import load_crm
        from crm.synthetic import generate_crm, load_truth, write_crm

        self.seed, self.folder = seed, folder / f"seed{seed}_{n_leads}"
        if not (self.folder / "truth.json").exists():
            write_crm(generate_crm(n_leads, months=18, seed=seed), self.folder)
        self.leads, self.events, self.deals = load_crm(*(self.folder / f"{name}.parquet"
                                                         for name in ("leads", "events", "deals")))
        self.truth = load_truth(self.folder)
        self._built = {}

    def snapshots(self, every_days, spec=None):
        """Snapshots with their split and features on the demo's schedule, or a denser one."""
        from features.build import build_features
        from features.spec import FeatureSpec
        from training.pipeline import TrainingConfig, latest_timestamp, split_snapshots

        spec = spec or FeatureSpec()
        key = (every_days, repr(spec))
        if key not in self._built:
            config = TrainingConfig(seed=0, snapshot_every_days=every_days)
            data_end = latest_timestamp(self.leads, self.events, self.deals)
            snapshots, _, _ = split_snapshots(self.leads, self.deals, config=config, data_end=data_end)
            self._built[key] = (snapshots, build_features(snapshots, self.leads, self.events, spec))
        return self._built[key]

    def variant(self, name):
        from features.spec import FeatureSpec
        from training.calibrate import CALIBRATION_METHODS, calibrate
        from training.evaluate import evaluate_probabilities
        from training.weights import fit_weighted, lead_weights

        options = VARIANTS[name]
        spec = FeatureSpec(**options.get("spec", {}))
        test_rows, test_X = self.snapshots(15, spec)
        fit_rows, fit_X = self.snapshots(options.get("train_every_days", 15), spec)
        if options.get("drop"):
            kept = [c for c in fit_X.columns if not any(re.fullmatch(p, c) for p in options["drop"])]
            fit_X, test_X = fit_X[kept], test_X[kept]
        if options.get("diagnostic_true_fit"):
            fit_of = self.truth.leads.set_index("lead_id")["fit"]
            test_X = test_X.assign(true_fit=fit_of.reindex(test_rows["lead_id"]).to_numpy())
            fit_X = fit_X.assign(true_fit=fit_of.reindex(fit_rows["lead_id"]).to_numpy())
        split, y = fit_rows["split"].to_numpy(), fit_rows["label"].to_numpy()
        train, cal = split == "train", split == "calibration"
        test = test_rows["split"].eq("test").to_numpy()
        y_test = test_rows["label"].to_numpy()[test]
        started = time.perf_counter()
        weight = lead_weights(fit_rows["lead_id"].to_numpy()[train]) if options.get("lead_weights") else None
        model = fit_weighted(_lightgbm(spec, **options.get("lightgbm", {})), fit_X[train], y[train], weight)
        fitted_seconds = time.perf_counter() - started
        calibrated, log_losses = calibrate(model, fit_X[cal], y[cal], seed=0,
                                           methods=options.get("methods", CALIBRATION_METHODS))
        probability = calibrated.predict_proba(test_X[test])[:, 1]
        metrics = evaluate_probabilities(y_test, probability)
        oracle = self.oracle_auc()
        return {"variant": name, "seed": self.seed, "test_auc": metrics["test_roc_auc"], "oracle": oracle,
                "gap": oracle - metrics["test_roc_auc"], "ece": metrics["test_ece"],
                "uncalibrated_auc": roc_auc_score(y_test, model.predict_proba(test_X[test])[:, 1]),
                "calibration": min(log_losses, key=log_losses.get), "train_rows": int(train.sum()),
                "fit_seconds": fitted_seconds, "total_seconds": time.perf_counter() - started}

    def learning_curve(self, shares=(0.25, 0.5, 0.75, 1.0), draws=3):
        """The pipeline's weighted LightGBM on a random share of the training leads (``draws`` draws), same test rows."""
        from features.spec import FeatureSpec
        from training.weights import lead_weights

        rows, X = self.snapshots(15)
        split, y, lead = rows["split"].to_numpy(), rows["label"].to_numpy(), rows["lead_id"].to_numpy()
        train, test = split == "train", split == "test"
        oracle = self.oracle_auc()
        leads = np.unique(lead[train])
        out = []
        for share in shares:
            for draw in range(draws if share < 1 else 1):
                kept = train & np.isin(lead, np.random.default_rng(draw).choice(leads, int(share * leads.size),
                                                                                replace=False))
                model = _lightgbm(FeatureSpec()).fit(X[kept], y[kept],
                                                      classifier__sample_weight=lead_weights(lead[kept]))
                auc = roc_auc_score(y[test], model.predict_proba(X[test])[:, 1])
                out.append({"variant": f"training_leads_{share:g}", "seed": self.seed, "test_auc": auc,
                            "oracle": oracle, "gap": oracle - auc, "train_leads": int(share * leads.size)})
                print(f"  seed {self.seed} share {share:g} draw {draw}: gap {oracle - auc:.4f}", flush=True)
        return out

    def distilled(self):
        """The pipeline's LightGBM shape fitted (lead-weighted least squares) to the observable ceiling's log-odds.

        No model has that target; it asks whether the features can carry the ceiling's ranking. If this
        closes most of the gap, what is missing is learning from the labels, not information in the columns.
        """
        import lightgbm
        from scipy.special import logit

        from features.spec import FeatureSpec
        from training.weights import lead_weights

        rows, X = self.snapshots(15)
        split, y, lead = rows["split"].to_numpy(), rows["label"].to_numpy(), rows["lead_id"].to_numpy()
        train, test = split == "train", split == "test"
        oracle = self.oracle_auc()
        seen = self.truth.filtered_probability(rows[train | test], self.events, horizon_days=90, leads=self.leads)
        target = logit(np.clip(seen, 1e-5, 1 - 1e-5))
        ceiling = roc_auc_score(y[test], seen[test[train | test]])
        pipeline = _lightgbm(FeatureSpec())
        regressor = lightgbm.LGBMRegressor(**pipeline[-1].get_params())  # the classifier's shape, squared loss
        encoder = pipeline[0].fit(X[train])
        regressor.fit(encoder.transform(X[train]), target[train[train | test]], sample_weight=lead_weights(lead[train]))
        auc = roc_auc_score(y[test], regressor.predict(encoder.transform(X[test])))
        labelled = _lightgbm(FeatureSpec()).fit(X[train], y[train], classifier__sample_weight=lead_weights(lead[train]))
        from_labels = roc_auc_score(y[test], labelled.predict_proba(X[test])[:, 1])
        return [{"variant": name, "seed": self.seed, "test_auc": value, "oracle": oracle, "gap": oracle - value}
                for name, value in (("observable_ceiling", ceiling), ("distilled_from_ceiling", auc),
                                    ("fitted_to_labels", from_labels))]

    def oracle_auc(self):
        """The oracle's ROC AUC on the demo schedule's test snapshots, the rows every variant is judged on."""
        if "oracle_auc" not in self._built:
            rows, _ = self.snapshots(15)
            test = rows["split"].eq("test").to_numpy()
            self._built["oracle_auc"] = roc_auc_score(rows["label"].to_numpy()[test],
                                                      self.truth.oracle_probability(rows[test], horizon_days=90))
        return self._built["oracle_auc"]

    def ceiling(self):
        rows, _ = self.snapshots(15)
        test = rows["split"].eq("test").to_numpy()
        seen = self.truth.filtered_probability(rows[test], self.events, horizon_days=90, leads=self.leads)
        auc = roc_auc_score(rows["label"].to_numpy()[test], seen)
        return {"variant": "observable_ceiling", "seed": self.seed, "test_auc": auc, "oracle": self.oracle_auc(),
                "gap": self.oracle_auc() - auc}


def _lightgbm(spec, **params):
    from models.estimators import make_lightgbm

    model = make_lightgbm(spec)
    return model.set_params(**{f"classifier__{key}": value for key, value in params.items()})


if __name__ == "__main__":
    raise SystemExit(main())
