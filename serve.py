"""Scoring entry point (``lead-serve``): ``score`` a whole lead base as of a date, or serve scores over ``http``.

    python serve.py score --model models:/lead-conversion@champion \
        --leads leads.parquet --events events.parquet --deals deals.parquet --out scores.parquet
    python serve.py score --model models:/my-model@champion --config config.toml --leads export.csv --out scores.csv
    python serve.py score --db postgresql://crm@db/crm --leads crm_leads --events crm_events --deals crm_deals \
        --out lead_scores
    python serve.py score ... --history score_history       # append to the history; adds previous score, trend
    python serve.py history --history score_history --lead 1000042
    python serve.py history --history score_history --evaluate --deals deals.parquet
    python serve.py http --model models:/lead-conversion@champion --host 127.0.0.1 --port 8000
    python serve.py spark-score --model models:/lead-conversion@champion --master "local[2]" \
        --leads leads.parquet --events events.parquet --deals deals.parquet --out scores_spark.parquet
    python serve.py spark-score --model models:/my-model@champion --config config.toml --out scores_spark.parquet
"""

from __future__ import annotations

import argparse
import gc
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    from command_line import HelpFormatter, add_common_arguments, package_version
    from scoring.policy_command import add_policy_parser

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
    score.add_argument("--db", help="database URL (postgresql://..., duckdb:///crm.duckdb or any SQLAlchemy URL): "
                                    "--leads, --events and --deals are then table names or SELECT queries in it")
    score.add_argument("--out", required=True,
                       help="output file (.parquet or .csv), or a table name in --out-db / --db; written atomically")
    score.add_argument("--out-db", help="database URL for an output table (default: --db)")
    score.add_argument("--sql-threshold", type=float, help="override the model's SQL probability threshold")
    score.add_argument("--mql-threshold", type=float, help="override the model's MQL probability threshold")
    score.add_argument("--chunk-size", type=int, default=100_000,
                       help="leads read and scored at a time; memory is bounded by it (default: %(default)s)")
    score.add_argument("--threads", type=int, help="threads for LightGBM (default: LEAD_SCORING_THREADS, the "
                                                   "config's [runtime] threads, else the cores this process may use)")
    score.add_argument("--no-reasons", dest="explain", action="store_false",
                       help="leave out fit/engagement sub-scores and reasons (faster)")
    _add_stale_arguments(score)
    score.add_argument("--date-format", help="strftime format of dates whose day/month order the data cannot "
                                             "show, e.g. %%d/%%m/%%Y (default: the config's [data] date_format)")
    score.add_argument("--history", help="score history folder (date-partitioned Parquet): this run is appended "
                                         "and the output gets each lead's previous score and trend")
    score.add_argument("--history-table", help="the same history as a table in --out-db / --db")
    score.add_argument("--no-monitoring", dest="monitoring", action="store_false",
                       help="skip the drift comparison with the model's training reference")
    score.add_argument("--monitoring-out", default="reports/monitoring",
                       help="folder for monitoring.html and its CSVs (default: %(default)s)")
    score.add_argument("--psi-warning", type=float, default=0.1, help="PSI from which a shift is a warning "
                                                                       "(default: %(default)s)")
    score.add_argument("--psi-alert", type=float, default=0.25, help="PSI from which a shift is an alert "
                                                                     "(default: %(default)s)")
    score.add_argument("--unseen-warning", type=float, default=0.05,
                       help="share of rows with categories unseen in training for a warning (default: %(default)s)")
    score.add_argument("--unseen-alert", type=float, default=0.25,
                       help="share of rows with unseen categories for an alert (default: %(default)s)")
    score.add_argument("--fail-on-drift", action="store_true",
                       help="exit with status 3 when monitoring raises an alert (the scores are still written)")

    add_common_arguments(score, experiment=False)

    history = commands.add_parser("history", help="a lead's score trajectory, or stored scores against outcomes")
    history.add_argument("--history", help="score history folder written by score --history")
    history.add_argument("--history-table", help="or the history table written by score --history-table (with --db)")
    history.add_argument("--lead", help="print this lead's trajectory")
    history.add_argument("--evaluate", action="store_true",
                         help="score every stored run against the outcomes that came later (needs --deals)")
    history.add_argument("--deals", help="closed deals (.csv or .parquet, or a table / query with --db)")
    history.add_argument("--db", help="database URL holding the history table and / or the deals table")
    history.add_argument("--horizon-days", type=float, default=90,
                         help="a score counts as right when the lead was won within this many days (default: 90)")
    history.add_argument("--until", help="outcomes known up to this time (default: the latest closed deal)")
    add_common_arguments(history, experiment=False)

    load = commands.add_parser("load", help="load a CSV or Parquet export into a database table",
                               description="Load a CSV or Parquet export into a table of a database, atomically "
                                           "(the table appears whole or not at all); score then reads it with --db.",
                               epilog="example:\n  lead-serve load --db postgresql://crm@db/crm --table crm_leads "
                                      "leads.csv", formatter_class=HelpFormatter)
    load.add_argument("file", help="the export (.csv or .parquet)")
    load.add_argument("--db", required=True, help="database URL (postgresql://..., duckdb:///crm.duckdb, ...)")
    load.add_argument("--table", required=True, help="table to write (replaced when it exists)")
    load.add_argument("--chunk-size", type=int, default=100_000, help="rows written at a time (default: %(default)s)")
    add_common_arguments(load, experiment=False)

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
    http.add_argument("--scores", help="the latest scoring run's output (.parquet or .csv): the open base the "
                                       "planner page (/planner) shows")
    http.add_argument("--history", help="or a score history folder: the planner shows its newest run")
    add_common_arguments(http, experiment=False)

    spark = commands.add_parser("spark-score", help="score every open lead on Apache Spark",
                                description="Each table is a Parquet file or folder (a name with '/' or ending "
                                            "in .parquet) or a Spark table name; the data contract's columns, or "
                                            "your export's as --config maps them.")
    spark.add_argument("--model", default="models:/lead-conversion@champion",
                       help="MLflow model URI (default: %(default)s)")
    spark.add_argument("--config", help="project config (TOML) of your export: reads its tables (Parquet or Spark "
                                        "tables) and maps them as score --config does")
    spark.add_argument("--leads", help="leads: Parquet or Spark table; with --config, default: the config's")
    spark.add_argument("--events", help="event log: Parquet or Spark table, when the model uses one")
    spark.add_argument("--deals", help="closed deals: leads closed before --as-of are not scored")
    spark.add_argument("--no-reasons", dest="explain", action="store_false",
                       help="leave out fit/engagement sub-scores and reasons (faster: the model as a Spark UDF)")
    spark.add_argument("--date-format", help="strftime format of text dates whose day/month order the data cannot "
                                             "show (default: the config's [data] date_format)")
    spark.add_argument("--as-of", help="score as of this time (default: now, UTC)")
    _add_stale_arguments(spark)
    spark.add_argument("--out", required=True, help="output: a Parquet folder (moved in place when complete) "
                                                    "or a Spark table")
    spark.add_argument("--master", help="Spark master, e.g. local[2] (default: spark-submit's, else local[*])")
    spark.add_argument("--buckets", type=int,
                       help="lead buckets built in one pandas call each (default: one per 100,000 leads)")
    add_common_arguments(spark, experiment=False)
    add_policy_parser(commands)
    return parser


