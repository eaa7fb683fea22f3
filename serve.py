"""Scoring entry point (``lead-serve``): ``score`` a whole lead base as of a date, or serve scores over ``http``.

Subcommands: ``score`` (files or a database, with history and monitoring), ``spark-score`` (Apache
Spark), ``history`` (a lead's trajectory; stored scores against later outcomes), ``http`` (the
service). ``lead-serve COMMAND --help`` shows each one's options and an example.
"""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    from command_line import HelpFormatter, add_command, add_common_arguments, package_version
    from scoring.history_command import add_history_parser
    from scoring.policy_command import add_policy_parser

    parser = argparse.ArgumentParser(prog="lead-serve", description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter,
                                     epilog="examples:\n  lead-serve score --leads leads.csv --events events.parquet "
                                            "--out scores.parquet\n  lead-serve http --port 8000")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    score = add_command(commands, "score", "score every open lead of a lead base, atomically into one output",
                        "lead-serve score --model models:/lead-conversion@champion --leads leads.csv "
                        "--events events.parquet --deals deals.csv --out scores.parquet")
    _add_lead_base_arguments(score, "table (.csv or .parquet)")
    score.add_argument("--db", help="database URL (postgresql://..., duckdb:///crm.duckdb or any SQLAlchemy URL): "
                                    "--leads, --events and --deals are then table names or SELECT queries in it")
    score.add_argument("--out", required=True,
                       help="output file (.parquet or .csv), or a table name in --out-db / --db; written atomically")
    score.add_argument("--out-db", help="database URL for an output table (default: --db)")
    score.add_argument("--sql-threshold", type=float, help="override the model's SQL probability threshold")
    score.add_argument("--mql-threshold", type=float, help="override the model's MQL probability threshold")
    score.add_argument("--chunk-size", type=int, default=100_000,
                       help="leads read and scored at a time; memory is bounded by it")
    score.add_argument("--threads", type=int, help="threads for LightGBM (default: LEAD_SCORING_THREADS, the "
                                                   "config's [runtime] threads, else the cores this process may use)")
    score.add_argument("--history", help="score history folder (date-partitioned Parquet): this run is appended "
                                         "and the output gets each lead's previous score and trend")
    score.add_argument("--history-table", help="the same history as a table in --out-db / --db")
    score.add_argument("--no-monitoring", dest="monitoring", action="store_false",
                       help="skip the drift comparison with the model's training reference")
    score.add_argument("--monitoring-out", default="reports/monitoring", help="folder for monitoring.html and CSVs")
    for name, default, what in (("psi-warning", 0.1, "PSI from which a shift is a warning"),
                                ("psi-alert", 0.25, "PSI from which a shift is an alert"),
                                ("unseen-warning", 0.05, "share of rows with categories unseen in training for a "
                                                         "warning"),
                                ("unseen-alert", 0.25, "share of rows with unseen categories for an alert")):
        score.add_argument(f"--{name}", type=float, default=default, help=what)
    score.add_argument("--fail-on-drift", action="store_true",
                       help="exit with status 3 when monitoring raises an alert (the scores are still written)")
    add_common_arguments(score, experiment=False)

    add_history_parser(commands)

    load = add_command(commands, "load", "load a CSV or Parquet export into a database table, atomically (score "
                       "then reads it with --db)", "lead-serve load --db postgresql://crm@db/crm --table crm_leads "
                       "leads.csv")
    load.add_argument("file", help="the export (.csv or .parquet)")
    load.add_argument("--db", required=True, help="database URL (postgresql://..., duckdb:///crm.duckdb, ...)")
    load.add_argument("--table", required=True, help="table to write (replaced when it exists)")
    load.add_argument("--chunk-size", type=int, default=100_000, help="rows written at a time")
    add_common_arguments(load, experiment=False)

    http = add_command(commands, "http", "serve POST /score, GET /health, GET /model and /docs over HTTP (bearer-"
                       "token auth when the environment variable LEAD_SCORING_TOKEN is set)",
                       "LEAD_SCORING_TOKEN=secret lead-serve http --model models:/lead-conversion@champion --port 8000")
    http.add_argument("--model", default="models:/lead-conversion@champion", help="MLflow model URI")
    http.add_argument("--host", default="127.0.0.1", help="address to listen on")
    http.add_argument("--port", type=int, default=8000, help="port")
    http.add_argument("--max-body-bytes", type=int, default=1_000_000, help="larger request bodies get 413")
    http.add_argument("--max-leads", type=int, default=1_000, help="leads per request")
    http.add_argument("--workers", type=int, help="worker processes, each with the model loaded once "
                                                  "(default: the cores this process may use)")
    http.add_argument("--scores", help="the latest scoring run's output (.parquet or .csv): the open base the "
                                       "planner page (/planner) shows")
    http.add_argument("--history", help="or a score history folder: the planner shows its newest run")
    add_common_arguments(http, experiment=False)

    spark = add_command(commands, "spark-score", "score every open lead on Apache Spark (each table a Parquet file "
                        "or folder, or a Spark table)", "lead-serve spark-score --master 'local[2]' --leads "
                        "leads.parquet --events events.parquet --deals deals.parquet --out scores_spark.parquet")
    _add_lead_base_arguments(spark, "Parquet or Spark table")
    spark.add_argument("--out", required=True, help="output: a Parquet folder (moved in place when complete) "
                                                    "or a Spark table")
    spark.add_argument("--master", help="Spark master, e.g. local[2] (default: spark-submit's, else local[*])")
    spark.add_argument("--buckets", type=int,
                       help="lead buckets, one pandas call each (default: ~1 per 100,000 leads, a multiple of cores)")
    add_common_arguments(spark, experiment=False)
    add_policy_parser(commands)
    return parser


