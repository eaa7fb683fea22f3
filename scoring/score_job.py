"""One batch scoring run as ``lead-serve score`` makes it: read the base, check it is fresh, load the model, score.

The command line parses and prints; this module does the work and raises ``ValueError`` (or a
:class:`features.contract.DataContractError`) with a sentence for anything the user can fix.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.timing import naive_utc, utc_now


@dataclass
class ScoreRun:
    """What a scoring run did: leads per tier (best first), the time scored, where, by which model, drift counts."""

    counts: pd.Series
    as_of: pd.Timestamp
    where: str
    identity: dict
    monitor: object = None

    def summary_lines(self) -> list[str]:
        """The run in one line, then leads per tier, best tier first: the same for every scoring route."""
        from models.tiers import TIERS

        lines = [f"wrote {int(self.counts.sum()):,} scores as of {self.as_of} to {self.where} "
                 f"(model {self.identity.get('model_name', '')} version {self.identity['model_version']})"]
        return lines + [f"  {tier:<8}{int(self.counts.get(tier, 0)):>10,}" for tier in TIERS]


def run_score(args) -> ScoreRun:
    """Score every open lead the arguments of ``lead-serve score`` name (see ``serve.py --help``)."""
    from crm.export import load_crm_or_config
    from crm.sources import stream_crm
    from features.freshness import data_end
    from models.explain import use_threads
    from models.threads import limit_malloc_arenas, resolve_threads
    from registry import default_model_uri
    from registry.loading import load_bundle
    from registry.tier_policy import effective_thresholds
    from scoring.batch import score_lead_base
    from scoring.score_file import check_output
    from scoring.drift import DriftMonitor
    from scoring.history import open_history
    from scoring.safe_outputs import refuse_outputs_that_are_inputs

    refuse_outputs_that_are_inputs(config_path=args.config, leads=args.leads, events=args.events, deals=args.deals,
                                   db=args.db, out=args.out, out_db=args.out_db, history=args.history,
                                   history_table=args.history_table,
                                   monitoring_out=args.monitoring_out if args.monitoring else None)
    if args.db is None and args.out_db is None and args.config is None:  # a file; tables: see output_target
        check_output(args.out)  # before any work: a bad output path must not cost a whole scoring run
    as_of = parse_as_of(args.as_of) if args.as_of else utc_now()
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
    out = output_target(args.out, out_db=args.out_db, db=args.db, project=config)
    args.model = args.model or default_model_uri(args.config)  # the config's own champion, never another's
    bundle, identity = load_bundle(args.model)
    if not args.allow_stale:
        refuse_stale_data(as_of, data_end(lead_times(leads), events, deal_times(deals)), bundle,
                          stale_after_days=args.stale_after_days)
    use_threads(bundle.model, resolve_threads(args.threads, config_threads=config.runtime.get("threads")
                                              if config is not None else None))
    # A saved tier policy (lead-serve policy, the planner page), else the model's own; flags win over both.
    thresholds = effective_thresholds(bundle, identity, sql=args.sql_threshold, mql=args.mql_threshold)
    monitor = None
    if args.monitoring and bundle.reference is not None:
        monitor = DriftMonitor(bundle.reference, psi_bands=(args.psi_warning, args.psi_alert),
                               unseen_bands=(args.unseen_warning, args.unseen_alert))
    history = open_history(args.history, args.history_table,
                           url=args.out_db or args.db or (config.url if config is not None else None))
    counts = score_lead_base(bundle, leads, events, as_of=as_of, out=out, deals=deals,
                             model_version=identity["model_version"], thresholds=thresholds,
                             chunk_size=args.chunk_size, explain=args.explain,
                             progress_bar=not args.quiet and not args.verbose, monitor=monitor,
                             progress=(lambda line: print(line, file=sys.stderr)) if args.verbose else None,
                             history=history, model_name=identity.get("model_name", ""))
    where = args.out if isinstance(out, str) else f"table {args.out} of {out.database.display}"
    return ScoreRun(counts=counts, as_of=as_of, where=where, identity=identity,
                    monitor=monitor if monitor is not None and getattr(monitor, "rows_", 0) else None)


def output_target(out: str, *, out_db=None, db=None, project=None):
    """The output file path, or a table writer when ``out`` names a table in a database."""
    if Path(out).suffix.lower() in (".parquet", ".csv"):
        from scoring.score_file import check_output

        check_output(out)  # before any scoring: a bad output path must not cost a whole run
        return out
    url = out_db or db or (project.url if project is not None else None)
    if url is None:
        raise ValueError(f"--out {out!r} is neither a .parquet nor a .csv file; to write a table, give the "
                         "database with --out-db or --db.")
    from crm.database import connect

    return connect(url).write_table_retried(out)  # a dropped connection costs a retry of the write, not the run


def refuse_stale_data(as_of, end, bundle, *, stale_after_days=None) -> None:
    """Stop when the data (newest lead, event or deal) ends long before ``as_of``: the same check on every route."""
    from features.freshness import refuse_stale

    refuse_stale(as_of, end, horizon_days=bundle.metadata.get("params", {}).get("horizon_days"),
                 days=stale_after_days, source="The data (newest lead, event or deal)")


def parse_as_of(text: str) -> pd.Timestamp:
    """``--as-of`` as a naive UTC time, or a sentence saying what was expected."""
    try:
        return naive_utc(pd.Timestamp(text))
    except ValueError:
        raise ValueError(f"--as-of {text!r}: expected a time such as 2025-03-01 or 2025-03-01T12:00:00Z.") from None


def deal_times(deals):
    """The deals' closing times for the staleness check: the frame, or a streamed table's newest first closing."""
    if deals is None or isinstance(deals, pd.DataFrame):
        return deals
    return pd.DataFrame({"closed_at": [deals.latest]}) if deals.latest is not None else None


def lead_times(leads):
    """The leads' creation times for the staleness check: the frame, or a streamed Parquet's one column."""
    if isinstance(leads, pd.DataFrame):
        return leads
    path = getattr(getattr(leads, "source", None), "path", None)
    if path is not None and str(path).lower().endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        if "created_at" in pq.read_schema(path).names:
            return pd.DataFrame({"created_at": naive_utc(pq.read_table(path, columns=["created_at"])
                                                         .column("created_at").to_pandas())})
    return pd.DataFrame()