def main(argv=None) -> int:
    from models.threads import arrow_system_allocator, sleep_while_waiting

    sleep_while_waiting()  # before LightGBM loads OpenMP: threads waiting at a barrier sleep, not spin
    arrow_system_allocator()  # before pyarrow loads: what Arrow frees is reused by the next chunk's arrays
    from command_line import configure

    args = build_parser().parse_args(argv)
    configure(args)
    if args.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    if args.command == "http":
        return serve_http(args)
    if args.command == "history":
        return show_history(args)
    if args.command == "load":
        return load_export_table(args)
    if args.command == "spark-score":
        return spark_score(args)
    if args.command == "policy":
        from scoring.policy_command import run_policy

        return run_policy(args)
    from crm.export import load_crm_or_config
    from crm.sources import stream_crm
    from features.contract import DataContractError, bounded
    from features.freshness import data_end
    from features.timing import naive_utc, utc_now
    from scoring.batch import check_output, score_lead_base
    from scoring.safe_outputs import refuse_outputs_that_are_inputs
    from models.explain import use_threads
    from scoring.drift import DriftMonitor
    from models.threads import limit_malloc_arenas, resolve_threads
    from registry.loading import load_bundle
    from registry.store import quiet_mlflow, use_default_store
    from registry.tier_policy import effective_thresholds

    quiet_mlflow(verbose=args.verbose)
    use_default_store()
    try:
        refuse_outputs_that_are_inputs(config_path=args.config, leads=args.leads, events=args.events,
                                       deals=args.deals, db=args.db, out=args.out, out_db=args.out_db,
                                       history=args.history, history_table=args.history_table,
                                       monitoring_out=args.monitoring_out if args.monitoring else None)
        if args.db is None and args.out_db is None and args.config is None:  # a file; tables: see _output
            check_output(args.out)  # before any work: a bad output path must not cost a whole scoring run
        as_of = _as_of(args.as_of, naive_utc) if args.as_of else utc_now()
        if args.config is None and args.leads is None:
            raise ValueError("score needs --leads, or --config with the export it describes.")
        limit_malloc_arenas()  # before scoring's threads start: memory bounded by the chunk
        if args.config is None and args.db is None and str(args.leads).lower().endswith((".parquet", ".pq")):
            # A typed Parquet lead table is streamed chunk by chunk; a CSV is read whole, so each
            # column's type (dates, ids, numbers) is decided once from all of its values.
            config = None
            leads, events, deals = stream_crm(args.leads, args.events, args.deals, now=max(as_of, utc_now()),
                                              chunk_rows=max(args.chunk_size, 1))
        else:
            config, leads, _, events, deals = load_crm_or_config(args.config, leads=args.leads, events=args.events,
                                                                 deals=args.deals, for_training=False,
                                                                 now=max(as_of, utc_now()),
                                                                 date_format=args.date_format, db=args.db)
        out = _output(args, config)
        bundle, identity = load_bundle(args.model)
        if not args.allow_stale:
            _refuse_stale(args, as_of, data_end(_lead_times(leads), events, _deal_times(deals)), bundle)
        use_threads(bundle.model, resolve_threads(args.threads, config_threads=config.runtime.get("threads")
                                                  if config is not None else None))
        thresholds = effective_thresholds(bundle, identity, sql=args.sql_threshold, mql=args.mql_threshold)
        monitor = None
        if args.monitoring and bundle.reference is not None:
            monitor = DriftMonitor(bundle.reference, psi_bands=(args.psi_warning, args.psi_alert),
                                   unseen_bands=(args.unseen_warning, args.unseen_alert))
        counts = score_lead_base(bundle, leads, events, as_of=as_of, out=out, deals=deals,
                                 model_version=identity["model_version"], thresholds=thresholds,
                                 chunk_size=args.chunk_size, explain=args.explain,
                                 progress_bar=not args.quiet and not args.verbose, monitor=monitor,
                                 progress=(lambda line: print(line, file=sys.stderr)) if args.verbose else None,
                                 history=_history(args, config), model_name=identity.get("model_name", ""))
    except (DataContractError, ValueError, OSError, UnicodeError) as error:
        # One line, personal data masked, bounded: the message is the whole answer.
        text = f"{error.filename}: {error.strerror or error}" if isinstance(error, OSError) and error.filename \
            else str(error)
        print(f"error: {bounded(text)}", file=sys.stderr)
        return 2
    where = args.out if isinstance(out, str) else f"table {args.out} of {out.database.display}"
    print(f"wrote {int(counts.sum()):,} scores as of {as_of} to {where} "
          f"(model {identity.get('model_name', '')} version {identity['model_version']})")
    _print_tiers(counts)
    if monitor is not None and getattr(monitor, "rows_", 0):
        from scoring.drift import compare_with_previous_run

        return _report_drift(args, compare_with_previous_run(monitor, args.monitoring_out, as_of=as_of, **identity),
                             identity)
    return 0


