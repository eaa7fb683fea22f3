"""``make bench-spark``: one lead base scored by ``serve.py score`` (pandas) and ``serve.py spark-score`` on several masters.

Every route reads the same Parquet files and writes Parquet, end to end, in the same run, without and
with reasons (sub-scores and reasons, the default of both): pandas first and last (the machine's load
moves; their mean is the baseline), Spark on ``local[1]``, ``local[2]`` and a standalone cluster
started here (a master, then one 1-core worker, then a second: ``benchmarks/spark_cluster.py``). The
script checks that the probabilities agree (to 1e-9 through the model UDF, 1e-12 with reasons), that
tiers, sub-scores and reason texts are equal, and prints each time beside pandas, with the speed-ups of
two cores over one. Spark's start-up (JVM, session, executors) is timed apart.

    python benchmarks/bench_spark.py [--leads 100000] [--masters local[1],local[2],standalone]
        [--routes bare,reasons] [--lightgbm] [--stages] [--data FOLDER [--prepare-only]]

``--data FOLDER --prepare-only`` trains the model and writes the base once (no timing: run it outside
the bench lock); ``--data FOLDER`` then times the routes on them. ``--stages`` prints each Spark
route's stages from its event log (``benchmarks/spark_stages.py``).

``--lightgbm`` scores with a LightGBM model (600 trees of 7 leaves, the production candidate) fitted
on the training snapshots, whatever training chose: its reasons need TreeSHAP, the costly route.
"""

from __future__ import annotations

import argparse
import os
import re
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
    parser.add_argument("--masters", default="local[1],local[2],standalone",
                        help="Spark masters, comma-separated; standalone: a master and two 1-core workers on this "
                             "machine, measured with one worker, then two")
    parser.add_argument("--routes", default="bare,reasons",
                        help="bare (no reasons: the model as a Spark UDF) and/or reasons (the default of both)")
    parser.add_argument("--lightgbm", action="store_true", help="score with a LightGBM model (TreeSHAP reasons)")
    parser.add_argument("--data", help="folder keeping the model and scored base between runs (made if new)")
    parser.add_argument("--prepare-only", action="store_true",
                        help="train and write the base into --data, time nothing (run it outside the bench lock)")
    parser.add_argument("--stages", action="store_true",
                        help="print each Spark route's stages (wall, run and CPU seconds, rows) from its event log")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(PROJECT))
    import serve
    from spark_cluster import StandaloneCluster
    from spark_stages import format_stages, stage_table
    from scoring.spark import spark_session

    with tempfile.TemporaryDirectory(prefix="bench-spark-") as scratch:
        scratch = Path(scratch)
        data = Path(args.data).resolve() if args.data else scratch
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{data / 'mlflow.db'}"
        os.chdir(data)  # MLflow keeps the model's artifacts under ./mlruns, beside its store
        model, base, end = _prepared(data, args) if args.data else (None, None, None)
        if model is None:
            model, base, end = _prepare(data, args)
        if args.prepare_only:
            print(f"prepared in {data}: time a run with --data {data}")
            return 0
        print(f"scored base: {args.leads:,} leads ({base})", flush=True)
        tables = ["--leads", str(base / "leads.parquet"), "--events", str(base / "events.parquet"),
                  "--deals", str(base / "deals.parquet"), "--as-of", str(end), "--model", model]

        routes = [reasons == "reasons" for reasons in args.routes.split(",")]
        print(f"load average {_load()} at the start", flush=True)

        seconds, outputs, startups = {}, {}, {}

        def score(route, command, master=None):
            for reasons in routes:
                # Hadoop reads [ ] in a path as a pattern: the folder is named by letters and digits only.
                out = scratch / f"{re.sub('[^a-z0-9]+', '_', route)}_{'reasons' if reasons else 'bare'}.parquet"
                extra = ([] if reasons else ["--no-reasons"]) + (["--no-monitoring"] if master is None else
                                                                 ["--master", master])
                started = time.perf_counter()
                if serve.main([command, *tables, *extra, "--out", str(out)]):
                    raise SystemExit(f"{command} ({route}) failed")
                seconds.setdefault((route, reasons), []).append(time.perf_counter() - started)
                print(f"{route}, {'reasons' if reasons else 'no reasons'}: {seconds[route, reasons][-1]:.1f} s "
                      f"(load average {_load()})", flush=True)
                outputs[route, reasons] = pd.read_parquet(out).sort_values("lead_id").reset_index(drop=True)

        def on_spark(route, master):
            from pyspark.sql import SparkSession

            started = time.perf_counter()
            event_log = scratch / "event-logs" / re.sub("[^a-z0-9]+", "_", route)
            if args.stages:
                event_log.mkdir(parents=True)
            spark = spark_session(master, config={"spark.eventLog.enabled": "true", "spark.eventLog.compress": "false",
                                                  "spark.eventLog.dir": event_log.as_uri()} if args.stages else None)
            # Executors and their Python workers start at the first job: counted here, not in the route measured.
            spark.range(4, numPartitions=2).mapInPandas(lambda batches: batches, "id long").collect()
            startups[route] = time.perf_counter() - started
            try:
                score(route, "spark-score", master)
            finally:
                spark.stop()
                SparkSession._instantiatedSession = None  # the next route starts its own session and master
            if args.stages:  # the event log is complete once the session stops
                print(f"  stages of {route} (both routes' jobs, in order):\n{format_stages(stage_table(event_log))}",
                      flush=True)

        score("pandas", "score")  # pandas before and after the Spark routes: the machine's load moves
        spark_routes = []
        for master in args.masters.split(","):
            if master != "standalone":
                spark_routes.append(master)
                on_spark(master, master)
                continue
            cluster = StandaloneCluster(scratch / "cluster").start_master()
            try:
                for workers in (1, 2):
                    cluster.add_worker()
                    route = f"standalone, {workers} worker{'s' if workers > 1 else ''}"
                    spark_routes.append(route)
                    on_spark(route, cluster.url)
            finally:
                cluster.stop()
        score("pandas", "score")

        verdicts = []
        for reasons in routes:
            tolerance = 1e-12 if reasons else 1e-9
            reference = outputs["pandas", reasons]
            pandas_seconds = float(np.mean(seconds["pandas", reasons]))
            print(f"\n{len(reference):,} open leads, end to end from Parquet to Parquet, "
                  f"{'with sub-scores and reasons' if reasons else 'no reasons'}:")
            print(f"  {'pandas (serve.py score)':38s} {pandas_seconds:7.1f} s  "
                  f"(mean of {', '.join(f'{value:.1f}' for value in seconds['pandas', reasons])})")
            for route in spark_routes:
                ours = outputs[route, reasons]
                same_leads = ours["lead_id"].tolist() == reference["lead_id"].tolist()
                difference = float(np.max(np.abs(ours["probability"] - reference["probability"]))) if same_leads \
                    else np.inf
                compared = [column for column in reference.columns if column not in ("probability", "scored_at")]
                same = same_leads and all(ours[c].tolist() == reference[c].tolist() for c in compared)
                verdicts.append(difference <= tolerance and same)
                spent = seconds[route, reasons][0]
                print(f"  {'Spark ' + route:38s} {spent:7.1f} s  ({spent / pandas_seconds:.2f}x pandas; "
                      f"largest probability difference {difference:.1e}, other columns {'equal' if same else 'DIFFER'})")
            for faster, slower in (("local[2]", "local[1]"), ("standalone, 2 workers", "standalone, 1 worker")):
                if (faster, reasons) in seconds and (slower, reasons) in seconds:
                    print(f"  {faster} against {slower}: "
                          f"{seconds[slower, reasons][0] / seconds[faster, reasons][0]:.2f}x as fast")
        print("\nSpark start-up (session, executors, Python workers), not counted above: "
              + ", ".join(f"{route} {value:.1f} s" for route, value in startups.items()))
        print(f"load average {_load()} at the end")
        return 0 if all(verdicts) else 1


