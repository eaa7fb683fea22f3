"""``make bench``: time and peak memory of each stage on 1,000,000 leads and ~20,000,000 events.

Each stage runs in its own Python process so its peak memory is its own. Absolute timings drift
on a shared machine, so every figure is also printed as a ratio to a baseline measured in the
same run:

- the feature builder (reading the leads, fit and engagement features of every lead) against
  DuckDB merely reading every column of the events Parquet (target: at most 2.5x), and against
  a plain DuckDB aggregation query over the same file;
- training on a 5,000-lead CRM quiet, then beside two busy processes this script starts and
  stops itself (target: at most 2x the quiet time);
- batch scoring without reasons of a 100,000-lead and a 1,000,000-lead base, streamed in
  chunks of the same size (``--chunk-size``, open leads per scored chunk, so the smaller base
  has several chunks too): peak memory of each (target: the million at most 10 % above the
  100,000), with the open leads and events of each chunk, so equal work per chunk is visible;
- batch scoring of the million with sub-scores and reasons, each stage, against the model's
  bare prediction on the same rows (targets: at most 30 s and 3 GB with reasons, 15 s without).

    python benchmarks/bench.py [--leads 1000000] [--small-leads 100000] [--data bench_data] [--repeats 3]
                               [--parts features,training,scoring,contributions] [--chunk-size 40000]
"""

from __future__ import annotations

