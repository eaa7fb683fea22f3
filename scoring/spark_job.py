"""One Spark scoring run as ``lead-serve spark-score`` makes it: each bucket of leads built and scored on the cluster."""

from __future__ import annotations

import pandas as pd

from features.timing import naive_utc, utc_now
from scoring.score_job import ScoreRun, refuse_stale_data


def run_spark_score(args) -> ScoreRun:
    """Features built and scored (with reasons unless ``--no-reasons``) on Spark, bucket by bucket.

    Spark's own errors that a user can act on (a missing file, a bad column) become a ``RuntimeError``
    with a sentence; others propagate.
    """
    from scoring.spark import spark_error_message

    try:
        return _run_spark_score(args)
    except (ValueError, RuntimeError):
        raise
    except Exception as error:
        message = spark_error_message(error)
        if message is None:
            raise
        raise RuntimeError(message) from None


def _run_spark_score(args) -> ScoreRun:
    from registry import default_model_uri
    from registry.loading import load_bundle
    from scoring.safe_outputs import refuse_outputs_that_are_inputs
    from scoring.spark import check_source, export_tables, read_source, spark_session

    as_of = naive_utc(args.as_of) if args.as_of else utc_now()
    config = None
    sources = {"leads": args.leads, "events": args.events, "deals": args.deals}
    if args.config is not None:
        from crm.config import load_config

        config, sources = export_tables(load_config(args.config), **sources)
    elif args.leads is None:
        raise ValueError("spark-score needs --leads, or --config with the export it describes.")
    refuse_outputs_that_are_inputs(config_path=args.config, leads=args.leads, events=args.events, deals=args.deals,
                                   out=args.out)
    for source in sources.values():
        if source:
            check_source(source)  # before the JVM starts
    args.model = args.model or default_model_uri(args.config)  # the config's own champion, never another's
    bundle, identity = load_bundle(args.model)
    spark = spark_session(args.master)
    tables = {name: read_source(spark, source) if source else None for name, source in sources.items()}
    try:
        return _score_tables(args, tables, sources, bundle, identity, config, as_of, spark)
    except Exception as error:
        if "CAST_INVALID_INPUT" in str(error) and config is None:  # a text time Spark's cast cannot read
            from scoring.spark_checks import explain_unread_times

            explain_unread_times(tables, sources)
        raise


def _score_tables(args, tables, sources, bundle, identity, config, as_of, spark) -> ScoreRun:
    from registry.tier_policy import effective_thresholds
    from scoring.spark import read_source, write_scores
    from scoring.spark_features import split_data_end
    from scoring.spark_scores import score_lead_base_on_spark

    thresholds = effective_thresholds(bundle, identity)  # a saved tier policy, else the model's own
    # Features, probabilities (and reasons) of a bucket in one Python call: no second pass over the rows.
    scores = score_lead_base_on_spark(tables["leads"], tables["events"], bundle, as_of=as_of, deals=tables["deals"],
                                      explain=args.explain, model_version=identity["model_version"],
                                      thresholds=thresholds, buckets=args.buckets, config=config, sources=sources,
                                      date_format=args.date_format, with_data_end=not args.allow_stale)
    if not args.allow_stale:  # the newest time of each bucket, read once the rows are built
        scores, end = split_data_end(scores)
        refuse_stale_data(as_of, end, bundle, stale_after_days=args.stale_after_days)
    write_scores(scores, args.out)
    counts = pd.Series({row["tier"]: row["count"] for row in read_source(spark, args.out).groupBy("tier").count()
                        .collect()}, dtype="int64")
    return ScoreRun(counts=counts, as_of=as_of, where=f"{args.out} on Spark", identity=identity)