def _print_tiers(counts) -> None:
    """Leads per tier, best tier first, the same for every scoring route."""
    from models.tiers import TIERS

    for tier in TIERS:
        print(f"  {tier:<8}{counts.get(tier, 0):>10,}")


def _add_stale_arguments(parser) -> None:
    """``--allow-stale`` and ``--stale-after-days``: the same staleness check for score and spark-score."""
    parser.add_argument("--allow-stale", action="store_true",
                        help="score even when the data ends long before --as-of (by default that stops with the "
                             "--as-of to use)")
    parser.add_argument("--stale-after-days", type=float,
                        help="data ending more than this many days before --as-of is stale (default: a quarter of "
                             "the model's horizon, or 30 days)")


def _refuse_stale(args, as_of, end, bundle) -> None:
    """Stop when the data (newest lead, event or deal) ends long before ``as_of`` (callers skip it on ``--allow-stale``)."""
    from features.freshness import refuse_stale

    refuse_stale(as_of, end, horizon_days=bundle.metadata.get("params", {}).get("horizon_days"),
                 days=args.stale_after_days, source="The data (newest lead, event or deal)")


def _as_of(text: str, naive_utc):
    import pandas as pd

    try:
        return naive_utc(pd.Timestamp(text))
    except ValueError:
        raise ValueError(f"--as-of {text!r}: expected a time such as 2025-03-01 or 2025-03-01T12:00:00Z.") from None


