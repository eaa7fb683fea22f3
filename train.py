"""Command line: ``lead-train`` (or ``python -m training``)
``{generate,init-config,train,backtest,promote,revert,compare,demo}``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

from command_line import (HelpFormatter, add_command, add_common_arguments, configure, error_text, package_version,
                          show_warning)
from registry import DEFAULT_MODEL_NAME

log = logging.getLogger("lead_scoring")



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lead-train", formatter_class=HelpFormatter,
        description="Train lead-conversion models on closed deals, compare them with points rules.",
        epilog="examples:\n  lead-train demo\n  lead-train train --config config.toml\n"
               "  lead-train <command> --help    (options and an example of each command)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help_text, example):
        return add_command(commands, name, help_text, example)

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
    _add_export_arguments(train)
    train.add_argument("--db", help="database URL (postgresql://..., duckdb:///crm.duckdb or any SQLAlchemy URL): "
                                    "--leads, --events and --deals are then table names or SELECT queries in it")
    train.add_argument("--truth", help="folder with the synthetic generator's truth files (adds oracle and "
                       "observable-ceiling AUC)")
    train.add_argument("--date-format", help="strftime format of dates whose day/month order the data cannot "
                                             "show, e.g. %%d/%%m/%%Y (default: the config's [data] date_format)")
    _add_training_arguments(train)
    train.add_argument("--report-out", default="reports/training",
                       help="folder for the training report (training_report.html, CSVs); also logged to MLflow")
    add_common_arguments(train)

    backtest = command("backtest", "rolling-origin backtest: train up to each cut-off, test the next window",
                       "lead-train backtest --config config.toml --windows 4")
    _add_export_arguments(backtest)
    backtest.add_argument("--windows", type=int, default=4, help="test windows")
    backtest.add_argument("--first-share", type=float, default=0.5, help="share of the time range before the first "
                                                                          "cut-off")
    backtest.add_argument("--model", choices=("lightgbm", "logistic"), default="lightgbm",
                          help="model refitted at each cut-off")
    backtest.add_argument("--horizon", "--horizon-days", dest="horizon_days", type=_duration_argument,
                          help="conversion horizon, e.g. 90d or 6h (default: the config's, else 90d)")
    backtest.add_argument("--every", "--every-days", dest="snapshot_every_days", type=_duration_argument,
                          help="time between snapshots, e.g. 15d or 1h (default: the config's, else 15d)")
    backtest.add_argument("--model-name", help="whose experiment to log to (default: the config's model_name, else "
                                               f"{DEFAULT_MODEL_NAME})")
    backtest.add_argument("--seed", type=int, default=0, help="random seed")
    add_common_arguments(backtest)

    promote = command("promote", "make a registered model version the champion, by hand",
                      "lead-train promote --model-name lead-conversion --version 3 --reason \"checked the leak\"")
    promote.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help="registered model")
    promote.add_argument("--version", required=True, help="the version to promote")
    promote.add_argument("--reason", default="promoted by hand", help="why, stored on the version")
    add_common_arguments(promote, experiment=False)

    revert = command("revert", "give the champion alias back to the previous champion",
                     "lead-train revert --model-name lead-conversion --reason \"scores drifted\"")
    revert.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help="registered model")
    revert.add_argument("--reason", default="reverted by hand", help="why, stored on both versions")
    add_common_arguments(revert, experiment=False)

    compare = command("compare", "compare a model with points rules on its test snapshots",
                      "lead-train compare --model models:/lead-conversion@champion --rules my_rules.toml "
                      "--leads leads.csv --events events.parquet --deals deals.csv\n"
                      "  lead-train compare --model models:/my-model@champion --config config.toml --rules my_rules.toml")
    compare.add_argument("--model", help="model URI (default: the champion of the config's model_name, else "
                                         f"models:/{DEFAULT_MODEL_NAME}@champion)")
    compare.add_argument("--rules", help="points rules TOML (default: the example rules of models/rules_example.toml)")
    _add_export_arguments(compare)
    compare.add_argument("--out", default="reports/compare", help="folder for report.html and CSVs")
    compare.add_argument("--scorecard-out", help="also fit a learned points table on the training split, write it here")
    compare.add_argument("--date-format", help="strftime format of ambiguous day/month dates, e.g. %%d/%%m/%%Y")
    compare.add_argument("--log-lead-rows", action="store_true",
                         help="also log per-lead tables to MLflow, ids as keyed digests (HMAC-SHA256 keyed by "
                              "$LEAD_SCORING_ID_KEY, else by a key not stored); by default only aggregates are "
                              "logged, and the HTML report never is")
    compare.add_argument("--disagreements", type=int, default=10, help="leads listed each way where they disagree")
    compare.add_argument("--bootstrap", type=int, default=200,
                         help="bootstrap resamples of the test leads for the intervals (0: none)")
    add_common_arguments(compare)

    schema = command("config-schema", "print the JSON Schema of a project config (--rules: of a points-rules file)",
                     "lead-train config-schema > project-config.schema.json")
    schema.add_argument("--rules", action="store_true", help="the schema of a points-rules file instead")
    schema.add_argument("--markdown", action="store_true", help="the reference tables of the docs instead")

    demo = command("demo", "generate synthetic data, train, register, score, report",
                   "lead-train demo --leads 5000 --months 15")
    demo.add_argument("--out", default="data/demo", help="folder for the generated data and scores")
    _add_generator_arguments(demo)
    demo.add_argument("--forward-months", type=int, default=3, help="months the same world runs past the training "
                      "data, to judge the stored scores against what happened (default: %(default)s; 0: none)")
    _add_training_arguments(demo)
    add_common_arguments(demo)
    return parser


def main(argv=None) -> int:
    from models.threads import sleep_while_waiting

    sleep_while_waiting()  # before LightGBM loads OpenMP: threads waiting at a barrier sleep, not spin
    args = build_parser().parse_args(argv)
    from features.contract import DataContractError, bounded

    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if getattr(args, "tracking_uri", None):
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    try:
        with warnings.catch_warnings():
            configure(args)  # logging levels, and warning filters that end with this block
            warnings.showwarning = show_warning
            return _command(args.command)(args)
    except (DataContractError, ValueError, OSError, UnicodeError) as error:
        # One line, personal data masked, bounded: the message is the whole answer.
        print(f"error: {bounded(error_text(error))}", file=sys.stderr)
        return 2
    finally:
        if getattr(args, "tracking_uri", None):  # in-process callers (tests) get their environment back
            if tracking_uri is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = tracking_uri


def _command(name: str):
    """The function that runs subcommand ``name``: small ones here, the rest from the wiring in ``workflows/``."""
    from workflows.backtest import backtest
    from workflows.comparison import compare
    from workflows.demo import demo

    return {"generate": _generate, "init-config": _init_config, "train": _train, "compare": compare, "demo": demo,
            "backtest": backtest, "promote": _promote, "revert": _revert, "config-schema": _config_schema}[name]


def _generate(args) -> int:
    from workflows.demo import write_synthetic_crm

    write_synthetic_crm(args.out, leads=args.leads, months=args.months, seed=args.seed)
    return 0


def _config_schema(args) -> int:
    from crm.config_schema import ConfigFile, json_schema_text, reference_markdown
    from models.rules_schema import RulesFile

    model = RulesFile if args.rules else ConfigFile
    print(reference_markdown(model) if args.markdown else json_schema_text(model), end="")
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
    print(f"then: lead-train train --config {out}  (registers the model as {guess.model_name}: [training] model_name)")
    return 0


def _train(args) -> int:
    from crm.export import load_crm_or_config
    from crm.synthetic import load_truth

    if args.config is None and not (args.leads and args.events and args.deals):
        raise ValueError("train needs --config FILE, or all of --leads, --events and --deals.")
    truth = load_truth(args.truth) if args.truth else None
    config, leads, labels, events, deals = load_crm_or_config(args.config, leads=args.leads, events=args.events,
                                                              deals=args.deals, date_format=args.date_format,
                                                              db=args.db)
    from workflows.training_run import train_and_log

    train_and_log(args, leads, events, deals, truth=truth, project=config, labels=labels)
    return 0


def _promote(args) -> int:
    from registry.aliases import set_champion
    from registry.store import use_default_store

    use_default_store()
    moved = set_champion(args.model_name, args.version, reason=args.reason)
    if moved["previous"] is None:
        print(f"{args.model_name} version {moved['champion']} is the champion")
    else:
        print(f"{args.model_name}: version {moved['champion']} is the champion; version {moved['previous']} keeps "
              f"the alias previous-champion (undo with: lead-train revert --model-name {args.model_name})")
    return 0


def _revert(args) -> int:
    from registry.aliases import revert_champion
    from registry.store import use_default_store

    use_default_store()
    moved = revert_champion(args.model_name, reason=args.reason)
    print(f"{args.model_name}: version {moved['champion']} is the champion again; version {moved['previous']} "
          "keeps the alias previous-champion")
    return 0


def _add_export_arguments(parser) -> None:
    """The export a command reads: a project config, or the three tables (each overrides the config's file)."""
    parser.add_argument("--config", help="project config (TOML) mapping your export: reads the tables as it says "
                                         "(three tables, or a single lead table with its outcome column)")
    parser.add_argument("--leads", help="leads table (.csv or .parquet); with --config, overrides its file")
    parser.add_argument("--events", help="event log (.csv or .parquet)")
    parser.add_argument("--deals", help="closed deals (.csv or .parquet)")


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
    parser.add_argument("--tier-policy", choices=("capacity", "precision", "threshold", "lift", "expected-value"),
                        default="capacity", help="how tier cut-offs are chosen on the calibration split "
                                                 "(default: %(default)s)")
    parser.add_argument("--sql-share", type=float, default=0.05, help="capacity policy: SQL share of leads")
    parser.add_argument("--mql-share", type=float, default=0.20, help="capacity policy: MQL share of leads")
    parser.add_argument("--sql-precision", type=float, default=0.30, help="precision policy: SQL conversion")
    parser.add_argument("--mql-precision", type=float, default=0.10, help="precision policy: MQL conversion")
    parser.add_argument("--sql-probability", type=float, default=0.50,
                        help="threshold policy: SQL from this probability")
    parser.add_argument("--mql-probability", type=float, default=0.20,
                        help="threshold policy: MQL from this probability")
    parser.add_argument("--sql-lift", type=float, default=3.0,
                        help="lift policy: SQL from this multiple of the base rate")
    parser.add_argument("--mql-lift", type=float, default=1.5,
                        help="lift policy: MQL from this multiple of the base rate")
    parser.add_argument("--won-value", type=float, help="expected-value policy: value of a won deal "
                                                        "(default: the median amount of won deals)")
    parser.add_argument("--contact-cost", type=float, default=500.0, help="expected-value policy: cost of a sales "
                                                                          "contact (SQL)")
    parser.add_argument("--nurture-cost", type=float, default=50.0, help="expected-value policy: cost of a marketing "
                                                                         "touch (MQL)")
    parser.add_argument("--search-seconds", type=float, default=0.0,
                        help="wall-clock budget of a LightGBM hyperparameter search on the training and calibration "
                             "splits (default: %(default)s, off)")
    parser.add_argument("--split-by", choices=("lead_share", "time"), help="lead_share: each lead in one split "
                        "(the default); time: time alone separates train, calibration and test, as production "
                        "spends leads (training.split)")
    parser.add_argument("--refit", action=argparse.BooleanOptionalAction, default=None, help="register the chosen "
                        "settings refit on every snapshot whose outcome is known at the data's end (the test figures "
                        "stay the procedure's, held out); default: the config's, else the model fitted on the "
                        "training split (demo: the refit)")
    parser.add_argument("--segment-by", help="a categorical lead column: one model per value with enough data, a "
                                             "global model for the rest, in one bundle")
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


if __name__ == "__main__":
    sys.exit(main())