import argparse
import json
import os
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
    parser.add_argument("--small-leads", type=int, default=100_000, help="the smaller lead base for memory")
    parser.add_argument("--train-leads", type=int, default=5_000, help="leads of the quiet/busy training")
    parser.add_argument("--model-leads", type=int, default=20_000, help="leads the scoring model is trained on")
    parser.add_argument("--repeats", type=int, default=3, help="alternating builder/reference pairs")
    parser.add_argument("--parts", default="features,training,scoring,contributions",
                        help="which comparisons to run (default: %(default)s)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--explain", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--chunk-size", type=int, default=40_000,
                        help="leads per chunk of both memory runs (default: %(default)s); the timed runs use "
                             "serve.py's default, 100,000")
    args = parser.parse_args(argv)
    from models.threads import sleep_while_waiting

    sleep_while_waiting()  # every stage process inherits it, as the command lines set it for themselves
    if args.stage:
        result = STAGES[args.stage](args)
        result.setdefault("peak_memory_gb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2)
        print(json.dumps(result))
        return 0

    root = Path(args.data)
    big, small = root / str(args.leads), root / str(args.small_leads)
    print(f"benchmark: {args.leads:,} and {args.small_leads:,} leads, data in {root}", flush=True)
    for leads, folder in ((args.leads, big), (args.small_leads, small)):
        generated = _run_stage("generate", args, leads=leads, data=folder)
        print(f"generate   {generated['seconds']:7.1f} s  peak {generated['peak_memory_gb']:.2f} GB  "
              f"({generated['events']:,} events, {generated['leads']:,} leads{generated.get('note', '')})",
              flush=True)
    args.data = str(big)
    parts = set(args.parts.split(","))
    pairs = []
    reads = []
    for repeat in range(args.repeats if "features" in parts else 0):
        built = _run_stage("features", args)
        read = _run_stage("read", args)
        reference = _run_stage("reference", args)
        pairs.append((built, reference))
        reads.append(read)
        print(f"features   {built['seconds']:7.1f} s  peak {built['peak_memory_gb']:.2f} GB  CPU "
              f"{built['cpu_seconds']:.1f} s  (engagement {built['engagement_seconds']:.1f} s, {built['rows']:,} "
              f"snapshots x {built['columns']} features)", flush=True)
        print(f"read       {read['seconds']:7.1f} s  peak {read['peak_memory_gb']:.2f} GB  CPU {read['cpu_seconds']:.1f} s"
              f"  (DuckDB reading every column of the events Parquet, {read['rows']:,} rows; pyarrow "
              f"{read['pyarrow_seconds']:.1f} s)  -> features / read {built['seconds'] / read['seconds']:.2f}x",
              flush=True)
        print(f"reference  {reference['seconds']:7.1f} s  peak {reference['peak_memory_gb']:.2f} GB  "
              f"(DuckDB GROUP BY, {reference['rows']:,} result rows)  -> ratio "
              f"{built['seconds'] / reference['seconds']:.2f}x", flush=True)
    ratios = [built["seconds"] / reference["seconds"] for built, reference in pairs]
    if ratios:
        over_read = sorted(built["seconds"] / read["seconds"] for (built, _), read in zip(pairs, reads))
        print(f"\nfeatures / reading the events Parquet (DuckDB): {', '.join(f'{r:.2f}x' for r in over_read)} "
              f"(min {over_read[0]:.2f}x, median {over_read[len(over_read) // 2]:.2f}x; target <= 2.5x)")
        print(f"feature builder / DuckDB reference: {', '.join(f'{r:.2f}x' for r in ratios)} "
              f"(median {sorted(ratios)[len(ratios) // 2]:.2f}x; target <= 1.5x); peak memory of features "
              f"{max(b['peak_memory_gb'] for b, _ in pairs):.2f} GB (target < 4 GB)", flush=True)

    if "training" in parts:
        _training(args)
    if "scoring" in parts:
        _scoring(args, small, big)
    if "contributions" in parts:
        exact = _run_stage("contributions", args, data=small)
        print(f"\nLightGBM contributions on {exact['rows']:,} open leads ({exact['trees']} trees): pred_contrib "
              f"{exact['pred_contrib_seconds']:.2f} s, lookup tables {exact['tables_seconds']:.2f} s (+ "
              f"{exact['build_seconds']:.2f} s once to build them) -> {exact['pred_contrib_seconds'] / exact['tables_seconds']:.1f}x "
              f"faster; raw prediction {exact['raw_seconds']:.2f} s; largest difference {exact['max_difference']:.1e}")
    return 0


def _training(args) -> None:
    print(f"\ntraining on {args.train_leads:,} synthetic leads, quiet and beside two busy processes", flush=True)
    quiet = _run_stage("train", args)
    with _busy_processes(2):
        busy = _run_stage("train", args)
    print(f"train quiet          {quiet['seconds']:7.1f} s  ({quiet['threads']} LightGBM threads, "
          f"OMP_WAIT_POLICY={quiet['wait_policy']})", flush=True)
    print(f"train beside 2 busy  {busy['seconds']:7.1f} s  -> {busy['seconds'] / quiet['seconds']:.2f}x quiet "
          f"(target <= 2x)", flush=True)


def _scoring(args, small: Path, big: Path) -> None:
    model = _run_stage("model", args)
    print(f"\nscoring model: trained on {args.model_leads:,} leads in {model['seconds']:.0f} s ({model['model']})",
          flush=True)
    memory_small = _run_stage("score", args, data=small, chunk_size=args.chunk_size)
    memory_big = _run_stage("score", args, data=big, chunk_size=args.chunk_size)
    plain_big = _run_stage("score", args, data=big)
    explained = _run_stage("score", args, data=big, explain=True)
    for label, run in ((f"{args.small_leads:,} leads, no reasons", memory_small),
                       (f"{args.leads:,} leads, no reasons", memory_big),
                       (f"{args.leads:,} leads, no reasons", plain_big),
                       (f"{args.leads:,} leads, with reasons", explained)):
        print(f"score {label:<28}{run['seconds']:7.1f} s  peak {run['peak_memory_gb']:.2f} GB  "
              f"CPU {run['cpu_seconds']:.1f} s ({run['rows']:,} open leads in {len(run['chunks'])} chunks of "
              f"{run['chunk_size']:,}{'; ' + _stages(run) if run['timings'] else ''})", flush=True)
    print(f"\nwork and memory per chunk of {args.chunk_size:,} open leads (a chunk's open leads and the events "
          "joined to them; RSS when the chunk is written; the last chunk has the rest):")
    for label, run in ((f"{args.small_leads:,} leads", memory_small), (f"{args.leads:,} leads", memory_big)):
        full = run["chunks"][:-1] or run["chunks"]
        print(f"  {label:<16}{len(run['chunks'])} chunks; events per full chunk "
              f"{min(c['events'] for c in full):,}-{max(c['events'] for c in full):,}; RSS after the first "
              f"{run['chunks'][0]['rss_gb']:.2f} GB, after the last {run['chunks'][-1]['rss_gb']:.2f} GB, "
              f"peak {run['peak_memory_gb']:.2f} GB")
        print("    " + ", ".join(f"{c['leads']:,}/{c['events']:,}" for c in run["chunks"]))
    growth = memory_big["peak_memory_gb"] / memory_small["peak_memory_gb"]
    print(f"\npeak memory scoring without reasons, chunks of {args.chunk_size:,}: {memory_small['peak_memory_gb']:.2f} "
          f"GB at {args.small_leads:,} leads, {memory_big['peak_memory_gb']:.2f} GB at {args.leads:,} -> "
          f"{growth:.2f}x (target <= 1.10x)")
    print(f"{args.leads:,} leads end to end: without reasons {plain_big['seconds']:.1f} s (target <= 15 s), "
          f"with reasons {explained['seconds']:.1f} s (target <= 30 s) at {explained['peak_memory_gb']:.2f} GB "
          f"(target <= 3 GB)")
    bare = explained["timings"]["bare_prediction"]
    print("with reasons, each stage / the model's bare prediction on the same rows "
          f"({bare:.1f} s): " + ", ".join(f"{stage} {seconds / bare:.2f}x" for stage, seconds
                                         in explained["timings"].items() if stage != "bare_prediction"))


def _generate(args) -> dict:
    from crm.synthetic import generate_crm, write_crm

    data = Path(args.data)
    done = data / "bench_end.json"
    if done.exists() and json.loads(done.read_text()).get("leads") == args.leads:
        import pyarrow.parquet as pq

        events = pq.ParquetFile(data / "events.parquet").metadata.num_rows
        return {"seconds": 0.0, "leads": args.leads, "events": events, "end": json.loads(done.read_text())["end"],
                "note": ", generated before: reused"}
    started = time.perf_counter()
    crm = generate_crm(args.leads, seed=7)
    write_crm(crm, data)
    return {"seconds": time.perf_counter() - started, "leads": len(crm.leads), "events": len(crm.events),
            "end": str(crm.end)}


def _train(args) -> dict:
    """Training as ``python -m training train`` does it, on a small synthetic CRM, timed."""
    from crm.synthetic import generate_crm
    from models.threads import resolve_threads
    from training.pipeline import train_model

    crm = generate_crm(args.train_leads, seed=1)
    started = time.perf_counter()
    train_model(crm.leads, crm.events, crm.deals, data_end=crm.end, log=lambda line: None)
    return {"seconds": time.perf_counter() - started, "threads": resolve_threads(),
            "wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset")}