def _deal_times(deals):
    """The deals' closing times for the staleness check: the frame, or a streamed table's newest first closing."""
    import pandas as pd

    if deals is None or isinstance(deals, pd.DataFrame):
        return deals
    return pd.DataFrame({"closed_at": [deals.latest]}) if deals.latest is not None else None


def _lead_times(leads):
    """The leads' creation times for the staleness check: the frame, or a streamed Parquet's one column."""
    import pandas as pd

    if isinstance(leads, pd.DataFrame):
        return leads
    path = getattr(getattr(leads, "source", None), "path", None)
    if path is not None and str(path).lower().endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        if "created_at" in pq.read_schema(path).names:
            from features.timing import naive_utc

            return pd.DataFrame({"created_at": naive_utc(pq.read_table(path, columns=["created_at"])
                                                         .column("created_at").to_pandas())})
    return pd.DataFrame()


def _report_drift(args, report, identity) -> int:
    """Print the drift summary (a warning when outside the bands), write the report, log an MLflow run."""
    from analysis.monitoring import write_monitoring_report
    from registry.runs import log_monitoring

    path = write_monitoring_report(report, args.monitoring_out,
                                   title=f"{identity.get('model_name', '')} version {identity['model_version']}")
    run_id = log_monitoring(report, report_path=path, model_uri=args.model, identity=identity, as_of=args.as_of)
    lines = report.summary_lines()
    stream = sys.stderr if report.overall_status != "ok" else sys.stdout
    print(("WARNING: " if report.overall_status != "ok" else "") + lines[0], file=stream)
    for line in lines[1:]:
        print(line, file=stream)
    print(f"  monitoring report {path}; MLflow run {run_id} (tag kind=monitoring)", file=stream)
    return 3 if args.fail_on_drift and report.overall_status == "alert" else 0


def _history(args, project=None):
    """The score history the arguments name: a Parquet folder, a table in a database, or None."""
    from scoring.history import ScoreHistory, TableHistory

    if args.history and args.history_table:
        raise ValueError("Give one score history: --history FOLDER or --history-table TABLE.")
    if args.history:
        return ScoreHistory(args.history)
    if not args.history_table:
        return None
    url = getattr(args, "out_db", None) or args.db or (project.url if project is not None else None)
    if url is None:
        raise ValueError("--history-table needs the database it lives in: --db (or --out-db).")
    from crm.database import connect

    return TableHistory(connect(url), args.history_table)


