"""Scoring entry point (``lead-serve``): ``score`` a whole lead base as of a date, or serve scores over ``http``.

    python serve.py score --model models:/lead-conversion@champion \
        --leads leads.parquet --events events.parquet --deals deals.parquet --out scores.parquet
    python serve.py score --model models:/my-model@champion --config config.toml --leads export.csv --out scores.csv
    python serve.py http --model models:/lead-conversion@champion --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import gc
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    from training.console import HelpFormatter, add_common_arguments, package_version

    parser = argparse.ArgumentParser(prog="lead-serve", description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter,
                                     epilog="examples:\n  lead-serve score --leads leads.csv --events events.parquet "
                                            "--out scores.parquet\n  lead-serve http --port 8000")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    score = commands.add_parser("score", help="score every open lead of a lead base", formatter_class=HelpFormatter,
                                description="Score every open lead of a lead base, atomically into one file.",
                                epilog="example:\n  lead-serve score --model models:/lead-conversion@champion "
                                       "--leads leads.csv --events events.parquet --deals deals.csv "
                                       "--out scores.parquet")
    score.add_argument("--model", default="models:/lead-conversion@champion",
                       help="MLflow model URI (default: %(default)s)")
    score.add_argument("--config", help="project config (TOML) of your export: reads the leads as it says")
    score.add_argument("--leads", help="leads table (.csv or .parquet); with --config, default: the config's file")
    score.add_argument("--events", help="event log (.csv or .parquet), when the model uses one")
    score.add_argument("--deals", help="closed deals; leads closed before --as-of are not scored")
    score.add_argument("--as-of", help="score as of this time (default: now, UTC)")
    score.add_argument("--out", required=True, help="output file (.parquet or .csv), written atomically")
    score.add_argument("--sql-threshold", type=float, help="override the model's SQL probability threshold")
    score.add_argument("--mql-threshold", type=float, help="override the model's MQL probability threshold")
    score.add_argument("--chunk-size", type=int, default=100_000,
                       help="leads read and scored at a time; memory is bounded by it (default: %(default)s)")
    score.add_argument("--threads", type=int, help="threads for LightGBM (default: LEAD_SCORING_THREADS, the "
                                                   "config's [runtime] threads, else the cores this process may use)")
    score.add_argument("--no-reasons", dest="explain", action="store_false",
                       help="leave out fit/engagement sub-scores and reasons (faster)")
    add_common_arguments(score, experiment=False)

    http = commands.add_parser("http", help="serve POST /score, GET /health, GET /model over HTTP",
                               formatter_class=HelpFormatter,
                               description="Serve POST /score, GET /health, GET /model and /docs over HTTP. "
                                           "Bearer-token auth is on when the environment variable "
                                           "LEAD_SCORING_TOKEN is set.",
                               epilog="example:\n  LEAD_SCORING_TOKEN=secret lead-serve http "
                                      "--model models:/lead-conversion@champion --host 127.0.0.1 --port 8000")
    http.add_argument("--model", default="models:/lead-conversion@champion",
                      help="MLflow model URI (default: %(default)s)")
    http.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    http.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    http.add_argument("--max-body-bytes", type=int, default=1_000_000,
                      help="larger request bodies get 413 (default: %(default)s)")
    http.add_argument("--max-leads", type=int, default=1_000, help="leads per request (default: %(default)s)")
    http.add_argument("--workers", type=int, help="worker processes, each with the model loaded once "
                                                  "(default: the cores this process may use)")
    add_common_arguments(http, experiment=False)
    return parser


def main(argv=None) -> int:
    from models.threads import sleep_while_waiting

    sleep_while_waiting()  # before LightGBM loads OpenMP: threads waiting at a barrier sleep, not spin
    from training.console import configure

    args = build_parser().parse_args(argv)
    configure(args)
    if args.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    if args.command == "http":
        return serve_http(args)
    from crm.config import load_crm_or_config
    from crm.sources import stream_crm
    from features.contract import DataContractError
    from features.timing import naive_utc, utc_now
    from models.batch import score_lead_base
    from models.explain import use_threads
    from models.threads import resolve_threads
    from models.tiers import TierThresholds
    from training.tracking import load_bundle, quiet_mlflow, use_default_store

    quiet_mlflow(verbose=args.verbose)
    use_default_store()
    try:
        as_of = naive_utc(args.as_of) if args.as_of else utc_now()
        if args.config is None and args.leads is None:
            raise ValueError("score needs --leads, or --config with the export it describes.")
        if args.config is None:  # the contract's files: the lead table is streamed chunk by chunk
            config = None
            leads, events, deals = stream_crm(args.leads, args.events, args.deals, now=max(as_of, utc_now()),
                                              chunk_rows=max(args.chunk_size, 1))
        else:
            config, leads, _, events, deals = load_crm_or_config(args.config, leads=args.leads, events=args.events,
                                                                 deals=args.deals, for_training=False,
                                                                 now=max(as_of, utc_now()))
        bundle, identity = load_bundle(args.model)
        use_threads(bundle.model, resolve_threads(args.threads, config_threads=config.runtime.get("threads")
                                                  if config is not None else None))
        thresholds = None
        if args.sql_threshold is not None or args.mql_threshold is not None:
            thresholds = TierThresholds(mql=args.mql_threshold if args.mql_threshold is not None
                                        else bundle.thresholds.mql,
                                        sql=args.sql_threshold if args.sql_threshold is not None
                                        else bundle.thresholds.sql)
        counts = score_lead_base(bundle, leads, events, as_of=as_of, out=args.out, deals=deals,
                                 model_version=identity["model_version"], thresholds=thresholds,
                                 chunk_size=args.chunk_size, explain=args.explain,
                                 progress_bar=not args.quiet)
    except (DataContractError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {int(counts.sum()):,} scores as of {as_of} to {args.out} "
          f"(model {identity.get('model_name', '')} version {identity['model_version']})")
    for tier, count in counts.items():
        print(f"  {tier:<8}{count:>10,}")
    return 0


def serve_http(args) -> int:
    """Serve with uvicorn until interrupted: ``--workers`` processes, each loading the model once.

    The parent pins an alias to its version first, so every worker serves the same model even if
    the alias moves while they start; each worker builds its app with ``http_app`` (uvicorn's app
    factory, given as an import string, as uvicorn needs for several workers).
    """
    import json

    import uvicorn

    from models.threads import available_cores
    from training.tracking import pinned_model_uri, use_default_store

    workers = args.workers if args.workers is not None else available_cores()
    if workers <= 0:
        print(f"error: --workers must be positive. Got {workers}.", file=sys.stderr)
        return 2
    use_default_store()
    os.environ[HTTP_SETTINGS_VARIABLE] = json.dumps({
        "model_uri": args.model, "pinned_uri": pinned_model_uri(args.model), "workers": workers,
        "max_body_bytes": args.max_body_bytes, "max_leads": args.max_leads,
        "verbose": args.verbose})
    print(f"serving {args.model} on http://{args.host}:{args.port} with {workers} worker(s)",
          file=sys.stderr, flush=True)
    # No access log: one line per request costs more than scoring a lead.
    uvicorn.run("serve:http_app", factory=True, workers=workers, host=args.host, port=args.port,
                log_level="warning", access_log=False)
    return 0


HTTP_SETTINGS_VARIABLE = "LEAD_SCORING_HTTP_SETTINGS"


def http_app():
    """One worker's app: load the model once, from the settings ``serve_http`` put in the environment."""
    import json

    from models.explain import use_threads
    from models.service import TOKEN_ENVIRONMENT_VARIABLE, create_app
    from models.threads import available_cores, sleep_while_waiting
    from training.tracking import load_bundle, quiet_mlflow, use_default_store

    sleep_while_waiting()
    settings = json.loads(os.environ[HTTP_SETTINGS_VARIABLE])
    quiet_mlflow(verbose=settings["verbose"])
    use_default_store()
    bundle, identity = load_bundle(settings["pinned_uri"])
    identity["model_uri"] = settings["model_uri"]  # what the user asked for, alias included
    # Workers share the cores: large requests predict on this worker's share of them.
    use_threads(bundle.model, max(1, available_cores() // settings["workers"]))
    app = create_app(bundle, identity, max_body_bytes=settings["max_body_bytes"], max_leads=settings["max_leads"],
                     token=os.environ.get(TOKEN_ENVIRONMENT_VARIABLE) or None)
    # The model's objects live as long as the process: keep the garbage collector from rescanning them.
    gc.collect()
    gc.freeze()
    print(f"worker {os.getpid()}: {settings['model_uri']} version {identity['model_version']}",
          file=sys.stderr, flush=True)
    return app


if __name__ == "__main__":
    sys.exit(main())
