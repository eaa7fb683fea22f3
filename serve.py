"""Scoring entry point: ``score`` a whole lead base as of a date, or serve scores over ``http``.

    python serve.py score --model models:/lead-conversion@champion \
        --leads leads.parquet --events events.parquet --deals deals.parquet --out scores.parquet
    python serve.py score --model models:/my-model@champion --config config.toml --leads export.csv --out scores.csv
    python serve.py score --db postgresql://crm@db/crm --leads crm_leads --events crm_events --deals crm_deals \
        --out lead_scores
    python serve.py http --model models:/lead-conversion@champion --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import gc
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serve.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="score every open lead of a lead base")
    score.add_argument("--model", default="models:/lead-conversion@champion",
                       help="MLflow model URI (default: %(default)s)")
    score.add_argument("--config", help="project config (TOML) of your export: reads the leads as it says")
    score.add_argument("--leads", help="leads table (.csv or .parquet); with --config, default: the config's file")
    score.add_argument("--events", help="event log (.csv or .parquet), when the model uses one")
    score.add_argument("--deals", help="closed deals; leads closed before --as-of are not scored")
    score.add_argument("--as-of", help="score as of this time (default: now, UTC)")
    score.add_argument("--db", help="database URL (postgresql://..., duckdb:///crm.duckdb or any SQLAlchemy URL): "
                                    "--leads, --events and --deals are then table names or SELECT queries in it")
    score.add_argument("--out", required=True,
                       help="output file (.parquet or .csv), or a table name in --out-db / --db; written atomically")
    score.add_argument("--out-db", help="database URL for an output table (default: --db)")
    score.add_argument("--sql-threshold", type=float, help="override the model's SQL probability threshold")
    score.add_argument("--mql-threshold", type=float, help="override the model's MQL probability threshold")
    score.add_argument("--chunk-size", type=int, default=200_000, help="leads per chunk (default: %(default)s)")
    score.add_argument("--no-reasons", dest="explain", action="store_false",
                       help="leave out fit/engagement sub-scores and reasons (faster)")

    http = commands.add_parser("http", help="serve POST /score, GET /health, GET /model over HTTP",
                               description="Bearer-token auth is on when the environment variable "
                                           "LEAD_SCORING_TOKEN is set.")
    http.add_argument("--model", default="models:/lead-conversion@champion",
                      help="MLflow model URI (default: %(default)s)")
    http.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    http.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    http.add_argument("--max-body-bytes", type=int, default=1_000_000,
                      help="larger request bodies get 413 (default: %(default)s)")
    http.add_argument("--max-leads", type=int, default=1_000, help="leads per request (default: %(default)s)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "http":
        return serve_http(args)
    from crm.config import load_crm_or_config
    from features.contract import DataContractError
    from features.timing import naive_utc, utc_now
    from models.batch import score_lead_base
    from models.tiers import TierThresholds
    from training.tracking import load_bundle, use_default_store

    use_default_store()
    try:
        as_of = naive_utc(args.as_of) if args.as_of else utc_now()
        if args.config is None and args.leads is None:
            raise ValueError("score needs --leads, or --config with the export it describes.")
        project, leads, _, events, deals = load_crm_or_config(args.config, leads=args.leads, events=args.events,
                                                              deals=args.deals, for_training=False,
                                                              now=max(as_of, utc_now()), db=args.db)
        out = _output(args, project)
        bundle, identity = load_bundle(args.model)
        thresholds = None
        if args.sql_threshold is not None or args.mql_threshold is not None:
            thresholds = TierThresholds(mql=args.mql_threshold if args.mql_threshold is not None
                                        else bundle.thresholds.mql,
                                        sql=args.sql_threshold if args.sql_threshold is not None
                                        else bundle.thresholds.sql)
        counts = score_lead_base(bundle, leads, events, as_of=as_of, out=out, deals=deals,
                                 model_version=identity["model_version"], thresholds=thresholds,
                                 chunk_size=args.chunk_size, explain=args.explain,
                                 progress=lambda line: print(line, file=sys.stderr))
    except (DataContractError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    where = args.out if isinstance(out, str) else f"table {args.out} of {out.database.display}"
    print(f"wrote {int(counts.sum()):,} scores as of {as_of} to {where} "
          f"(model {identity.get('model_name', '')} version {identity['model_version']})")
    for tier, count in counts.items():
        print(f"  {tier:<8}{count:>10,}")
    return 0


def _output(args, project):
    """The output file path, or a table writer when --out names a table in a database."""
    from pathlib import Path

    if Path(args.out).suffix.lower() in (".parquet", ".csv"):
        return args.out
    url = args.out_db or args.db or (project.url if project is not None else None)
    if url is None:
        raise ValueError(f"--out {args.out!r} is neither a .parquet nor a .csv file; to write a table, give the "
                         "database with --out-db or --db.")
    from crm.database import connect

    return connect(url).write_table(args.out)


def serve_http(args) -> int:
    """Load the model once, then serve it with uvicorn until interrupted."""
    import uvicorn

    from models.service import TOKEN_ENVIRONMENT_VARIABLE, create_app
    from training.tracking import load_bundle, use_default_store

    use_default_store()
    bundle, identity = load_bundle(args.model)
    app = create_app(bundle, identity, max_body_bytes=args.max_body_bytes, max_leads=args.max_leads,
                     token=os.environ.get(TOKEN_ENVIRONMENT_VARIABLE) or None)
    # The model's objects live as long as the process: keep the garbage collector from rescanning them.
    gc.collect()
    gc.freeze()
    print(f"serving {args.model} (version {identity['model_version']}) on http://{args.host}:{args.port}",
          file=sys.stderr, flush=True)
    # No access log: one line per request costs more than scoring a lead.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
