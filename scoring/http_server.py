"""The HTTP service's processes: uvicorn with ``--workers`` workers, each loading the model once.

With several workers on Linux each accepts on its own socket (:mod:`scoring.http_workers`).

The parent pins an alias to its version first, so every worker serves the same model even if the
alias moves while they start; each worker builds its app with :func:`http_app` (uvicorn's app
factory, given as an import string, as uvicorn needs for several workers).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import sys
import tempfile
from pathlib import Path

#: How the parent hands its settings to the workers uvicorn starts.
HTTP_SETTINGS_VARIABLE = "LEAD_SCORING_HTTP_SETTINGS"


def serve_http(*, model_uri: str, host: str, port: int, workers: int | None, max_body_bytes: int, max_leads: int,
               verbose: int = 0, scores=None, history=None) -> None:
    """Serve until interrupted. Raises ``ValueError`` when the workers or the model cannot be had.

    ``scores`` (a scoring run's output) or ``history`` (a score history folder) is the open base the
    planner page shows.
    """
    import uvicorn

    from models.threads import available_cores
    from registry.loading import load_bundle, pinned_model_uri
    from registry.store import use_default_store
    from scoring.http_guards import KEEP_ALIVE_SECONDS
    from scoring.http_workers import balances_connections, listening_sockets, serve_on_own_sockets

    workers = workers if workers is not None else available_cores()
    if workers <= 0:
        raise ValueError(f"--workers must be positive. Got {workers}.")
    # With several workers on Linux, one socket each, bound now: a taken port fails before the model loads.
    sockets = listening_sockets(host, port, workers) if workers > 1 and balances_connections() else None
    failure = None
    try:
        use_default_store()
        try:
            pinned = pinned_model_uri(model_uri)
            load_bundle(pinned)  # fail here, in one line, rather than in every worker
        except Exception as error:  # noqa: BLE001 - any reason the model cannot load is the user's to read
            raise ValueError(str(error)) from None
        # A worker that cannot build its app says why here and exits; the server then stops (see http_app).
        failure = tempfile.NamedTemporaryFile(prefix="lead-serve-worker-", suffix=".txt", delete=False)
        failure.close()
        os.environ[HTTP_SETTINGS_VARIABLE] = json.dumps({
            "model_uri": model_uri, "pinned_uri": pinned, "workers": workers, "max_body_bytes": max_body_bytes,
            "max_leads": max_leads, "verbose": verbose, "scores": scores, "history": history,
            "failure_file": failure.name})
        print(f"serving {model_uri} on http://{host}:{port} with {workers} worker(s); tier planner: "
              f"http://{host}:{port}/planner", file=sys.stderr, flush=True)
        # Uvicorn's own access log is off (the app writes a structured one, scoring/operations.py); limits on
        # header size and on the time to send a request apply before any app code (scoring/http_guards.py).
        settings = dict(factory=True, workers=workers, host=host, port=port, log_level="warning", access_log=False,
                        http="scoring.http_guards:GuardedHttpToolsProtocol", timeout_keep_alive=KEEP_ALIVE_SECONDS)
        if sockets:
            serve_on_own_sockets(uvicorn.Config("scoring.http_server:http_app", **settings), sockets)
        else:
            uvicorn.run("scoring.http_server:http_app", **settings)
        failed = Path(failure.name).read_text(encoding="utf-8").strip()
        if failed:  # uvicorn's supervisor stopped every worker when one failed before serving
            raise ValueError(failed)
    finally:
        for sock in sockets or ():
            sock.close()
        if failure is not None:
            Path(failure.name).unlink(missing_ok=True)


def http_app():
    """One worker's app: load the model once, from the settings :func:`serve_http` put in the environment.

    A worker that cannot build it would fail the same way on every restart, so it stops the server instead:
    in a worker process it writes the one-line reason where the parent reads it and exits with uvicorn's
    start-up failure status (the supervisor then stops every worker and returns; a worker that dies once
    serving is still replaced); served in-process (one worker), the error reaches ``serve_http`` as is.
    """
    settings = json.loads(os.environ[HTTP_SETTINGS_VARIABLE])
    try:
        return _worker_app(settings)
    except Exception as error:  # noqa: BLE001 - any reason the app cannot be built is the user's to read
        from features.contract import bounded

        message = bounded(str(error) or type(error).__name__)
        if settings["workers"] == 1:
            raise ValueError(message) from None
        from uvicorn.config import STARTUP_FAILURE

        Path(settings["failure_file"]).write_text(f"a worker could not start: {message}", encoding="utf-8")
        sys.exit(STARTUP_FAILURE)


def _worker_app(settings: dict):
    from models.explain import use_threads
    from models.threads import available_cores, sleep_while_waiting
    from registry.loading import load_bundle
    from registry.store import quiet_mlflow, use_default_store
    from registry.tier_policy import effective_thresholds
    from scoring.planner import OpenBase
    from scoring.service import TOKEN_ENVIRONMENT_VARIABLE, create_app

    sleep_while_waiting()
    quiet_mlflow(verbose=settings["verbose"])
    if settings.get("access_log", True):
        from scoring.operations import use_access_log

        use_access_log()
    use_default_store()
    bundle, identity = load_bundle(settings["pinned_uri"])
    identity["model_uri"] = settings["model_uri"]  # what the user asked for, alias included
    # Workers share the cores: large requests predict on this worker's share of them.
    use_threads(bundle.model, max(1, available_cores() // settings["workers"]))
    bundle = dataclasses.replace(bundle, thresholds=effective_thresholds(bundle, identity))  # a saved tier policy
    app = create_app(bundle, identity, max_body_bytes=settings["max_body_bytes"], max_leads=settings["max_leads"],
                     token=os.environ.get(TOKEN_ENVIRONMENT_VARIABLE) or None,
                     open_base=OpenBase(scores=settings.get("scores"), history=settings.get("history")))
    # The model's objects live as long as the process: keep the garbage collector from rescanning them.
    gc.collect()
    gc.freeze()
    print(f"worker {os.getpid()}: {settings['model_uri']} version {identity['model_version']}",
          file=sys.stderr, flush=True)
    return app