def load_export_table(args) -> int:
    """``load FILE --db URL --table NAME``: an export into a database table (crm.export_loader)."""
    from crm.database import connect
    from crm.export_loader import load_export
    from features.contract import DataContractError, bounded

    try:
        database = connect(args.db)
        rows = load_export(args.file, database, args.table, chunk_rows=args.chunk_size)
    except (DataContractError, ValueError, OSError) as error:
        text = f"{error.filename}: {error.strerror}" if isinstance(error, OSError) and error.filename else str(error)
        print(f"error: {bounded(text)}", file=sys.stderr)
        return 2
    print(f"loaded {rows:,} rows from {args.file} into table {args.table} of {database.display}")
    return 0


def show_history(args) -> int:
    """``history --lead ID``: one lead's trajectory; ``history --evaluate``: stored runs against later outcomes."""
    from features.contract import DataContractError

    try:
        history = _history(args)
        if history is None:
            raise ValueError("history needs --history FOLDER or --history-table TABLE (with --db).")
        if args.evaluate:
            return _evaluate_history(args, history)
        if not args.lead:
            raise ValueError("history needs --lead ID (a trajectory) or --evaluate (stored scores vs outcomes).")
        rows = history.read(lead_id=args.lead)
    except (DataContractError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if rows.empty:
        print(f"error: lead {args.lead} has no stored score in {args.history or args.history_table}.", file=sys.stderr)
        return 1
    columns = [column for column in ("scored_at", "as_of", "model_name", "model_version", "score", "tier", "trend",
                                     "fit_score", "engagement_score", "positive_reason_1", "negative_reason_1")
               if column in rows.columns]
    print(f"lead {args.lead}: {len(rows)} stored score(s)")
    print(rows[columns].to_string(index=False, float_format=lambda value: f"{value:.1f}"))
    return 0


def _evaluate_history(args, history) -> int:
    from analysis.history import evaluate_history
    from crm.readers import read_table
    from features.timing import naive_utc

    if not args.deals:
        raise ValueError("history --evaluate needs --deals (a file, or a table / query with --db).")
    if args.db:
        from crm.database import connect, read_source

        deals = read_source(connect(args.db), args.deals)
    else:
        deals = read_table(args.deals, text_columns=("lead_id",), table="deals")  # ids as text, as stored
    table = evaluate_history(history.read(), deals, horizon_days=args.horizon_days,
                             until=naive_utc(args.until) if args.until else None)
    print(f"stored scores against outcomes within {args.horizon_days:g} days (runs whose horizon has not "
          "passed count only leads already closed):")
    print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    return 0


def _output(args, project):
    """The output file path, or a table writer when --out names a table in a database."""
    from pathlib import Path

    if Path(args.out).suffix.lower() in (".parquet", ".csv"):
        from scoring.batch import check_output

        check_output(args.out)  # before any scoring: a bad output path must not cost a whole run
        return args.out
    url = args.out_db or args.db or (project.url if project is not None else None)
    if url is None:
        raise ValueError(f"--out {args.out!r} is neither a .parquet nor a .csv file; to write a table, give the "
                         "database with --out-db or --db.")
    from crm.database import connect

    return connect(url).write_table(args.out)
def spark_score(args) -> int:
    """Features on the cluster with the same builders, scored per partition with reasons (or by the model as a UDF)."""
    from features.contract import DataContractError
    from features.timing import naive_utc, utc_now
    from scoring.spark import (build_features_on_spark, check_source, export_tables, read_source,
                              score_features_on_spark, score_with_reasons_on_spark, spark_error_message,
                              spark_session, split_data_end, write_scores)
    from registry.loading import load_bundle, spark_model_udf
    from registry.store import use_default_store
    from registry.tier_policy import effective_thresholds
    from scoring.safe_outputs import refuse_outputs_that_are_inputs

    use_default_store()
    try:
        as_of = naive_utc(args.as_of) if args.as_of else utc_now()
        config = None
        sources = {"leads": args.leads, "events": args.events, "deals": args.deals}
        if args.config is not None:
            from crm.config import load_config

            config, sources = export_tables(load_config(args.config), **sources)
        elif args.leads is None:
            raise ValueError("spark-score needs --leads, or --config with the export it describes.")
        refuse_outputs_that_are_inputs(config_path=args.config, leads=args.leads, events=args.events,
                                       deals=args.deals, out=args.out)
        for source in sources.values():
            if source:
                check_source(source)  # before the JVM starts
        bundle, identity = load_bundle(args.model)
        spark = spark_session(args.master)
        tables = {name: read_source(spark, source) if source else None for name, source in sources.items()}
        features = build_features_on_spark(tables["leads"], tables["events"], bundle.spec, as_of=as_of,
                                           deals=tables["deals"], buckets=args.buckets, config=config,
                                           sources=sources, date_format=args.date_format,
                                           with_data_end=not args.allow_stale)
        if not args.allow_stale:  # the newest time of each bucket, read once the features are built
            features, end = split_data_end(features)
            _refuse_stale(args, as_of, end, bundle)
        thresholds = effective_thresholds(bundle, identity)  # a saved tier policy, else the model's own
        if args.explain:
            scores = score_with_reasons_on_spark(features, bundle, model_version=identity["model_version"],
                                                 thresholds=thresholds)
        else:
            scores = score_features_on_spark(features, spark_model_udf(spark, identity["pinned_uri"]),
                                             bundle.spec.feature_names,
                                             model_version=identity["model_version"], thresholds=thresholds)
        write_scores(scores, args.out)
        counts = {row["tier"]: row["count"] for row in read_source(spark, args.out).groupBy("tier").count().collect()}
    except (DataContractError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        message = spark_error_message(error)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(f"wrote {sum(counts.values()):,} scores as of {as_of} to {args.out} on Spark "
          f"(model {identity.get('model_name', '')} version {identity['model_version']})")
    _print_tiers(counts)
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
    from registry.loading import load_bundle, pinned_model_uri
    from scoring.http_guards import KEEP_ALIVE_SECONDS
    from registry.store import use_default_store

    workers = args.workers if args.workers is not None else available_cores()
    if workers <= 0:
        print(f"error: --workers must be positive. Got {workers}.", file=sys.stderr)
        return 2
    use_default_store()
    try:
        pinned = pinned_model_uri(args.model)
        load_bundle(pinned)  # fail here, in one line, rather than in every worker
    except Exception as error:  # noqa: BLE001 - the CLI boundary: any reason the model cannot load
        from features.contract import bounded

        print(f"error: {bounded(str(error))}", file=sys.stderr)
        return 2
    os.environ[HTTP_SETTINGS_VARIABLE] = json.dumps({
        "model_uri": args.model, "pinned_uri": pinned, "workers": workers,
        "max_body_bytes": args.max_body_bytes, "max_leads": args.max_leads,
        "verbose": args.verbose, "scores": args.scores, "history": args.history})
    print(f"serving {args.model} on http://{args.host}:{args.port} with {workers} worker(s); "
          f"tier planner: http://{args.host}:{args.port}/planner", file=sys.stderr, flush=True)
    # No access log: one line per request costs more than scoring a lead.
    # Limits on header size and on the time to send a request, before any app code (scoring/http_guards.py).
    uvicorn.run("serve:http_app", factory=True, workers=workers, host=args.host, port=args.port,
                log_level="warning", access_log=False, http="scoring.http_guards:GuardedHttpToolsProtocol",
                timeout_keep_alive=KEEP_ALIVE_SECONDS)
    return 0


HTTP_SETTINGS_VARIABLE = "LEAD_SCORING_HTTP_SETTINGS"


def http_app():
    """One worker's app: load the model once, from the settings ``serve_http`` put in the environment."""
    import dataclasses
    import json

    from models.explain import use_threads
    from registry.tier_policy import effective_thresholds
    from scoring.planner import OpenBase
    from scoring.service import TOKEN_ENVIRONMENT_VARIABLE, create_app
    from models.threads import available_cores, sleep_while_waiting
    from registry.loading import load_bundle
    from registry.store import quiet_mlflow, use_default_store

    sleep_while_waiting()
    settings = json.loads(os.environ[HTTP_SETTINGS_VARIABLE])
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


if __name__ == "__main__":
    sys.exit(main())
