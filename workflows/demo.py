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


def demo(args) -> int:
    """``lead-train demo``: the whole path on a synthetic CRM, with the arguments of ``generate`` and ``train``."""
    from crm.readers import load_crm
    from crm.synthetic import load_truth
    from models.rules import EXAMPLE_RULES
    from registry.loading import load_bundle
    from scoring.batch import score_lead_base
    from scoring.drift import DriftMonitor

    write_synthetic_crm(args.out, leads=args.leads, months=args.months, seed=args.seed)
    folder = Path(args.out)
    leads, events, deals = load_crm(folder / "leads.parquet", folder / "events.parquet", folder / "deals.parquet")
    truth = load_truth(folder)
    args.report_out = str(folder / "training_report")
    result, _ = train_and_log(args, leads, events, deals, truth=truth)
    model_uri = f"models:/{args.model_name}@champion"
    bundle, identity = load_bundle(model_uri)
    as_of = pd.Timestamp(result.params["data_end"])
    out = folder / "scores.parquet"
    monitor = DriftMonitor(bundle.reference) if bundle.reference is not None else None
    with step("scoring the open leads"):
        counts = score_lead_base(bundle, leads, events, as_of=as_of, out=out, deals=deals, monitor=monitor,
                                 model_version=identity["model_version"], progress=log.info)
    print(f"\nscored {int(counts.sum()):,} open leads as of {as_of.date()} with {model_uri} "
          f"(version {identity['model_version']}) -> {out}")
    print("  " + ", ".join(f"{tier} {count:,}" for tier, count in counts.items()))

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


def write_synthetic_crm(out, *, leads: int, months: int, seed: int):
    """Generate a synthetic CRM and write it to the folder ``out`` (Parquet and truth files); returns it."""
    from crm.synthetic import generate_crm, write_crm

    started = time.perf_counter()
    with step(f"generating {leads:,} synthetic leads"):
        crm = generate_crm(leads, months=months, seed=seed)
        write_crm(crm, out)
    print(f"wrote {len(crm.leads):,} leads, {len(crm.events):,} events and {len(crm.deals):,} deals "
          f"to {out} in {time.perf_counter() - started:.1f} s")
    return crm
