"""``make bench``'s batch-scoring stages: the model, scoring runs (memory, time, CPU) and contributions.

Each stage function runs in its own process (``bench.py --stage NAME``) and returns a dict;
``report_scoring`` and ``report_contributions`` run the stages through ``bench.py``'s runner and
print each figure beside its baseline measured in the same run:

- with reasons, the CPU seconds of scoring the million (target: at most 15 s) against the model's
  bare prediction on the same rows (its CPU taken out of the run's), and against the same run with
  the event file read for each chunk, as before ``features.lead_events`` (peak memory: as that);
- without reasons, peak memory of a 100,000-lead and a 1,000,000-lead base in chunks of the same size.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import pandas as pd


def report_scoring(run_stage, args, small: Path, big: Path) -> None:
    model = run_stage("model", args)
    print(f"\nscoring model: trained on {args.model_leads:,} leads in {model['seconds']:.0f} s ({model['model']})",
          flush=True)
    memory_small = run_stage("score", args, data=small, chunk_size=args.chunk_size)
    memory_big = run_stage("score", args, data=big, chunk_size=args.chunk_size)
    plain_big = run_stage("score", args, data=big)
    explained = run_stage("score", args, data=big, explain=True)
    per_chunk = run_stage("score", args, data=big, explain=True, options=["--events-per-chunk"])
    for label, run in ((f"{args.small_leads:,} leads, no reasons", memory_small),
                       (f"{args.leads:,} leads, no reasons", memory_big),
                       (f"{args.leads:,} leads, no reasons", plain_big),
                       (f"{args.leads:,} leads, with reasons", explained),
                       ("  same, events read per chunk", per_chunk)):
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
    print(f"{args.leads:,} leads with reasons, CPU: {explained['cpu_seconds']:.1f} s (target <= 15 s); the model's bare "
          f"prediction on the same rows {explained['bare_prediction_cpu']:.1f} s CPU -> "
          f"{explained['cpu_seconds'] / explained['bare_prediction_cpu']:.2f}x; events read per chunk "
          f"{per_chunk['cpu_seconds']:.1f} s -> {explained['cpu_seconds'] / per_chunk['cpu_seconds']:.2f}x; peak "
          f"{explained['peak_memory_gb']:.2f} GB against {per_chunk['peak_memory_gb']:.2f} GB read per chunk "
          f"(target: as that)")
    bare = explained["timings"]["bare_prediction"]
    print("with reasons, each stage / the model's bare prediction on the same rows "
          f"({bare:.1f} s): " + ", ".join(f"{stage} {seconds / bare:.2f}x" for stage, seconds
                                         in explained["timings"].items() if stage != "bare_prediction"))


def report_contributions(run_stage, args, small: Path) -> None:
    exact = run_stage("contributions", args, data=small)
    print(f"\nLightGBM contributions on {exact['rows']:,} open leads ({exact['trees']} trees): pred_contrib "
          f"{exact['pred_contrib_seconds']:.2f} s, lookup tables {exact['tables_seconds']:.2f} s (+ "
          f"{exact['build_seconds']:.2f} s once to build them) -> {exact['pred_contrib_seconds'] / exact['tables_seconds']:.1f}x "
          f"faster; raw prediction {exact['raw_seconds']:.2f} s; largest difference {exact['max_difference']:.1e}")


def model_stage(args) -> dict:
    """The model the scoring stages load: trained once on 20,000 leads, saved beside the data."""
    from crm.synthetic import generate_crm
    from training.pipeline import train_model

    started = time.perf_counter()
    small = generate_crm(args.model_leads, seed=0)
    result = train_model(small.leads, small.events, small.deals, data_end=small.end, log=lambda line: None)
    result.bundle.save(Path(args.data).parent / "bench_model.joblib")
    return {"seconds": time.perf_counter() - started, "model": result.params["model"]}


def score_stage(args) -> dict:
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
    if args.events_per_chunk:  # the lead chunks without their ids up front: each chunk reads the event file
        leads = iter(leads)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "scores.parquet"
        counts = score_lead_base(bundle, leads, events, as_of=end, deals=deals, out=out, chunk_size=chunk_size,
                                 model_version="bench", explain=args.explain, timings=timings,
                                 progress=lambda line: rss.append(_rss_gb()))
        # The bare prediction is measured beside the run, not part of it: its seconds and CPU taken out.
        seconds = time.perf_counter() - started - (timings or {}).get("bare_prediction", 0.0)
        bare_cpu = (timings or {}).pop("bare_prediction_cpu", 0.0)
        # CPU seconds of every thread of the process (a shared machine stretches wall time, not this).
        cpu_seconds = time.process_time() - cpu - bare_cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
        work = _chunk_work(out, data / "events.parquet", end, chunk_size)
    chunks = [{"leads": leads, "events": events, "rss_gb": gb} for (leads, events), gb in zip(work, rss)]
    return {"seconds": seconds, "rows": int(counts.sum()), "timings": timings or {}, "cpu_seconds": cpu_seconds,
            "bare_prediction_cpu": bare_cpu, "chunk_size": chunk_size, "chunks": chunks, "peak_memory_gb": peak}


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


def contributions_stage(args) -> dict:
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


