"""Where one single-lead request's CPU goes, stage by stage, in process: the table ``make bench-http`` prints.

Each stage is the service's own function on the same leads (20 events each), timed alone with
``time.process_time_ns``, one stage after another per lead as a request runs them, in microseconds
per request (median over leads):

- parse and validate: the JSON body into the model's ``Lead`` (pydantic, as FastAPI does it);
- checks and feature row: ``lead_blocks`` (the field checks, then ``features.single_lead``);
- encoding, predict, contributions: LightGBM's input row, the bare ``predict`` on it (for
  reference: the service does not call it) and ``pred_contrib`` (encoding included); for the
  logistic pipeline its per-column tables (encoding included);
- calibration and tier, reasons: ``LeadScorer.outcomes`` and ``LeadScorer.reasons``;
- answer: the JSON answer from the scored rows, stale-data warnings included;
- middleware: the service's ASGI middleware (request id, access-log line, metrics, failure
  containment, body limit) around an app that answers at once, less that app alone;
- whole app in process: the app called through ASGI (no sockets, no uvicorn); what the stages
  above do not cover is FastAPI's own routing and dependency solving.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import numpy as np

def stage_table(model_uri: str, as_of, raw_payloads: list, *, rounds: int = 1000) -> dict:
    """Microseconds of CPU per request of each stage (see the module), and the model kind."""
    import pandas as pd
    from pydantic import TypeAdapter

    from models.lead_scorer import lead_scorer
    from registry.loading import load_bundle
    from scoring.lead_requests import lead_blocks, request_models
    from scoring.operations import use_access_log
    from scoring.score_route import answer_body, lead_results
    from scoring.service import create_app

    bundle, identity = load_bundle(model_uri)
    scorer = lead_scorer(bundle)
    if scorer is None:
        raise SystemExit("bench-http's stage table needs a model the single-lead route covers")
    lead_model = request_models(bundle.spec)
    adapter = TypeAdapter(lead_model | list[lead_model])
    bodies = [json.dumps(payload).encode() for payload in raw_payloads]
    when = pd.Timestamp(as_of)
    leads = [[adapter.validate_python(json.loads(body))] for body in bodies]
    blocks = [lead_blocks(bundle.spec, lead, when) for lead in leads]
    contributions = [scorer.contributions(*block) for block in blocks]
    results = [lead_results(scorer, bundle, lead, when) for lead in leads]
    pick = len(bodies)
    stages = {
        "parse and validate (pydantic)": lambda k: adapter.validate_python(json.loads(bodies[k % pick])),
        "checks and feature row": lambda k: lead_blocks(bundle.spec, leads[k % pick], when),
    }
    if scorer.linear_ is None:
        codes = [scorer.encoded(*block) for block in blocks]
        stages["encoding"] = lambda k: scorer.encoded(*blocks[k % pick])
        stages["predict (bare, not called by the service)"] = \
            lambda k: scorer.booster_.predict(codes[k % pick], num_threads=1)
        stages["contributions (encoding included)"] = lambda k: scorer.contributions(*blocks[k % pick])
    else:
        stages["contributions (logistic tables, encoding included)"] = \
            lambda k: scorer.contributions(*blocks[k % pick])
    stages["calibration and tier"] = lambda k: scorer.outcomes(*contributions[k % pick])
    stages["reasons"] = lambda k: scorer.reasons(contributions[k % pick][0], *blocks[k % pick])
    stages["answer (JSON, warnings)"] = lambda k: answer_body(
        str(identity.get("model_version", "")), when, results[k % pick], leads[k % pick],
        horizon_days=bundle.metadata.get("params", {}).get("horizon_days"))
    use_access_log(open(os.devnull, "w"))  # the server writes each line to its stderr, as here to nowhere
    app = create_app(bundle, identity, access_log=True)
    bare = _Answer()
    wrapped = _middleware_of(app, bare)
    path, query = "/score", f"as_of={when.isoformat()}".encode()
    loop = asyncio.new_event_loop()
    stages["middleware and the app it wraps"] = \
        lambda k: loop.run_until_complete(_call(wrapped, path, query, bodies[k % pick]))
    stages["an app answering at once"] = lambda k: loop.run_until_complete(_call(bare, path, query, bodies[k % pick]))
    stages["whole app in process (ASGI, no uvicorn)"] = \
        lambda k: loop.run_until_complete(_call(app, path, query, bodies[k % pick]))
    try:
        table = _interleaved_cpu_us(stages, rounds)
    finally:
        loop.close()
    table["middleware (request id, access log, metrics, limits)"] = \
        table.pop("middleware and the app it wraps") - table.pop("an app answering at once")
    whole = table.pop("whole app in process (ASGI, no uvicorn)")
    table["whole app in process (ASGI, no uvicorn)"] = whole
    return {"model": "logistic" if scorer.linear_ is not None else "lightgbm", "us": table}


def format_stages(stages: dict, bare_cpu_ms: float) -> str:
    """The per-stage table, each stage beside the bare-predict app's whole server CPU per request."""
    lines = [f"where one lead's CPU goes, in process ({stages['model']} model; microseconds per request, "
             "median over leads, stages interleaved as in a request):",
             f"{'':58}{'us':>8}{'/ bare app':>12}"]
    for name, us in stages["us"].items():
        lines.append(f"{name:58}{us:>8.0f}{us / (bare_cpu_ms * 1e3):>11.2f}x")
    covered = sum(us for name, us in stages["us"].items() if not name.startswith(("predict", "whole")))
    if "encoding" in stages["us"]:
        covered -= stages["us"]["encoding"]  # counted inside contributions
    lines.append(f"{'FastAPI routing and dependencies (whole app - the stages)':58}"
                 f"{stages['us']['whole app in process (ASGI, no uvicorn)'] - covered:>8.0f}")
    return "\n".join(lines)


def _interleaved_cpu_us(stages: dict, rounds: int) -> dict:
    """Median CPU microseconds of each stage, the stages run one after another per round as a request runs them.

    Interleaved, not each stage in a loop of its own: alone, a stage finds its code and data in the
    caches and costs a half to a third of what it costs inside a request.
    """
    samples = {name: [] for name in stages}
    for k in range(rounds + 50):
        for name, stage in stages.items():
            began = time.process_time_ns()
            stage(k)
            if k >= 50:  # warm-up
                samples[name].append(time.process_time_ns() - began)
    return {name: float(np.median(values)) / 1e3 for name, values in samples.items()}


class _Answer:
    """An ASGI app that reads the body and answers 200 at once: what the middleware wraps in the table."""

    async def __call__(self, scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})


def _middleware_of(app, inner):
    """The app's middleware stack (``app.user_middleware``, outermost first) around ``inner``."""
    wrapped = inner
    for middleware in reversed(app.user_middleware):
        wrapped = middleware.cls(wrapped, *middleware.args, **middleware.kwargs)
    return wrapped


async def _call(app, path: str, query: bytes, body: bytes) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    received = False

    async def receive():
        nonlocal received
        if received:
            return {"type": "http.disconnect"}
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = []

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    if status != [200]:
        raise SystemExit(f"the app answered {status} in process")
