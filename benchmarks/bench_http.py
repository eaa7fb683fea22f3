"""``make bench-http``: single-lead latency and requests/s of ``serve.py http`` vs ``mlflow models serve``.

Trains a small model on synthetic data into a temporary MLflow store, starts both servers on
127.0.0.1 with that one model, and sends the same leads to each, one request at a time over one
kept-alive connection (closed loop: requests/s = 1 / mean latency). Our service is measured
twice: with built feature rows (the very payload MLflow gets) and with raw attributes + events
(features built per request). Each run is bounded by ``--requests`` and ``--seconds``.

Beside them, the floor: a bare FastAPI app (``bench_http_bare.py``) predicting one ready row of the
same model under the same uvicorn settings; the server CPU per request of ``serve.py http`` over
it is the issue's figure (target: at most 2x), and ``bench_http_stages.py``'s table says where a
single lead's CPU goes in process, stage by stage.

Then throughput: 16 clients at once (``--clients``), each on its own kept-alive connection,
against ``serve.py http --workers 1`` and ``--workers 2`` started one after the other; it prints
requests/s of each and their ratio (target: at least 1.6x with the second worker). The clients
are connections driven by one lean thread (prepared request bytes): on 2 cores the load
generator's own CPU is taken from the second worker, so it prints that too.

Last, a crowded night (``bench_http_crowd.py``): 64 good clients against ``--workers 2`` for
``--crowd-seconds`` while slow, idle and 1-MB-header clients keep arriving and ``/health`` is probed
every 100 ms; it prints good requests failed, the slowest ``/health`` and the servers' memory.

    python benchmarks/bench_http.py [--requests 2000] [--seconds 20] [--leads 3000] [--clients 16]
                                    [--throughput-requests 8000] [--single-only]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench_http_clients import HOST, LoadClient, measure, measure_alternating, measure_with_bad_requests, post
from bench_http_bare import SETTINGS_VARIABLE
from bench_http_crowd import crowded_run, format_crowded
from bench_http_servers import free_port, http_server, wait_ready
from bench_http_stages import format_stages, stage_table

PROJECT = Path(__file__).resolve().parents[1]
EVENTS_PER_LEAD = 20
#: The issue's goals for one lead with 20 events over loopback.
TARGETS = {"p50_ms": 3.0, "p99_ms": 10.0, "speedup": 5.0, "bare_ratio": 2.0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement (after warm-up)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time cap per measurement")
    parser.add_argument("--leads", type=int, default=3000, help="synthetic leads to train on")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients of the throughput runs")
    parser.add_argument("--throughput-requests", type=int, default=8000,
                        help="requests per throughput run (after warm-up)")
    parser.add_argument("--crowd-seconds", type=float, default=30.0,
                        help="length of the crowded run: 64 good clients with slow, idle and 1-MB-header clients "
                             "against --workers 2")
    parser.add_argument("--lightgbm", action="store_true",
                        help="serve a LightGBM model (600 trees of 7 leaves, TreeSHAP reasons) with the champion's spec, "
                             "as bench_spark.py --lightgbm fits it, instead of whichever candidate training selected")
    parser.add_argument("--single-only", action="store_true",
                        help="only the single-lead runs and the stage table (no throughput, no crowded run)")
    args = parser.parse_args(argv)
    if args.requests <= 0 or args.seconds <= 0 or args.throughput_requests <= 0:
        parser.error("--requests, --seconds and --throughput-requests must be positive")

    # This checkout's code, here and in both servers, whatever else the environment has installed.
    sys.path.insert(0, str(PROJECT))
    with tempfile.TemporaryDirectory(prefix="bench-http-") as scratch:
        scratch = Path(scratch)
        python_path = os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{scratch / 'mlflow.db'}", "PYTHONPATH": python_path,
               # mlflow serve starts a bare `uvicorn`: the venv's bin must be on PATH.
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
        started = time.perf_counter()
        model_uri, as_of, raw_payloads, feature_rows, columns = _train_and_sample(scratch, args.leads,
                                                                                  lightgbm=args.lightgbm)
        print(f"trained and registered a model on {args.leads:,} synthetic leads in "
              f"{time.perf_counter() - started:.0f} s ({model_uri})", flush=True)
        stages = stage_table(model_uri, as_of, raw_payloads)

        ours_port, mlflow_port, bare_port = free_port(), free_port(), free_port()
        logs = [open(scratch / name, "wb") for name in ("ours.log", "mlflow.log", "bare.log")]
        bare_env = {**env, "PYTHONPATH": os.pathsep.join([str(PROJECT / "benchmarks"), python_path]),
                    SETTINGS_VARIABLE: json.dumps({"model_uri": model_uri, "row": dict(zip(columns, feature_rows[0]))})}
        servers = [
            subprocess.Popen([sys.executable, str(PROJECT / "serve.py"), "http", "--model", model_uri,
                              "--host", HOST, "--port", str(ours_port), "--workers", "1"], cwd=scratch, env=env,
                             stdout=logs[0], stderr=subprocess.STDOUT),
            subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", model_uri,
                              "--env-manager", "local", "-h", HOST, "-p", str(mlflow_port)], cwd=scratch,
                             env=env, stdout=logs[1], stderr=subprocess.STDOUT),
            # The floor: the same uvicorn settings as serve.py http (httptools, no access log), one worker.
            subprocess.Popen([sys.executable, "-m", "uvicorn", "bench_http_bare:bare_app", "--factory", "--host", HOST,
                              "--port", str(bare_port), "--http", "httptools", "--no-access-log", "--log-level",
                              "warning", "--workers", "1"], cwd=scratch, env=bare_env, stdout=logs[2],
                             stderr=subprocess.STDOUT),
        ]
        try:
            wait_ready(servers[0], ours_port, "/health", scratch / "ours.log")
            wait_ready(servers[1], mlflow_port, "/ping", scratch / "mlflow.log")
            wait_ready(servers[2], bare_port, "/docs", scratch / "bare.log")
            feature_bodies = [json.dumps({"features": dict(zip(columns, row))}).encode() for row in feature_rows]
            mlflow_bodies = [json.dumps({"dataframe_split": {"columns": columns, "data": [row]}}).encode()
                             for row in feature_rows]
            raw_bodies = [json.dumps(payload).encode() for payload in raw_payloads]
            raw_path = f"/score?as_of={as_of.isoformat()}"
            _check_agreement(ours_port, mlflow_port, feature_bodies, mlflow_bodies, raw_path, raw_bodies)
            budget = {"requests": args.requests, "seconds": args.seconds}
            # The bare app and ours in turns, so both see the same load from other work (their ratio is the goal).
            runs = measure_alternating({
                "bare FastAPI app, predict on a ready row": (bare_port, "/predict", raw_bodies, servers[2].pid),
                "serve.py http, attributes + events": (ours_port, raw_path, raw_bodies, servers[0].pid)}, **budget)
            runs |= {
                "serve.py http, feature row": measure(ours_port, "/score", feature_bodies, **budget, pid=servers[0].pid),
                "mlflow models serve, feature row": measure(mlflow_port, "/invocations", mlflow_bodies, **budget,
                                                            pid=servers[1].pid),
            }
            mixed = measure_with_bad_requests(ours_port, raw_path, raw_payloads, **budget)
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()
            for log in logs:
                log.close()
        throughput, crowded = {}, None
        if not args.single_only:
            throughput = {workers: _throughput(workers, model_uri, raw_path, raw_bodies, scratch, env, args)
                          for workers in (1, 2)}
            with http_server(2, model_uri, scratch, env) as (port, pid):
                crowded = crowded_run(port, raw_path, raw_bodies, pid, seconds=args.crowd_seconds)

    print(f"\nsingle-lead requests, one client, kept-alive connection, {HOST}, "
          f"{os.cpu_count()} cores ({args.requests:,} requests or {args.seconds:.0f} s each)")
    print(f"{'':42}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'server CPU ms/req':>19}")
    for name, run in runs.items():
        print(f"{name:42}{run['requests']:>9,}{run['p50_ms']:>9.2f}{run['p99_ms']:>9.2f}{run['rps']:>9,.0f}"
              f"{run['cpu_ms']:>19.3f}")
    print(f"\nbad requests mixed in ({mixed['share']:.0%}, {mixed['clients']} clients with kept-alive connections, "
          f"{mixed['seconds']:.0f} s): {mixed['good']:,} good requests, {mixed['good_failed']} failed; "
          f"{mixed['bad']:,} bad requests answered {mixed['bad_statuses']}; {mixed['reconnects']} reconnects")
    if throughput:
        print(f"\n{args.clients} concurrent clients, single-lead requests with attributes + events "
              f"({args.throughput_requests:,} requests or {args.seconds:.0f} s each)")
        for workers, run in throughput.items():
            print(f"serve.py http --workers {workers}: {run['rps']:8,.0f} req/s  (p50 {run['p50_ms']:.1f} ms, "
                  f"p99 {run['p99_ms']:.1f} ms, {run['requests']:,} requests, {run['pids']} worker pid(s) answered; "
                  f"the client's own CPU {run['client_cpu_ms']:.3f} ms per request)")
        print(f"2 workers / 1 worker: {throughput[2]['rps'] / throughput[1]['rps']:.2f}x (target >= 1.6x)")
    if crowded is not None:
        print(f"\n{format_crowded(crowded)}")
    bare = runs["bare FastAPI app, predict on a ready row"]
    print(f"\n{format_stages(stages, bare['cpu_ms'])}")
    ours = runs["serve.py http, attributes + events"]
    ratio = ours["cpu_ms"] / bare["cpu_ms"]
    print(f"one lead with {EVENTS_PER_LEAD} events, server CPU per request: serve.py http {ours['cpu_ms']:.3f} ms, "
          f"the bare-predict app {bare['cpu_ms']:.3f} ms: {ratio:.2f}x -> "
          f"{'meets' if ratio <= TARGETS['bare_ratio'] else 'MISSES'} <= {TARGETS['bare_ratio']:g}x")
    anchor = runs["mlflow models serve, feature row"]["rps"]
    print("mlflow's server CPU per request / ours: " + ", ".join(
        f"{name.split(', ', 1)[1]} {runs['mlflow models serve, feature row']['cpu_ms'] / runs[name]['cpu_ms']:.1f}x"
        for name in ("serve.py http, feature row", "serve.py http, attributes + events")))
    # Figures, not a gate: a busy shared machine moves them; the verdict line says where they stand.
    for name in ("serve.py http, feature row", "serve.py http, attributes + events"):
        run = runs[name]
        speedup = run["rps"] / anchor
        verdict = (run["p50_ms"] <= TARGETS["p50_ms"] and run["p99_ms"] <= TARGETS["p99_ms"]
                   and speedup >= TARGETS["speedup"])
        print(f"{name}: {speedup:.1f}x mlflow's req/s -> {'meets' if verdict else 'MISSES'} "
              f"p50 <= {TARGETS['p50_ms']:g} ms, p99 <= {TARGETS['p99_ms']:g} ms, >= {TARGETS['speedup']:g}x")
    return 0


def _train_and_sample(scratch: Path, n_leads: int, *, lightgbm: bool = False):
    """Train on a synthetic CRM; return the model URI, as_of, and 200 leads as raw payloads and feature rows."""
    from crm.synthetic import generate_crm, write_crm
    from features.build import build_features
    from train import main as training_main
    from registry.loading import load_bundle

    crm = generate_crm(n_leads, months=15, seed=11)
    write_crm(crm, scratch)
    code = training_main(["train", "--leads", str(scratch / "leads.parquet"), "--events",
                          str(scratch / "events.parquet"), "--deals", str(scratch / "deals.parquet"),
                          "--report-out", str(scratch / "training_report")])
    if code:
        raise SystemExit("training the benchmark model failed")
    model_uri = "models:/lead-conversion@champion"
    if lightgbm:
        from bench_spark import _register_lightgbm  # one recipe for both benchmarks' LightGBM model

        model_uri = _register_lightgbm(scratch, model_uri)
    bundle, _ = load_bundle(model_uri)

    as_of = pd.Timestamp(crm.end)
    # The case: one lead with 20 events. Leads with at least 20 events before as_of, their latest 20.
    seen = crm.events[crm.events["occurred_at"] < as_of].sort_values(["lead_id", "occurred_at"], kind="stable")
    counts = seen["lead_id"].value_counts()
    eligible = crm.leads[crm.leads["created_at"] < as_of]
    eligible = eligible[eligible["lead_id"].isin(counts.index[counts >= EVENTS_PER_LEAD])]
    leads = eligible.sample(min(200, len(eligible)), random_state=0)
    events = seen[seen["lead_id"].isin(leads["lead_id"])].groupby("lead_id").tail(EVENTS_PER_LEAD)
    attributes = [c for c in leads.columns if c not in ("lead_id", "created_at")]
    by_lead = {lead_id: group for lead_id, group in events.groupby("lead_id")}
    raw = []
    for lead in leads.itertuples(index=False):
        history = by_lead.get(lead.lead_id, events.iloc[:0])
        raw.append({
            "lead_id": int(lead.lead_id), "created_at": lead.created_at.isoformat(),
            "attributes": {c: _plain(getattr(lead, c)) for c in attributes},
            "events": [{"occurred_at": t.isoformat(), "event_type": str(e)}
                       for t, e in zip(history["occurred_at"], history["event_type"])],
        })
    snapshots = pd.DataFrame({"lead_id": leads["lead_id"].to_numpy(), "as_of": as_of})
    features = bundle.conform(build_features(snapshots, leads, events, bundle.spec))
    columns = list(features.columns)
    rows = [[_plain(v) for v in row] for row in features.itertuples(index=False)]
    return model_uri, as_of, raw, rows, columns


def _plain(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value if isinstance(value, (str, int, float)) else str(value)


def _throughput(workers: int, model_uri: str, path: str, bodies: list, scratch: Path, env: dict, args) -> dict:
    """Start ``serve.py http --workers N``, then ``--clients`` connections post for --seconds or
    --throughput-requests in all."""
    with http_server(workers, model_uri, scratch, env) as (port, _):
        warm = LoadClient(port, path, bodies, args.clients)
        warm.run(requests=10 * args.clients, seconds=args.seconds)  # warm-up, then fresh connections
        warm.close()
        load = LoadClient(port, path, bodies, args.clients)
        cpu_began = time.process_time()
        latencies, elapsed = load.run(requests=args.throughput_requests, seconds=args.seconds)
        client_cpu = time.process_time() - cpu_began
        pids = load.worker_pids()
        load.close()
    latencies = np.array(latencies) * 1e3
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "pids": len(pids),
            "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
            "client_cpu_ms": client_cpu / max(len(latencies), 1) * 1e3}


def _check_agreement(ours_port, mlflow_port, feature_bodies, mlflow_bodies, raw_path, raw) -> None:
    """Both servers and both input forms must give the same probability for the same lead."""
    ours = http.client.HTTPConnection(HOST, ours_port, timeout=30)
    theirs = http.client.HTTPConnection(HOST, mlflow_port, timeout=30)
    for k in range(5):
        from_features = json.loads(post(ours, "/score", feature_bodies[k]))["results"][0]["probability"]
        from_raw = json.loads(post(ours, raw_path, raw[k]))["results"][0]["probability"]
        mlflow = json.loads(post(theirs, "/invocations", mlflow_bodies[k]))["predictions"][0]["probability"]
        if not (abs(from_features - mlflow) < 1e-9 and abs(from_raw - mlflow) < 1e-9):
            raise SystemExit(f"lead {k}: probabilities differ: ours {from_features} / {from_raw}, mlflow {mlflow}")
    ours.close()
    theirs.close()


if __name__ == "__main__":
    sys.exit(main())