def _model(args) -> dict:
    """The model the scoring stages load: trained once on 20,000 leads, saved beside the data."""
    from crm.synthetic import generate_crm
    from training.pipeline import train_model

    started = time.perf_counter()
    small = generate_crm(args.model_leads, seed=0)
    result = train_model(small.leads, small.events, small.deals, data_end=small.end, log=lambda line: None)
    result.bundle.save(Path(args.data).parent / "bench_model.joblib")
    return {"seconds": time.perf_counter() - started, "model": result.params["model"]}


def _features(args) -> dict:
    from features.build import build_features
    from features.engagement import build_engagement_features
    from features.spec import FeatureSpec

    data = Path(args.data)
    spec = FeatureSpec()
    import features.event_pass  # noqa: F401 (numba's import, about 0.5 s, is a process's fixed cost, not the data's)

    started, cpu = time.perf_counter(), time.process_time()
    leads = pd.read_parquet(data / "leads.parquet")
    snapshots = _all_leads_at_end(leads, data)
    features = build_features(snapshots, leads, data / "events.parquet", spec)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    rows, columns = features.shape
    del features
    # The engagement part alone, for the record (it is most of the work).
    started = time.perf_counter()
    build_engagement_features(snapshots, data / "events.parquet", spec)
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "engagement_seconds": time.perf_counter() - started,
            "rows": rows, "columns": columns}


