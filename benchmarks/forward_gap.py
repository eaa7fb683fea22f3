"""The forward gap: the registered model scores the open base at the end of its training data, and those
scores are judged against what then happened, beside the oracle's (the figure a company lives by).

The synthetic world is generated past the training data (21 months); training sees it cut at month 18
(nothing created, done or decided after), scores every lead open then, and the next 90 days of the same
world give the outcomes. Both registered models are measured: the one fitted on the training split and the
one refit on everything known (``--refit``).

    .venv/bin/python benchmarks/forward_gap.py --seeds 0 1 2 [--registered refit]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crm.synthetic import as_it_stood, generate_crm  # noqa: E402
from features.build import build_features  # noqa: E402
from training.pipeline import TrainingConfig, train_model  # noqa: E402


def forward_gap(seed: int, *, leads: int, months: int, horizon_days: int = 90, threads: int | None = None,
                registered=(False, True), recency_half_lives=()) -> list:
    world = generate_crm(leads, months=months + 3, seed=seed)
    end = pd.Timestamp("2025-01-01") + pd.DateOffset(months=months)
    cut = as_it_stood(world, end)
    known = (cut.leads, cut.events, cut.deals)
    closed = known[2]["lead_id"].unique()
    open_base = pd.DataFrame({"lead_id": known[0].loc[~known[0]["lead_id"].isin(closed), "lead_id"].to_numpy(),
                              "as_of": end})
    won = world.deals[world.deals["outcome"].eq("won") & (world.deals["closed_at"] >= end)
                      & (world.deals["closed_at"] < end + pd.Timedelta(days=horizon_days))]
    label = open_base["lead_id"].isin(won["lead_id"]).astype(int).to_numpy()
    oracle = roc_auc_score(label, world.truth.oracle_probability(open_base, horizon_days=horizon_days))
    rows = []
    for refit in registered:
        started = time.perf_counter()
        config = TrainingConfig(refit=refit, seed=seed, threads=threads, recency_half_lives=recency_half_lives)
        result = train_model(*known, config=config, data_end=end,
                             oracle=lambda snapshots: world.truth.oracle_probability(snapshots, horizon_days),
                             log=lambda line: None)
        features = build_features(open_base, known[0], known[1], result.bundle.spec)
        auc = roc_auc_score(label, result.bundle.predict_probability(features))
        rows.append({"seed": seed, "registered": "refit" if refit else "training split",
                     "model": result.params["model"],
                     "open_leads": len(open_base), "converted": int(label.sum()), "forward_roc_auc": auc,
                     "oracle_roc_auc": oracle, "forward_gap": oracle - auc,
                     "test_roc_auc": result.metrics["test_roc_auc"],
                     "test_gap": result.metrics["test_oracle_roc_auc"] - result.metrics["test_roc_auc"],
                     "seconds": time.perf_counter() - started})
        print(pd.DataFrame(rows[-1:]).to_string(index=False, float_format=lambda v: f"{v:.4f}"), flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=18, help="months of training data (3 more are generated)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--registered", choices=("both", "training", "refit"), default="both",
                        help="which registered model to measure (default: %(default)s)")
    parser.add_argument("--recency-half-lives", nargs="*", default=[],
                        help="offer recency-weighted LightGBM to the selection windows, e.g. 180d")
    args = parser.parse_args(argv)
    registered = {"both": (False, True), "training": (False,), "refit": (True,)}[args.registered]
    rows = [row for seed in args.seeds for row in forward_gap(seed, leads=args.leads, months=args.months,
                                                               threads=args.threads, registered=registered,
                                                               recency_half_lives=args.recency_half_lives)]
    table = pd.DataFrame(rows)
    print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\nmean forward gap: " + ", ".join(f"{name} {group['forward_gap'].mean():.4f}"
                                             for name, group in table.groupby("registered", sort=False)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
