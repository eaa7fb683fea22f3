"""The demo: a synthetic CRM generated, a model trained and registered, the open leads scored, the rules compared."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import pandas as pd

from command_line import step
from workflows.comparison import BOOTSTRAP, DISAGREEMENTS, compare
from workflows.training_run import train_and_log

log = logging.getLogger("lead_scoring")
#: Months of the same world generated past the training data: the outcomes the demo's scores are judged on.
FORWARD_MONTHS = 3
CONTINUED = "continued"


def demo(args) -> int:
    """``lead-train demo``: the whole path on a synthetic CRM, with the arguments of ``generate`` and ``train``."""
    from crm.readers import load_crm
    from crm.synthetic import load_truth
    from models.rules import EXAMPLE_RULES
    from registry.loading import load_bundle
    from scoring.batch import score_lead_base
    from scoring.drift import DriftMonitor
    from scoring.history import ScoreHistory

    forward_months = getattr(args, "forward_months", FORWARD_MONTHS)
    write_synthetic_crm(args.out, leads=args.leads, months=args.months, seed=args.seed, forward_months=forward_months)
    folder = Path(args.out)
    leads, events, deals = load_crm(folder / "leads.parquet", folder / "events.parquet", folder / "deals.parquet")
    truth = load_truth(folder)
    args.report_out = str(folder / "training_report")
    if getattr(args, "refit", None) is None:  # the champion that scores the open base is refit on everything known
        args.refit = True
    result, logged = train_and_log(args, leads, events, deals, truth=truth)
    # The version this run registered, promoted or held for review: the demo shows its own model either way
    # (a held one is said above, with the command that promotes it).
    model_uri = f"models:/{args.model_name}/{logged['version']}"
    bundle, identity = load_bundle(model_uri)
    as_of = pd.Timestamp(result.params["data_end"])
    out = folder / "scores.parquet"
    monitor = DriftMonitor(bundle.reference) if bundle.reference is not None else None
    history = ScoreHistory(folder / "score_history")
    with step("scoring the open leads"):
        counts = score_lead_base(bundle, leads, events, as_of=as_of, out=out, deals=deals, monitor=monitor,
                                 model_version=identity["model_version"], progress=log.info, history=history,
                                 model_name=args.model_name)
    print(f"\nscored {int(counts.sum()):,} open leads as of {as_of.date()} with {model_uri} -> {out}")
    print("  " + ", ".join(f"{tier} {count:,}" for tier, count in counts.items()))

    if forward_months:
        print(forward_evaluation(history, folder, truth=truth, horizon_days=result.params["horizon_days"]))

    code = compare(argparse.Namespace(
        model=model_uri, rules=str(EXAMPLE_RULES), config=None, out=str(folder / "compare"),
        scorecard_out=str(folder / "learned_points.toml"), date_format=None, log_lead_rows=False,
        disagreements=DISAGREEMENTS, bootstrap=BOOTSTRAP, experiment=args.experiment, verbose=args.verbose,
        **{name: str(folder / f"{name}.parquet") for name in ("leads", "events", "deals")}))
    if monitor is not None:  # last, so the demo ends with it: the scored base against the model's reference
        from analysis.monitoring import record_drift
        from scoring.drift import compare_with_previous_run

        report = compare_with_previous_run(monitor, folder / "monitoring", as_of=as_of, **identity)
        page, _ = record_drift(report, folder / "monitoring", identity=identity, model_uri=identity.get("model_uri"),
                               as_of=as_of)
        print("\n" + "\n".join(report.summary_lines()) + f"\n  monitoring report {page}")
    print(f"\nplan the tiers: {os.path.relpath(Path(sys.executable).with_name('lead-serve'))} http --model {model_uri} "
          f"--scores {out}  then open http://127.0.0.1:8000/planner")
    return code


def write_synthetic_crm(out, *, leads: int, months: int, seed: int, forward_months: int = 0):
    """Generate a synthetic CRM and write it to the folder ``out`` (Parquet and truth files); returns it.

    With ``forward_months``, the same world runs that many months longer: ``out`` gets the export as
    it stood after ``months`` and ``out/continued`` the whole world's tables, whose later deals say
    what became of the leads scored at that moment. ``leads`` are created over all the months.
    """
    from crm.synthetic import as_it_stood, generate_crm, write_crm

    started = time.perf_counter()
    with step(f"generating {leads:,} synthetic leads"):
        world = generate_crm(leads, months=months + forward_months, seed=seed)
        crm = as_it_stood(world, world.end - pd.DateOffset(months=forward_months)) if forward_months else world
        write_crm(crm, out)
        if forward_months:
            write_crm(world, Path(out) / CONTINUED)
    print(f"wrote {len(crm.leads):,} leads, {len(crm.events):,} events and {len(crm.deals):,} deals "
          f"to {out} in {time.perf_counter() - started:.1f} s"
          + (f"; the same world {forward_months} months on to {Path(out) / CONTINUED}" if forward_months else ""))
    return crm


def forward_evaluation(history, folder, *, truth, horizon_days) -> str:
    """The stored scores against what the continued world did within the horizon, beside the oracle's ranking
    of the same leads: what ``lead-serve history --evaluate`` shows, plus the gap no real export can know."""
    from sklearn.metrics import roc_auc_score

    from scoring.history import read_outcomes
    from scoring.history_evaluation import evaluate_history, outcome_labels

    continued = Path(folder) / CONTINUED
    deals = read_outcomes(str(continued / "deals.parquet"))
    table = evaluate_history(history.read(), deals, horizon_days=horizon_days)
    lines = [f"\nforward evaluation: the scores stored at the end of the training data against the next "
             f"{horizon_days:g} days of the same world ({continued}):",
             table[["as_of", "leads", "resolved", "conversions", "predicted_conversions", "roc_auc", "brier"]]
             .to_string(index=False, float_format="{:.4f}".format)]
    if truth is not None:
        scored = outcome_labels(history.read(), deals, horizon_days=horizon_days)
        # This run's scores (the newest): an earlier demo's stay in the history, and in the table above.
        newest = scored["resolved"] & scored["scored_at"].eq(scored["scored_at"].max())
        scored = scored.loc[newest].assign(lead_id=lambda rows: rows["lead_id"].astype("int64"))
        # A lead created at the very moment scored has no stage before it: the oracle cannot speak for it.
        created = truth.spells.groupby("lead_id")["started_at"].min().reindex(scored["lead_id"]).to_numpy()
        scored = scored.loc[created < pd.to_datetime(scored["as_of"]).to_numpy()]
        oracle = roc_auc_score(scored["label"], truth.oracle_probability(scored, horizon_days=horizon_days))
        model = roc_auc_score(scored["label"], scored["probability"])
        lines.append(f"  forward ROC AUC {model:.4f}, oracle {oracle:.4f}: gap {oracle - model:.4f} on "
                     f"{len(scored):,} open leads ({int(scored['label'].sum()):,} converted)")
    lines.append(f"  the same from the history: {os.path.relpath(Path(sys.executable).with_name('lead-serve'))} "
                 f"history --history {Path(folder) / 'score_history'} --evaluate --deals {continued / 'deals.parquet'}")
    return "\n".join(lines)
