"""``make bench-spark``: the same lead base scored by ``serve.py score`` (pandas) and ``serve.py spark-score`` (local[2]).

Both read the same Parquet files and write Parquet, end to end, in the same run, without and with
reasons (sub-scores and reasons, the default of both); the script checks that the probabilities
agree (to 1e-9 through the model UDF, 1e-12 with reasons), that tiers, sub-scores and reason texts
are equal, and prints the four times and their ratios. Spark's start-up (JVM, session) is timed apart.

    python benchmarks/bench_spark.py [--leads 100000] [--master local[2]] [--lightgbm]

``--lightgbm`` scores with a LightGBM model (600 trees of 7 leaves, the production candidate) fitted
on the training snapshots, whatever training chose: its reasons need TreeSHAP, the costly route.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000, help="leads in the scored base")
    parser.add_argument("--train-leads", type=int, default=3_000, help="synthetic leads the model is trained on")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--lightgbm", action="store_true", help="score with a LightGBM model (TreeSHAP reasons)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(PROJECT))
    import serve
    from crm.synthetic import generate_crm, write_crm
    from scoring.spark import spark_session
    from train import main as training_main

    with tempfile.TemporaryDirectory(prefix="bench-spark-") as scratch:
        scratch = Path(scratch)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch / 'mlflow.db'}"
        os.chdir(scratch)
        train = scratch / "train"
        write_crm(generate_crm(args.train_leads, months=15, seed=11), train)
        started = time.perf_counter()
        if training_main(["train", "--leads", str(train / "leads.parquet"), "--events", str(train / "events.parquet"),
                          "--deals", str(train / "deals.parquet")]):
            raise SystemExit("training the benchmark model failed")
        print(f"trained on {args.train_leads:,} synthetic leads in {time.perf_counter() - started:.0f} s", flush=True)
        model = "models:/lead-conversion@champion"
        if args.lightgbm:
            model = _register_lightgbm(train, model)


        crm = generate_crm(args.leads, months=15, seed=12)
        base = scratch / "base"
        base.mkdir()
        for name in ("leads", "events", "deals"):
            # Spark reads microsecond timestamps: both paths read these same files.
            table = getattr(crm, name)
            table = table.assign(**{c: table[c].dt.floor("us") for c in table.columns
                                    if pd.api.types.is_datetime64_any_dtype(table[c])})
            table.to_parquet(base / f"{name}.parquet", index=False, coerce_timestamps="us")
        print(f"scored base: {len(crm.leads):,} leads, {len(crm.events):,} events", flush=True)
        tables = ["--leads", str(base / "leads.parquet"), "--events", str(base / "events.parquet"),
                  "--deals", str(base / "deals.parquet"), "--as-of", str(crm.end), "--model", model]

        started = time.perf_counter()
        spark = spark_session(args.master)
        # Python workers start at the first job: counted here, not in the first route measured.
        spark.range(4, numPartitions=2).mapInPandas(lambda batches: batches, "id long").collect()
        startup = time.perf_counter() - started
        seconds, outputs = {}, {}
        for route, command in (("spark", "spark-score"), ("pandas", "score")):
            for reasons in (False, True):
                out = scratch / f"{route}_{'reasons' if reasons else 'bare'}.parquet"
                extra = ([] if reasons else ["--no-reasons"]) + (["--no-monitoring"] if route == "pandas" else [])
                started = time.perf_counter()
                if serve.main([command, *tables, *extra, "--out", str(out)]):
                    raise SystemExit(f"{command} failed")
                seconds[route, reasons] = time.perf_counter() - started
                outputs[route, reasons] = pd.read_parquet(out).sort_values("lead_id").reset_index(drop=True)

        verdicts = []
        for reasons, tolerance in ((False, 1e-9), (True, 1e-12)):
            ours, reference = outputs["spark", reasons], outputs["pandas", reasons]
            same_leads = ours["lead_id"].tolist() == reference["lead_id"].tolist()
            difference = float(np.max(np.abs(ours["probability"] - reference["probability"]))) if same_leads \
                else np.inf
            compared = [column for column in reference.columns if column not in ("probability", "scored_at")]
            same = same_leads and all(ours[c].tolist() == reference[c].tolist() for c in compared)
            verdicts.append(difference <= tolerance and same)
            print(f"\n{len(reference):,} open leads, end to end from Parquet to Parquet, "
                  f"{'with sub-scores and reasons' if reasons else 'no reasons'}:")
            print(f"  pandas (serve.py score)               {seconds['pandas', reasons]:7.1f} s")
            print(f"  Spark {args.master} (serve.py spark-score)  {seconds['spark', reasons]:7.1f} s  "
                  f"({seconds['spark', reasons] / seconds['pandas', reasons]:.1f}x pandas)")
            print(f"  largest probability difference {difference:.1e}; "
                  f"{', '.join(c for c in compared if c != 'lead_id')} {'equal' if same else 'DIFFER'}")
        print(f"\nSpark start-up {startup:.1f} s more; reasons cost pandas "
              f"{seconds['pandas', True] - seconds['pandas', False]:.1f} s, Spark "
              f"{seconds['spark', True] - seconds['spark', False]:.1f} s")
        return 0 if all(verdicts) else 1


def _register_lightgbm(train: Path, champion_uri: str) -> str:
    """A LightGBM bundle with the champion's spec and thresholds, fitted on the training CRM; its model URI."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    from crm.readers import load_crm
    from features.build import build_features
    from features.snapshots import as_of_schedule, build_snapshots
    from models.estimators import make_lightgbm
    from training.pipeline import TrainingResult
    from registry.loading import load_bundle
    from registry.runs import log_training_run

    started = time.perf_counter()
    champion, _ = load_bundle(champion_uri)
    leads, events, deals = load_crm(train / "leads.parquet", train / "events.parquet", train / "deals.parquet")
    end = max(leads["created_at"].max(), deals["closed_at"].max())
    snapshots = build_snapshots(leads, deals, horizon_days=90, data_end=end, as_of_dates=as_of_schedule(
        leads["created_at"].min() + pd.Timedelta(days=30), end - pd.Timedelta(days=90), every_days=15))
    features = build_features(snapshots, leads, events, champion.spec)
    labels = snapshots["label"].to_numpy()
    half = np.arange(len(features)) % 2 == 0
    fitted = make_lightgbm(champion.spec).fit(features[half], labels[half])
    calibrated = CalibratedClassifierCV(FrozenEstimator(fitted), method="sigmoid", ensemble=False).fit(
        features[~half], labels[~half])
    bundle = type(champion)(spec=champion.spec, model=calibrated, thresholds=champion.thresholds,
                            metadata=champion.metadata, reference=champion.reference)
    log_training_run(TrainingResult(bundle=bundle, params={"model": "lightgbm"}, metrics={}, tables={}, test=None),
                     model_name="bench-lightgbm")
    print(f"LightGBM model (600 trees of 7 leaves) fitted and registered in {time.perf_counter() - started:.0f} s",
          flush=True)
    return "models:/bench-lightgbm@champion"


if __name__ == "__main__":
    sys.exit(main())
