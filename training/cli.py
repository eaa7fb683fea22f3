"""Command line: ``lead-train`` (or ``python -m training``) ``{generate,init-config,train,compare,demo}``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from models.tiers import CapacityPolicy, PrecisionPolicy
from training.console import HelpFormatter, add_common_arguments, configure, package_version, show_warning, step

log = logging.getLogger("lead_scoring")

DEFAULT_MODEL_NAME = "lead-conversion"
EXAMPLE_RULES = Path(__file__).resolve().parent.parent / "models" / "rules_example.toml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lead-train", formatter_class=HelpFormatter,
        description="Train lead-conversion models on closed deals, compare them with points rules.",
        epilog="examples:\n  lead-train demo\n  lead-train train --config config.toml\n"
               "  lead-train <command> --help    (options and an example of each command)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help_text, example):
        sub = commands.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
                                  formatter_class=HelpFormatter, epilog=f"example:\n  {example}")
        return sub

    generate = command("generate", "write a synthetic CRM (leads, events, deals) as Parquet",
                       "lead-train generate --out data/demo --leads 20000 --months 18")
    generate.add_argument("--out", default="data/demo", help="folder to write")
    _add_generator_arguments(generate)
    add_common_arguments(generate, tracking=False)

    init = command("init-config", "guess column roles in an export and write a project config",
                   "lead-train init-config --leads export.csv --out config.toml")
    init.add_argument("--leads", required=True, help="the lead table export (.csv or .parquet)")
    init.add_argument("--events", help="the event log export, if any (.csv or .parquet)")
    init.add_argument("--deals", help="the closed-deals export, if any (.csv or .parquet); replaces a label column")
    init.add_argument("--out", default="config.toml", help="config file to write")
    init.add_argument("--force", action="store_true", help="overwrite an existing config file")
    add_common_arguments(init, tracking=False)

    train = command("train", "train, calibrate, evaluate and register a model",
                    "lead-train train --leads leads.csv --events events.parquet --deals deals.csv")
    train.add_argument("--config", help="project config (TOML) mapping your export; replaces the three tables")
    train.add_argument("--leads", help="leads table (.csv or .parquet); with --config, overrides its file")
    train.add_argument("--events", help="event log (.csv or .parquet)")
    train.add_argument("--deals", help="closed deals (.csv or .parquet)")
    train.add_argument("--db", help="database URL (postgresql://..., duckdb:///crm.duckdb or any SQLAlchemy URL): "
                                    "--leads, --events and --deals are then table names or SELECT queries in it")
    train.add_argument("--truth", help="folder with the synthetic generator's truth files (adds oracle AUC)")
    _add_training_arguments(train)
    train.add_argument("--report-out", default="reports/training",
                       help="folder for the training report (training_report.html, CSVs); also logged to MLflow")
    add_common_arguments(train)

    compare = command("compare", "compare a model with points rules on its test snapshots",
                      "lead-train compare --model models:/lead-conversion@champion --rules my_rules.toml "
                      "--leads leads.csv --events events.parquet --deals deals.csv\n"
                      "  lead-train compare --model models:/my-model@champion --config config.toml --rules my_rules.toml")
    compare.add_argument("--model", default="models:/lead-conversion@champion", help="model URI")
    compare.add_argument("--rules", help="points rules TOML (default: the example rules of models/rules_example.toml)")
    compare.add_argument("--config", help="project config (TOML) of your export: reads the tables as it says "
                                          "(three tables, or a single lead table with its outcome column)")
    compare.add_argument("--leads", help="leads table (.csv or .parquet); with --config, overrides its file")
    compare.add_argument("--events", help="event log (.csv or .parquet)")
    compare.add_argument("--deals", help="closed deals (.csv or .parquet)")
    compare.add_argument("--out", default="reports/compare", help="folder for report.html and CSVs")
    compare.add_argument("--scorecard-out", help="also fit a learned points table on the training split, write it here")
    compare.add_argument("--disagreements", type=int, default=10, help="leads listed each way where they disagree")
    compare.add_argument("--bootstrap", type=int, default=200,
                         help="bootstrap resamples of the test leads for the intervals (0: none)")
    add_common_arguments(compare)

    demo = command("demo", "generate synthetic data, train, register, score, report",
                   "lead-train demo --leads 5000 --months 15")
    demo.add_argument("--out", default="data/demo", help="folder for the generated data and scores")
    _add_generator_arguments(demo)
    _add_training_arguments(demo)
    add_common_arguments(demo)
    return parser


def main(argv=None) -> int:
    from models.threads import sleep_while_waiting

    sleep_while_waiting()  # before LightGBM loads OpenMP: threads waiting at a barrier sleep, not spin
    args = build_parser().parse_args(argv)
    from features.contract import DataContractError

    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if getattr(args, "tracking_uri", None):
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    try:
        with warnings.catch_warnings():
            configure(args)  # logging levels, and warning filters that end with this block
            warnings.showwarning = show_warning
            return {"generate": _generate, "init-config": _init_config, "train": _train, "compare": _compare,
                    "demo": _demo}[args.command](args)
    except (DataContractError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if getattr(args, "tracking_uri", None):  # in-process callers (tests) get their environment back
            if tracking_uri is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = tracking_uri


def _generate(args) -> int:
    from crm.synthetic import generate_crm, write_crm

    started = time.perf_counter()
    with step(f"generating {args.leads:,} synthetic leads"):
        crm = generate_crm(args.leads, months=args.months, seed=args.seed)
        write_crm(crm, args.out)
    print(f"wrote {len(crm.leads):,} leads, {len(crm.events):,} events and {len(crm.deals):,} deals "
          f"to {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


def _init_config(args) -> int:
    from crm.infer_config import guess_project
    from crm.readers import read_table

    out = Path(args.out)
    if out.exists() and not args.force:
        raise ValueError(f"{out} exists; pass --force to overwrite it or choose another --out.")
    frame = read_table(args.leads)
    tables = {name: read_table(path) for name, path in (("events", args.events), ("deals", args.deals)) if path}
    guess = guess_project(frame, leads_path=args.leads, out_path=out, events_path=args.events,
                          deals_path=args.deals, **tables)
    out.write_text(guess.text, encoding="utf-8")
    read = ", ".join(f"{name} {len(table):,} rows" for name, table in tables.items())
    print(f"wrote {out}: roles for {frame.shape[1]} columns of {args.leads} ({len(frame):,} rows)"
          + (f"; {read}" if read else "") + ".")
    print("check before training:")
    for line in guess.summary:
        print(f"  - {line}")
    print(f"then: lead-train train --config {out}")
    return 0


def _train(args) -> int:
    from crm.config import load_crm_or_config
    from crm.synthetic import load_truth

    if args.config is None and not (args.leads and args.events and args.deals):
        raise ValueError("train needs --config FILE, or all of --leads, --events and --deals.")
    truth = load_truth(args.truth) if args.truth else None
    config, leads, labels, events, deals = load_crm_or_config(args.config, leads=args.leads, events=args.events,
                                                              deals=args.deals, db=args.db)
    _train_and_log(args, leads, events, deals, truth=truth, project=config, labels=labels)
    return 0


def _demo(args) -> int:
    from crm.readers import load_crm
    from crm.synthetic import load_truth
    from models.batch import score_lead_base

    _generate(args)
    folder = Path(args.out)
    leads, events, deals = load_crm(folder / "leads.parquet", folder / "events.parquet", folder / "deals.parquet")
    truth = load_truth(folder)
    args.report_out = str(folder / "training_report")
    result, logged = _train_and_log(args, leads, events, deals, truth=truth)

    from training.tracking import load_bundle

    model_uri = f"models:/{args.model_name}@champion"
    bundle, identity = load_bundle(model_uri)
    as_of = pd.Timestamp(result.params["data_end"])
    out = folder / "scores.parquet"
    with step("scoring the open leads"):
        counts = score_lead_base(bundle, leads, events, as_of=as_of, out=out, deals=deals,
                                 model_version=identity["model_version"], progress=log.info)
    print(f"\nscored {int(counts.sum()):,} open leads as of {as_of.date()} with {model_uri} "
          f"(version {identity['model_version']}) -> {out}")
    print("  " + ", ".join(f"{tier} {count:,}" for tier, count in counts.items()))

    compare = build_parser().parse_args([
        "compare", "--model", model_uri, "--rules", str(EXAMPLE_RULES), "--out", str(folder / "compare"),
        "--scorecard-out", str(folder / "learned_points.toml"),
        *[part for name in ("leads", "events", "deals") for part in (f"--{name}", str(folder / f"{name}.parquet"))]])
    compare.experiment, compare.tracking_uri = args.experiment, args.tracking_uri
    return _compare(compare)


def _compare(args) -> int:
    from analysis.compare import compare_on_test
    from analysis.report import comparison_figures, headline, write_report
    from crm.config import load_crm_or_config
    from models.rules import RulesError, load_rules
    from training.tracking import load_bundle, log_comparison, quiet_mlflow, use_default_store

    quiet_mlflow(verbose=args.verbose)
    if args.config is None and not (args.leads and args.events and args.deals):
        raise ValueError("compare needs --config FILE (your export as its config maps it), or all of --leads, "
                         "--events and --deals.")
    started = time.perf_counter()
    uri = use_default_store()
    with step("reading the data"):
        _, leads, labels, events, deals = load_crm_or_config(args.config, leads=args.leads, events=args.events,
                                                             deals=args.deals)
    bundle, _ = load_bundle(args.model)
    rules_path = args.rules or str(EXAMPLE_RULES)
    try:
        rules = load_rules(rules_path, spec=bundle.spec, lead_columns=leads.columns)
    except RulesError as error:
        if args.rules is None:  # the example rules name the synthetic CRM's columns, not the user's
            raise RulesError(f"{error} The example rules fit the synthetic CRM; write rules for your export's "
                             "columns and event types (format in the README) and pass them with --rules.") from None
        raise
    with step("scoring the test leads with the model and the rules"):
        comparison = compare_on_test(bundle, rules, leads, events, deals, labels=labels,
                                     scorecard=bool(args.scorecard_out), n_disagreements=args.disagreements,
                                     n_bootstrap=args.bootstrap)
    if args.scorecard_out:
        learned = comparison.scorecard.save(args.scorecard_out)
        # The table must read back through the same reader a hand-made rules file goes through.
        load_rules(learned, spec=bundle.spec, lead_columns=leads.columns)
    with step("writing the report"):
        figures = comparison_figures(comparison)
        report = write_report(comparison, figures, args.out)
        run_id = log_comparison(comparison, figures=figures, report_path=report, model_uri=args.model, rules=rules,
                                **_experiment(args))
    test_rows = comparison.metrics["test_rows"]
    print(f"\ncompared {args.model} with {rules_path} on {test_rows:,} test "
          f"{'snapshots' if 'as_of' in comparison.scored else 'leads'} in {time.perf_counter() - started:.0f} s")
    print("  " + headline(comparison))
    forecast = comparison.tables["forecast"]
    overall = forecast[forecast["group"].eq("all")]
    print("  forecast backtest, conversions expected [90 % interval] vs actual: calibrated "
          + "; ".join(f"{row.expected_conversions:.0f} [{row.low}, {row.high}]" for row in overall.itertuples())
          + (" | level-checked " + "; ".join(f"{row.expected_adjusted:.0f} [{row.low_adjusted}, {row.high_adjusted}]"
                                             for row in overall.itertuples()) if "expected_adjusted" in overall else "")
          + " | actual " + "; ".join(f"{row.actual_conversions}" for row in overall.itertuples())
          + (f" (as of {', '.join(overall['as_of'])})" if "as_of" in overall else ""))
    if args.scorecard_out:
        print(f"  learned points table -> {args.scorecard_out}")
    print(f"  report {report} (tables as CSV beside it); MLflow store {uri}, run {run_id}")
    return 0


def _experiment(args) -> dict:
    return {"experiment": args.experiment} if getattr(args, "experiment", None) else {}


def _train_and_log(args, leads, events, deals, *, truth=None, project=None, labels=None):
    from analysis.training_report import training_report
    from models.threads import resolve_threads
    from training.pipeline import TrainingConfig, train_model, train_on_table
    from training.tracking import load_champion, log_training_run, quiet_mlflow, use_default_store

    quiet_mlflow(verbose=args.verbose)
    uri = use_default_store()
    policy = (PrecisionPolicy(sql_precision=args.sql_precision, mql_precision=args.mql_precision)
              if args.tier_policy == "precision" else CapacityPolicy(sql_share=args.sql_share,
                                                                     mql_share=args.mql_share))
    options = dict(tier_policy=policy, seed=args.seed)
    if project is not None:  # the config file's [training] and [leakage] win over the defaults
        options.update(project.training_options())
        if args.model_name is None and project.model_name:
            args.model_name = project.model_name
    # Spans given on the command line win over the config's, which win over the defaults.
    options.update({name: getattr(args, name) for name in ("horizon_days", "snapshot_every_days", "test_days",
                                                           "calibration_days") if getattr(args, name) is not None})
    args.model_name = args.model_name or DEFAULT_MODEL_NAME
    options["threads"] = resolve_threads(args.threads, config_threads=project.runtime.get("threads")
                                         if project is not None else None)
    config = TrainingConfig(**options)
    champion = load_champion(args.model_name)
    oracle = (lambda snapshots: truth.oracle_probability(snapshots, horizon_days=config.horizon_days)) if truth else None
    started = time.perf_counter()
    with step("training (features, candidates, calibration, evaluation)"):
        if project is not None and deals is None:
            result = train_on_table(leads, labels, spec=project.feature_spec(), config=config, champion=champion,
                                    log=log.info)
        else:
            spec = project.feature_spec() if project is not None else None
            vocabulary = project.event_vocabulary() if project is not None else None
            result = train_model(leads, events, deals, spec=spec, config=config, oracle=oracle, champion=champion,
                                 event_vocabulary=vocabulary, log=log.info)
    with step("writing the training report"):
        report = training_report(result, out_dir=args.report_out, seed=args.seed)
    champion_auc = result.metrics.get("champion_test_roc_auc")
    promote = champion_auc is None or result.metrics["test_roc_auc"] >= champion_auc
    with step("logging the run and the model to MLflow"):
        logged = log_training_run(result, model_name=args.model_name, figures=report["figures"], promote=promote,
                                  report_path=report["path"], report_tables=report["tables"],
                                  extra_metrics=report["metrics"], **_experiment(args))
    _print_report(result, logged, uri, time.perf_counter() - started, report)
    return result, logged


def _print_report(result, logged, uri, seconds, report) -> None:
    metrics, params = result.metrics, result.params
    test = (f"test window {params['window_test_first']} .. {params['window_test_last']}, "
            f"{metrics['test_rows']:,.0f} snapshots" if params["split"] == "temporal"
            else f"{params['split']} split, {metrics['test_rows']:,.0f} test leads")
    print(f"\ntrained {params['model']} + {params['calibration']} calibration in {seconds:.0f} s; "
          f"{test}, base rate {metrics['test_base_rate']:.3f}")
    if params.get("excluded_columns"):
        print("  excluded as post-outcome (declared, or caught by the leakage guard): "
              + ", ".join(params["excluded_columns"]))
    line = f"  test ROC AUC {metrics['test_roc_auc']:.4f}"
    if "test_oracle_roc_auc" in metrics:
        line += f" (oracle {metrics['test_oracle_roc_auc']:.4f})"
    line += (f" | PR AUC {metrics['test_pr_auc']:.4f} | ECE {metrics['test_ece']:.4f} | "
             f"Brier {metrics['test_brier']:.4f} | top-decile lift {metrics['test_top_decile_lift']:.2f}")
    print(line)
    print("  conversion per tier on the test split:")
    print("  " + result.tables["test_tiers"].to_string(index=False, float_format=lambda v: f"{v:.3f}")
          .replace("\n", "\n  "))
    if "champion_test_roc_auc" in metrics:
        verdict = "promoted" if logged["champion"] else "kept the champion"
        print(f"  champion on the same test window: ROC AUC {metrics['champion_test_roc_auc']:.4f} -> {verdict}")
    print(f"  training report {report['path']} (KS {report['metrics']['test_ks']:.3f})")
    print(f"  registered as version {logged['version']}"
          f"{' (alias champion)' if logged['champion'] else ''}; MLflow store {uri}, run {logged['run_id']}")


def _add_generator_arguments(parser) -> None:
    parser.add_argument("--leads", type=int, default=20_000, help="number of leads (default: %(default)s)")
    parser.add_argument("--months", type=int, default=18, help="months of history (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")


def _add_training_arguments(parser) -> None:
    # Durations: "6h", "2d", "90d"; a plain number is days (the older --*-days spellings still work).
    parser.add_argument("--horizon", "--horizon-days", dest="horizon_days", type=_duration_argument,
                        help="conversion horizon, e.g. 90d or 6h (default: the config's, else 90d)")
    parser.add_argument("--every", "--every-days", dest="snapshot_every_days", type=_duration_argument,
                        help="time between snapshots, e.g. 15d or 1h (default: the config's, else 15d)")
    parser.add_argument("--test-span", "--test-days", dest="test_days", type=_duration_argument,
                        help="test window length (default: the config's, else 90d)")
    parser.add_argument("--calibration-span", "--calibration-days", dest="calibration_days", type=_duration_argument,
                        help="calibration window length (default: the config's, else 60d)")
    parser.add_argument("--tier-policy", choices=("capacity", "precision"), default="capacity",
                        help="how tier thresholds are chosen: by share of leads, or by expected conversion")
    parser.add_argument("--sql-share", type=float, default=0.05, help="capacity policy: SQL share of leads")
    parser.add_argument("--mql-share", type=float, default=0.20, help="capacity policy: MQL share of leads")
    parser.add_argument("--sql-precision", type=float, default=0.30, help="precision policy: SQL conversion")
    parser.add_argument("--mql-precision", type=float, default=0.10, help="precision policy: MQL conversion")
    parser.add_argument("--model-name", help=f"registered model name (default: the config's model_name, "
                                             f"else {DEFAULT_MODEL_NAME})")
    parser.add_argument("--threads", type=int, help="threads for LightGBM and BLAS (default: the "
                        "LEAD_SCORING_THREADS environment variable, the config's [runtime] threads, else the "
                        "cores this process may use)")
    if not any(action.dest == "seed" for action in parser._actions):
        parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")


def _duration_argument(text: str) -> float:
    """argparse type for a duration: days, whole when they are (so logged params stay ``90``)."""
    from features.timing import duration_days

    try:
        days = duration_days(text, name="a duration")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return int(days) if days.is_integer() else days
