"""``make bench-spark``: the same lead base scored by ``serve.py score`` (pandas) and ``serve.py spark-score`` (local[2]).

Both read the same Parquet files and write Parquet, end to end, in the same run; the script checks
that the probabilities agree (to 1e-9) and the tiers are equal, and prints both times and their
ratio. Spark's start-up (JVM, session) is timed apart.

    python benchmarks/bench_spark.py [--leads 100000] [--master local[2]]
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
    args = parser.parse_args(argv)
    sys.path.insert(0, str(PROJECT))
    import serve
    from crm.synthetic import generate_crm, write_crm
    from models.spark import spark_session
    from training.cli import main as training_main

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
                  "--deals", str(base / "deals.parquet"), "--as-of", str(crm.end)]

        started = time.perf_counter()
        spark_session(args.master)
        startup = time.perf_counter() - started
        started = time.perf_counter()
        if serve.main(["spark-score", *tables, "--out", str(scratch / "spark_scores.parquet")]):
            raise SystemExit("spark-score failed")
        on_spark = time.perf_counter() - started
        started = time.perf_counter()
        if serve.main(["score", *tables, "--no-reasons", "--out", str(scratch / "pandas_scores.parquet")]):
            raise SystemExit("score failed")
        on_pandas = time.perf_counter() - started

        ours = pd.read_parquet(scratch / "spark_scores.parquet").sort_values("lead_id").reset_index(drop=True)
        reference = pd.read_parquet(scratch / "pandas_scores.parquet").sort_values("lead_id").reset_index(drop=True)
        same_leads = ours["lead_id"].tolist() == reference["lead_id"].tolist()
        difference = float(np.max(np.abs(ours["probability"] - reference["probability"]))) if same_leads else np.inf
        same_tiers = same_leads and ours["tier"].tolist() == reference["tier"].tolist()
        print(f"\n{len(reference):,} open leads, end to end from Parquet to Parquet, no reasons:")
        print(f"  pandas (serve.py score)               {on_pandas:7.1f} s")
        print(f"  Spark {args.master} (serve.py spark-score)  {on_spark:7.1f} s  ({on_spark / on_pandas:.1f}x pandas; "
              f"start-up {startup:.1f} s more)")
        print(f"  largest probability difference {difference:.1e}; tiers {'equal' if same_tiers else 'DIFFER'}")
        return 0 if difference <= 1e-9 and same_tiers else 1


if __name__ == "__main__":
    sys.exit(main())