def _prepare(data: Path, args) -> tuple[str, Path, pd.Timestamp]:
    """Train the benchmark model and write the scored base under ``data``; (model URI, base folder, its end)."""
    import json

    from crm.synthetic import generate_crm, write_crm
    from train import main as training_main

    train = data / "train"
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
    base = data / "base"
    base.mkdir()
    for name in ("leads", "events", "deals"):
        # Spark reads microsecond timestamps: both paths read these same files.
        table = getattr(crm, name)
        table = table.assign(**{c: table[c].dt.floor("us") for c in table.columns
                                if pd.api.types.is_datetime64_any_dtype(table[c])})
        table.to_parquet(base / f"{name}.parquet", index=False, coerce_timestamps="us")
    print(f"scored base: {len(crm.leads):,} leads, {len(crm.events):,} events", flush=True)
    (data / "prepared.json").write_text(json.dumps({"model": model, "end": str(crm.end), "leads": args.leads,
                                                    "lightgbm": args.lightgbm}))
    return model, base, crm.end


def _prepared(data: Path, args):
    """What ``--prepare-only`` left in ``data`` for the same ``--leads`` and ``--lightgbm``, else Nones."""
    import json

    marker = data / "prepared.json"
    if not marker.exists():
        data.mkdir(parents=True, exist_ok=True)
        return None, None, None
    prepared = json.loads(marker.read_text())
    if (prepared["leads"], prepared["lightgbm"]) != (args.leads, args.lightgbm):
        raise SystemExit(f"{data} holds a base of {prepared['leads']:,} leads (lightgbm {prepared['lightgbm']}); "
                         "give another --data folder.")
    return prepared["model"], data / "base", pd.Timestamp(prepared["end"])


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


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
