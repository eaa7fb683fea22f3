"""``make bench``: time and peak memory of each stage on 1,000,000 leads and ~20,000,000 events.

Each stage runs in its own Python process so its peak memory is its own. The feature builder is
compared with a plain DuckDB aggregation query over the same Parquet file, timed alternately in
the same run, because absolute timings drift on a shared machine.

    python benchmarks/bench.py [--leads 1000000] [--data bench_data] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--data", default=str(PROJECT / "bench_data"))
    parser.add_argument("--repeats", type=int, default=3, help="alternating builder/reference pairs")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        result = STAGES[args.stage](args)
        result["peak_memory_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
        print(json.dumps(result))
        return 0

    print(f"benchmark: {args.leads:,} leads, data in {args.data}", flush=True)
    generated = _run_stage("generate", args)
    print(f"generate   {generated['seconds']:7.1f} s  peak {generated['peak_memory_gb']:.2f} GB  "
          f"({generated['events']:,} events, {generated['leads']:,} leads)", flush=True)
    pairs = []
    for repeat in range(args.repeats):
        built = _run_stage("features", args)
        reference = _run_stage("reference", args)
        pairs.append((built, reference))
        print(f"features   {built['seconds']:7.1f} s  peak {built['peak_memory_gb']:.2f} GB  "
              f"(engagement {built['engagement_seconds']:.1f} s, {built['rows']:,} snapshots x "
              f"{built['columns']} features)", flush=True)
        print(f"reference  {reference['seconds']:7.1f} s  peak {reference['peak_memory_gb']:.2f} GB  "
              f"(DuckDB GROUP BY, {reference['rows']:,} result rows)  -> ratio "
              f"{built['seconds'] / reference['seconds']:.2f}x", flush=True)
    scored = _run_stage("score", args)
    print(f"score      {scored['seconds']:7.1f} s  peak {scored['peak_memory_gb']:.2f} GB  "
          f"({scored['rows']:,} open leads, {scored['rows'] / scored['seconds']:,.0f} leads/s end to end, "
          f"model {scored['model']}; training it on 20,000 leads took {scored['train_seconds']:.0f} s)", flush=True)
    ratios = [built["seconds"] / reference["seconds"] for built, reference in pairs]
    print(f"\nfeature builder / DuckDB reference: {', '.join(f'{r:.2f}x' for r in ratios)} "
          f"(median {sorted(ratios)[len(ratios) // 2]:.2f}x; target <= 1.5x); peak memory of features "
          f"{max(b['peak_memory_gb'] for b, _ in pairs):.2f} GB (target < 4 GB)")
    return 0


def _generate(args) -> dict:
    from crm.synthetic import generate_crm, write_crm

    started = time.perf_counter()
    crm = generate_crm(args.leads, seed=7)
    write_crm(crm, args.data)
    return {"seconds": time.perf_counter() - started, "leads": len(crm.leads), "events": len(crm.events),
            "end": str(crm.end)}


def _features(args) -> dict:
    from features.build import build_features
    from features.engagement import build_engagement_features
    from features.spec import FeatureSpec

    data = Path(args.data)
    spec = FeatureSpec()
    started = time.perf_counter()
    leads = pd.read_parquet(data / "leads.parquet")
    snapshots = _all_leads_at_end(leads, data)
    features = build_features(snapshots, leads, data / "events.parquet", spec)
    seconds = time.perf_counter() - started
    rows, columns = features.shape
    del features
    # The engagement part alone, for the record (it is most of the work).
    started = time.perf_counter()
    build_engagement_features(snapshots, data / "events.parquet", spec)
    return {"seconds": seconds, "engagement_seconds": time.perf_counter() - started,
            "rows": rows, "columns": columns}


def _reference(args) -> dict:
    import duckdb

    from features.engagement import reference_aggregation_sql

    data = Path(args.data)
    started = time.perf_counter()
    leads = pd.read_parquet(data / "leads.parquet", columns=["lead_id"])
    snapshots = _all_leads_at_end(leads, data)
    with duckdb.connect() as con:
        con.register("snapshots", snapshots)
        sql = reference_aggregation_sql(f"read_parquet('{data / 'events.parquet'}')", "snapshots")
        result = con.sql(sql).to_arrow_table()
    return {"seconds": time.perf_counter() - started, "rows": result.num_rows}


def _score(args) -> dict:
    import tempfile

    from crm.readers import load_crm
    from crm.synthetic import generate_crm
    from models.batch import score_lead_base
    from training.pipeline import train_model

    started = time.perf_counter()
    small = generate_crm(20_000, seed=0)
    result = train_model(small.leads, small.events, small.deals, data_end=small.end, log=lambda line: None)
    train_seconds = time.perf_counter() - started

    data = Path(args.data)
    started = time.perf_counter()
    leads, events, deals = load_crm(data / "leads.parquet", data / "events.parquet", data / "deals.parquet")
    end = pd.Timestamp(json.loads((data / "bench_end.json").read_text())["end"])
    with tempfile.TemporaryDirectory() as scratch:
        counts = score_lead_base(result.bundle, leads, events, as_of=end, deals=deals,
                                       out=Path(scratch) / "scores.parquet", model_version="bench")
    return {"seconds": time.perf_counter() - started, "rows": int(counts.sum()), "model": result.params["model"],
            "train_seconds": train_seconds}


def _all_leads_at_end(leads: pd.DataFrame, data: Path) -> pd.DataFrame:
    end = pd.Timestamp(json.loads((data / "bench_end.json").read_text())["end"])
    return pd.DataFrame({"lead_id": leads["lead_id"].to_numpy(), "as_of": end}).astype({"as_of": "datetime64[ns]"})


def _run_stage(stage: str, args) -> dict:
    command = [sys.executable, __file__, "--stage", stage, "--leads", str(args.leads), "--data", args.data]
    completed = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True)
    if completed.returncode:
        sys.stderr.write(completed.stderr)
        raise SystemExit(f"benchmark stage {stage!r} failed")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    if stage == "generate":
        Path(args.data, "bench_end.json").write_text(json.dumps({"end": result["end"]}))
    return result


STAGES = {"generate": _generate, "features": _features, "reference": _reference, "score": _score}

if __name__ == "__main__":
    sys.exit(main())