def _read(args) -> dict:
    """The floor: DuckDB reading every column of the events Parquet into Arrow (and pyarrow, for the record)."""
    import duckdb
    import pyarrow.parquet as pq

    events = Path(args.data) / "events.parquet"
    started, cpu = time.perf_counter(), time.process_time()
    with duckdb.connect() as con:
        rows = con.sql(f"SELECT * FROM read_parquet('{events}')").to_arrow_table().num_rows
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    pq.read_table(events)
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "rows": rows,
            "pyarrow_seconds": time.perf_counter() - started}


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
    """``serve.py score`` on the contract's files: leads streamed in chunks, stage timings kept.

    Each chunk's RSS is taken as it is written; afterwards (the peak already taken) the open
    leads and events of each chunk are counted from the output, independently of the scorer.
    """
    import tempfile

    from crm.sources import stream_crm
    from scoring.batch import score_lead_base
    from models.bundle import ModelBundle
    from models.threads import limit_malloc_arenas

    limit_malloc_arenas()  # as serve.py score does (and Arrow's pool: see _run_stage)
    data = Path(args.data)
    bundle = ModelBundle.load(data.parent / "bench_model.joblib")
    end = pd.Timestamp(json.loads((data / "bench_end.json").read_text())["end"])
    chunk_size = args.chunk_size or 100_000  # serve.py score's default
    # The memory runs (an explicit chunk size) leave out the stage timings: those add the model's
    # bare prediction of every chunk, for comparison, and so an extra prediction's memory.
    timings, rss = ({} if not args.chunk_size else None), []
    started, cpu = time.perf_counter(), time.process_time()
    leads, events, deals = stream_crm(data / "leads.parquet", data / "events.parquet", data / "deals.parquet",
                                      now=end, chunk_rows=chunk_size)
    if timings is not None:
        timings["validate"] = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "scores.parquet"
        counts = score_lead_base(bundle, leads, events, as_of=end, deals=deals, out=out, chunk_size=chunk_size,
                                 model_version="bench", explain=args.explain, timings=timings,
                                 progress=lambda line: rss.append(_rss_gb()))
        # The bare prediction is measured beside the run, not part of it.
        seconds = time.perf_counter() - started - (timings or {}).get("bare_prediction", 0.0)
        # CPU seconds of every thread of the process (a shared machine stretches wall time, not this),
        # the bare-prediction comparison included.
        cpu_seconds = time.process_time() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
        work = _chunk_work(out, data / "events.parquet", end, chunk_size)
    chunks = [{"leads": leads, "events": events, "rss_gb": gb} for (leads, events), gb in zip(work, rss)]
    return {"seconds": seconds, "rows": int(counts.sum()), "timings": timings or {}, "cpu_seconds": cpu_seconds,
            "chunk_size": chunk_size, "chunks": chunks, "peak_memory_gb": peak}


def _rss_gb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024 ** 3


def _chunk_work(scores: Path, events: Path, as_of, chunk_size: int) -> list[tuple[int, int]]:
    """(open leads, events before ``as_of`` of those leads) of each scored chunk, from the output's row order."""
    import duckdb

    with duckdb.connect() as con:
        return con.execute(f"""
            WITH scored AS (SELECT lead_id, (row_number() OVER () - 1) // {int(chunk_size)} AS chunk
                            FROM read_parquet('{scores}')),
                 per_lead AS (SELECT lead_id, count(*) AS events FROM read_parquet('{events}')
                              WHERE occurred_at < TIMESTAMP '{as_of}' GROUP BY lead_id)
            SELECT count(*), coalesce(sum(per_lead.events), 0)::BIGINT
            FROM scored LEFT JOIN per_lead USING (lead_id) GROUP BY chunk ORDER BY chunk
        """).fetchall()