def main(argv=None) -> int:
    from models.threads import arrow_system_allocator, sleep_while_waiting

    sleep_while_waiting()  # before LightGBM loads OpenMP: threads waiting at a barrier sleep, not spin
    arrow_system_allocator()  # before pyarrow loads: what Arrow frees is reused by the next chunk's arrays
    from command_line import configure, error_text
    from features.contract import DataContractError, bounded

    args = build_parser().parse_args(argv)
    configure(args)
    if args.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    try:
        if args.command not in ("history", "policy", "load"):
            from registry.store import quiet_mlflow, use_default_store

            quiet_mlflow(verbose=args.verbose)
            use_default_store()
        from scoring.history_command import run_history
        from scoring.policy_command import run_policy

        return {"score": _score, "spark-score": _spark_score, "history": run_history, "http": _http,
                "policy": run_policy, "load": _load}[args.command](args)
    except (DataContractError, ValueError, OSError, UnicodeError, RuntimeError) as error:
        # One line, personal data masked, bounded: the message is the whole answer.
        print(f"error: {bounded(error_text(error))}", file=sys.stderr)
        return 2


def _score(args) -> int:
    from scoring.score_job import run_score

    run = run_score(args)
    print("\n".join(run.summary_lines()))
    if run.monitor is not None:
        from scoring.drift import compare_with_previous_run

        report = compare_with_previous_run(run.monitor, args.monitoring_out, as_of=run.as_of, **run.identity)
        return _report_drift(args, report, run.identity)
    return 0


def _spark_score(args) -> int:
    from scoring.spark_job import run_spark_score

    print("\n".join(run_spark_score(args).summary_lines()))
    return 0


def _http(args) -> int:
    from scoring.http_server import serve_http

    serve_http(model_uri=args.model, host=args.host, port=args.port, workers=args.workers,
               max_body_bytes=args.max_body_bytes, max_leads=args.max_leads, verbose=args.verbose,
               scores=args.scores, history=args.history)
    return 0


def _load(args) -> int:
    from crm.database import connect
    from crm.export_loader import load_export

    database = connect(args.db)
    rows = load_export(args.file, database, args.table, chunk_rows=args.chunk_size)
    print(f"loaded {rows:,} rows from {args.file} into table {args.table} of {database.display}")
    return 0


def _report_drift(args, report, identity) -> int:
    """Print the drift summary (a warning when outside the bands), write the report, log an MLflow run."""
    from analysis.monitoring import record_drift

    path, run_id = record_drift(report, args.monitoring_out, identity=identity, model_uri=args.model,
                                as_of=args.as_of)
    status = report.overall_status
    stream = sys.stderr if status != "ok" else sys.stdout
    print(("WARNING: " if status != "ok" else "") + "\n".join(report.summary_lines()), file=stream)
    print(f"  monitoring report {path}; MLflow run {run_id} (tag kind=monitoring)", file=stream)
    return 3 if args.fail_on_drift and status == "alert" else 0


def _add_lead_base_arguments(parser, kind: str) -> None:
    """The model, the lead base, its time and freshness: the same for score and spark-score."""
    parser.add_argument("--model", help="MLflow model URI (default: the champion of the config's model_name, else "
                                        "models:/lead-conversion@champion)")
    parser.add_argument("--config", help="project config (TOML) of your export: reads its tables as it says")
    parser.add_argument("--leads", help=f"leads: {kind}; with --config, default: the config's")
    parser.add_argument("--events", help=f"event log: {kind}, when the model uses one")
    parser.add_argument("--deals", help="closed deals; leads closed before --as-of are not scored")
    parser.add_argument("--as-of", help="score as of this time (default: now, UTC)")
    parser.add_argument("--date-format", help="strftime format of dates whose day/month order the data cannot "
                                              "show, e.g. %%d/%%m/%%Y (default: the config's [data] date_format)")
    parser.add_argument("--no-reasons", dest="explain", action="store_false",
                        help="leave out fit/engagement sub-scores and reasons (faster)")
    parser.add_argument("--allow-stale", action="store_true",
                        help="score data that ends long before --as-of (else that stops, naming the --as-of to use)")
    parser.add_argument("--stale-after-days", type=float,
                        help="data ending more than this many days before --as-of is stale (default: a quarter of "
                             "the model's horizon, or 30 days)")


if __name__ == "__main__":
    sys.exit(main())