def _contributions(args) -> dict:
    """pred_contrib against the lookup tables on the same rows, same process, one thread each."""
    from features.build import build_features
    from features.snapshots import open_leads
    from models.bundle import ModelBundle
    from models.estimators import inner_pipeline
    from models.treeshap import TreeTables

    data = Path(args.data)
    bundle = ModelBundle.load(data.parent / "bench_model.joblib")
    end = pd.Timestamp(json.loads((data / "bench_end.json").read_text())["end"])
    leads = pd.read_parquet(data / "leads.parquet")
    snapshots = open_leads(leads, pd.read_parquet(data / "deals.parquet"), end).head(20_000)
    features = build_features(snapshots, leads, data / "events.parquet", bundle.spec)
    pipeline = inner_pipeline(bundle.model)
    codes, booster = pipeline[0].to_codes(bundle.conform(features)), pipeline[-1].booster_
    started = time.perf_counter()
    tables = TreeTables(booster)
    built = time.perf_counter()
    ours = tables.contributions(codes)
    ours_done = time.perf_counter()
    reference = booster.predict(codes, pred_contrib=True, num_threads=1)
    reference_done = time.perf_counter()
    booster.predict(codes, raw_score=True, num_threads=1)
    return {"rows": len(codes), "trees": booster.num_trees(), "build_seconds": built - started,
            "tables_seconds": ours_done - built, "pred_contrib_seconds": reference_done - ours_done,
            "raw_seconds": time.perf_counter() - reference_done,
            "max_difference": float(abs(ours - reference).max())}


def _stages(run: dict) -> str:
    return ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in run["timings"].items())


class _busy_processes:
    """``count`` processes spinning on a core each, for at most ``limit`` seconds, stopped on exit."""

    def __init__(self, count: int, limit: float = 1_800.0):
        self.count, self.limit = count, limit

    def __enter__(self):
        code = f"import time\nend = time.monotonic() + {self.limit}\nwhile time.monotonic() < end:\n    pass\n"
        self.processes = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(self.count)]
        return self

    def __exit__(self, *exc):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=10)
        return False


def _all_leads_at_end(leads: pd.DataFrame, data: Path) -> pd.DataFrame:
    end = pd.Timestamp(json.loads((data / "bench_end.json").read_text())["end"])
    return pd.DataFrame({"lead_id": leads["lead_id"].to_numpy(), "as_of": end}).astype({"as_of": "datetime64[ns]"})


def _run_stage(stage: str, args, *, leads=None, data=None, explain=False, chunk_size=None) -> dict:
    leads = args.leads if leads is None else leads
    data = str(data or args.data)
    command = [sys.executable, __file__, "--stage", stage, "--leads", str(leads), "--data", data,
               "--train-leads", str(args.train_leads),
               "--model-leads", str(args.model_leads)] + (["--explain"] if explain else []) + \
        (["--chunk-size", str(chunk_size)] if chunk_size else ["--chunk-size", "0"])
    # Arrow's pool is read when pyarrow loads, which this script's pandas import does: set as serve.py sets it.
    env = {"ARROW_DEFAULT_MEMORY_POOL": "system", **os.environ}
    completed = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, env=env)
    if completed.returncode:
        sys.stderr.write(completed.stderr)
        raise SystemExit(f"benchmark stage {stage!r} failed")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    if stage == "generate":
        Path(data, "bench_end.json").write_text(json.dumps({"end": result["end"], "leads": result["leads"]}))
    return result


STAGES = {"generate": _generate, "features": _features, "read": _read, "reference": _reference, "train": _train, "model": _model,
          "score": _score, "contributions": _contributions}

if __name__ == "__main__":
    sys.exit(main())
