"""Command line: ``lead-train`` (or ``python -m training``)
``{generate,init-config,train,backtest,promote,revert,compare,demo}``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from models.tiers import CapacityPolicy, ExpectedValuePolicy, LiftPolicy, PrecisionPolicy, ThresholdPolicy
from command_line import HelpFormatter, add_common_arguments, configure, package_version, show_warning, step

log = logging.getLogger("lead_scoring")

DEFAULT_MODEL_NAME = "lead-conversion"
EXAMPLE_RULES = Path(__file__).resolve().parent / "models" / "rules_example.toml"


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
    backtest.add_argument("--config", help="project config (TOML); replaces the three tables")
    backtest.add_argument("--leads", help="leads table (.csv or .parquet); with --config, overrides its file")
    backtest.add_argument("--events", help="event log (.csv or .parquet)")
    backtest.add_argument("--deals", help="closed deals (.csv or .parquet)")
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
    compare.add_argument("--model", default="models:/lead-conversion@champion", help="model URI")
    compare.add_argument("--rules", help="points rules TOML (default: the example rules of models/rules_example.toml)")
    compare.add_argument("--config", help="project config (TOML) of your export: reads the tables as it says "
                                          "(three tables, or a single lead table with its outcome column)")
    compare.add_argument("--leads", help="leads table (.csv or .parquet); with --config, overrides its file")
    compare.add_argument("--events", help="event log (.csv or .parquet)")
    compare.add_argument("--deals", help="closed deals (.csv or .parquet)")
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
    _add_training_arguments(demo)
    add_common_arguments(demo)
    return parser


def main(argv=None) -> int:
    from models.threads import sleep_while_waiting

    sleep_while_waiting()  # before LightGBM loads OpenMP: threads waiting at a barrier sleep, not spin
    args = build_parser().parse_args(argv)
    from features.contract import DataContractError

    from features.contract import bounded

    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if getattr(args, "tracking_uri", None):
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    try:
        with warnings.catch_warnings():
            configure(args)  # logging levels, and warning filters that end with this block
            warnings.showwarning = show_warning
            return {"generate": _generate, "init-config": _init_config, "train": _train, "compare": _compare,
                    "demo": _demo, "backtest": _backtest, "promote": _promote, "revert": _revert,
                    "config-schema": _config_schema}[args.command](args)
    except (DataContractError, ValueError, OSError, UnicodeError) as error:
        # One line, personal data masked, bounded: the message is the whole answer.
        print(f"error: {bounded(_error_text(error))}", file=sys.stderr)
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
    print(f"then: lead-train train --config {out}")
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
    _train_and_log(args, leads, events, deals, truth=truth, project=config, labels=labels)
    return 0


def _demo(args) -> int:
    from crm.readers import load_crm
    from crm.synthetic import load_truth
    from scoring.batch import score_lead_base
    from scoring.drift import DriftMonitor

    _generate(args)
    folder = Path(args.out)
    leads, events, deals = load_crm(folder / "leads.parquet", folder / "events.parquet", folder / "deals.parquet")
    truth = load_truth(folder)
    args.report_out = str(folder / "training_report")
    result, logged = _train_and_log(args, leads, events, deals, truth=truth)

    from registry.loading import load_bundle

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

    compare = build_parser().parse_args([
        "compare", "--model", model_uri, "--rules", str(EXAMPLE_RULES), "--out", str(folder / "compare"),
        "--scorecard-out", str(folder / "learned_points.toml"),
        *[part for name in ("leads", "events", "deals") for part in (f"--{name}", str(folder / f"{name}.parquet"))]])
    compare.experiment, compare.tracking_uri = args.experiment, args.tracking_uri
    code = _compare(compare)
    if monitor is not None:  # last, so the demo ends with it: the scored base against the model's reference
        _monitoring_page(monitor, folder / "monitoring", as_of=as_of, identity=identity)
    print(f"\nplan the tiers: {os.path.relpath(Path(sys.executable).with_name('lead-serve'))} http --model {model_uri} "
          f"--scores {out}  then open http://127.0.0.1:8000/planner")
    return code


def _monitoring_page(monitor, out_dir, *, as_of, identity) -> None:
    """The demo's monitoring: compare, write the page, log the run, print the summary."""
    from analysis.monitoring import write_monitoring_report
    from registry.runs import log_monitoring
    from scoring.drift import compare_with_previous_run

    report = compare_with_previous_run(monitor, out_dir, as_of=as_of, **identity)
    page = write_monitoring_report(report, out_dir, title=f"{identity.get('model_name', '')} version "
                                                          f"{identity['model_version']}")
    log_monitoring(report, report_path=page, model_uri=identity.get("model_uri"), identity=identity, as_of=as_of)
    print("\n" + "\n".join(report.summary_lines()) + f"\n  monitoring report {page}")


def _backtest(args) -> int:
    from analysis.backtest import backtest_figure
    from crm.export import load_crm_or_config
    from features.build import build_features
    from features.spec import FeatureSpec
    from features.timing import duration
    from training.backtest import rolling_cutoffs, run_backtest
    from training.leakage import spec_without
    from training.pipeline import TrainingConfig, labelled_snapshots, latest_timestamp
    from registry.runs import log_backtest
    from registry.store import use_default_store

    if args.config is None and not (args.leads and args.events and args.deals):
        raise ValueError("backtest needs --config FILE, or all of --leads, --events and --deals.")
    started = time.perf_counter()
    uri = use_default_store()
    project, leads, labels, events, deals = load_crm_or_config(args.config, leads=args.leads, events=args.events,
                                                               deals=args.deals)
    spec = FeatureSpec() if project is None else spec_without(project.feature_spec(), project.post_outcome)
    model_name = args.model_name or (project.model_name if project is not None else None) or DEFAULT_MODEL_NAME
    if deals is not None:  # snapshots: time is as_of, each label known a horizon later
        options = {key: value for key, value in (project.training_options() if project is not None else {}).items()
                   if key in ("horizon_days", "snapshot_every_days")}
        options.update({name: getattr(args, name) for name in ("horizon_days", "snapshot_every_days")
                        if getattr(args, name) is not None})
        config = TrainingConfig(seed=args.seed, **options)
        data_end = latest_timestamp(leads, events, deals)
        rows, _ = labelled_snapshots(leads, deals, config=config, data_end=data_end)
        times, known_at, y = rows["as_of"], rows["as_of"] + duration(config.horizon_days), rows["label"]
        shape = f"{len(rows):,} snapshots"
        vocabulary = project.event_vocabulary() if project is not None else None
        if vocabulary is not None and events is not None:  # the log's own types, learned before the first window
            first_window = rolling_cutoffs(times, n_windows=args.windows, first_share=args.first_share)[0][0]
            spec, _ = vocabulary.learned_spec(spec, events, before=first_window)
    else:
        if "created_at" not in leads.columns:
            raise ValueError("backtest needs time: the lead table has no creation date. Name it as [columns] "
                             "created_at in the config.")
        keep = labels.notna().to_numpy()
        leads, y = leads.loc[keep].reset_index(drop=True), labels[keep].astype(int).reset_index(drop=True)
        rows = pd.DataFrame({"lead_id": leads["lead_id"], "as_of": pd.NaT})
        times, known_at, shape = leads["created_at"], None, f"{len(leads):,} leads ordered by creation date"
    features = build_features(rows, leads, events, spec)
    windows = rolling_cutoffs(times, n_windows=args.windows, first_share=args.first_share)
    print(f"backtest of {args.model} on {shape}: {len(windows)} windows from {windows[0][0].date()}")
    # Per-lead weights as training uses them (the project config's [training] per_lead_candidates).
    weighting = {key: value for key, value in (project.training_options() if project is not None else {}).items()
                 if key == "per_lead_candidates"}
    result = run_backtest(features, y, times, known_at=known_at, groups=rows["lead_id"], spec=spec,
                          windows=windows, model=args.model, seed=args.seed,
                          per_lead_candidates=TrainingConfig(**weighting).per_lead_candidates)
    figure = backtest_figure(result.windows, title=f"Rolling-origin backtest, {args.model}, {shape}")
    run_id = log_backtest(result, model_name=model_name, experiment=getattr(args, "experiment", None), figure=figure,
                          params={"model": args.model, "windows": args.windows, "first_share": args.first_share,
                                  "rows": len(features), "shape": shape})
    import matplotlib.pyplot as plt

    plt.close(figure)
    print("\n" + result.windows[["window", "test_from", "test_to", "train_rows", "test_rows", "roc_auc", "ece",
                                  "train_base_rate", "test_base_rate", "max_psi", "most_drifted_feature"]]
          .to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\n" + "\n".join(result.findings))
    print(f"\nbacktest in {time.perf_counter() - started:.0f} s; MLflow store {uri}, run {run_id}")
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
              f"the alias previous-champion (undo with: python -m training revert --model-name {args.model_name})")
    return 0


def _revert(args) -> int:
    from registry.aliases import revert_champion
    from registry.store import use_default_store

    use_default_store()
    moved = revert_champion(args.model_name, reason=args.reason)
    print(f"{args.model_name}: version {moved['champion']} is the champion again; version {moved['previous']} "
          "keeps the alias previous-champion")
    return 0


def _compare(args) -> int:
    from analysis.compare import compare_on_test
    from analysis.report import comparison_figures, headline, write_report
    from crm.export import load_crm_or_config
    from models.rules import RulesError, load_rules
    from registry.loading import load_bundle
    from registry.runs import log_comparison
    from registry.store import quiet_mlflow, use_default_store

    quiet_mlflow(verbose=args.verbose)
    if args.config is None and not (args.leads and args.events and args.deals):
        raise ValueError("compare needs --config FILE (your export as its config maps it), or all of --leads, "
                         "--events and --deals.")
    started = time.perf_counter()
    uri = use_default_store()
    with step("reading the data"):
        _, leads, labels, events, deals = load_crm_or_config(args.config, leads=args.leads, events=args.events,
                                                             deals=args.deals, date_format=args.date_format)
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
                                log_lead_rows=args.log_lead_rows, **_experiment(args))
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
    from training.promotion import decide_promotion
    from registry.aliases import champion_version
    from registry.loading import load_champion
    from registry.runs import log_training_run, training_run
    from registry.store import check_model_name, quiet_mlflow, use_default_store

    if args.model_name is not None:  # MLflow would refuse a bad name only at registration, after the training
        check_model_name(args.model_name)
    quiet_mlflow(verbose=args.verbose)
    uri = use_default_store()
    options = dict(tier_policy=_tier_policy(args, deals), seed=args.seed, segment_by=args.segment_by,
                   search_seconds=args.search_seconds)
    if project is not None:  # the config file's [training], [leakage] and [tiers] win over the defaults
        options.update(project.training_options())
        if project.tiers:
            options["tier_policy"] = _configured_tier_policy(project.tiers, deals)
        if args.model_name is None and project.model_name:
            args.model_name = project.model_name
    # Spans given on the command line win over the config's, which win over the defaults.
    options.update({name: getattr(args, name) for name in ("horizon_days", "snapshot_every_days", "test_days",
                                                           "calibration_days", "split_by")
                    if getattr(args, name, None) is not None})
    args.model_name = args.model_name or DEFAULT_MODEL_NAME
    options["threads"] = resolve_threads(args.threads, config_threads=project.runtime.get("threads")
                                         if project is not None else None)
    config = TrainingConfig(**options)
    expected_champion = champion_version(args.model_name)  # promotion moves the alias only if still this one
    champion = load_champion(args.model_name)
    oracle = (lambda snapshots: truth.oracle_probability(snapshots, horizon_days=config.horizon_days)) if truth else None
    ceiling = (lambda snapshots: truth.filtered_probability(snapshots, events, horizon_days=config.horizon_days)
               ) if truth and events is not None else None
    started = time.perf_counter()
    # The run opens before the training, so its duration in MLflow is the training's.
    with training_run(model_name=args.model_name, experiment=getattr(args, "experiment", None)):
        with step("training (features, candidates, calibration, evaluation)"):
            if project is not None and deals is None:
                result = train_on_table(leads, labels, spec=project.feature_spec(), config=config, champion=champion,
                                        log=log.info)
            else:
                spec = project.feature_spec() if project is not None else None
                vocabulary = project.event_vocabulary() if project is not None else None
                result = train_model(leads, events, deals, spec=spec, config=config, oracle=oracle,
                                     champion=champion, event_vocabulary=vocabulary, log=log.info, ceiling=ceiling)
        with step("writing the training report"):
            report = training_report(result, out_dir=args.report_out, seed=args.seed)
        decision = decide_promotion(challenger_auc=result.metrics["test_roc_auc"],
                                    champion_auc=result.metrics.get("champion_test_roc_auc"),
                                    has_champion=champion is not None,
                                    champion_version=expected_champion if champion else None,
                                    suspicious_columns=result.params.get("suspicious_columns", ()),
                                    has_signal=result.params.get("has_signal", True),
                                    drift=result.params.get("drift"))
        with step("logging the run and the model to MLflow"):
            logged = log_training_run(result, model_name=args.model_name, figures=report["figures"],
                                      decision=decision, report_path=report["path"], report_tables=report["tables"],
                                      extra_metrics=report["metrics"], expected_champion=expected_champion)
    if decision.promote and not logged["champion"]:
        print(f"  lost the promotion: another run made version {logged['champion_now']} champion while this one "
              f"trained; version {logged['version']} is registered without the alias (re-run to compare with it)")
    _print_report(result, logged, uri, time.perf_counter() - started, report, decision=logged["decision"] or decision,
                  model_name=args.model_name)
    return result, logged


def _configured_tier_policy(values: dict, deals):
    from models.tiers import policy_from_dict

    values = dict(values)
    if values.get("kind") == "expected_value" and "won_value" not in values:
        values["won_value"] = _median_won_amount(deals, "[tiers] won_value")
    return policy_from_dict(values)


def _median_won_amount(deals, setting: str) -> float:
    amounts = (deals.loc[deals["outcome"].eq("won"), "amount"].dropna()
               if deals is not None and "amount" in deals.columns else pd.Series(dtype=float))
    if amounts.empty:
        raise ValueError(f"Expected-value tiers need {setting}: the deals carry no amounts of won deals to take "
                         "it from.")
    print(f"expected-value tiers: a won deal is worth {amounts.median():,.0f} (median amount of {len(amounts):,} "
          "won deals)")
    return float(amounts.median())


def _tier_policy(args, deals):
    """The tier policy the flags ask for; expected value takes a won deal's value from the deals when not given."""
    if args.tier_policy == "precision":
        return PrecisionPolicy(sql_precision=args.sql_precision, mql_precision=args.mql_precision)
    if args.tier_policy == "threshold":
        return ThresholdPolicy(sql_probability=args.sql_probability, mql_probability=args.mql_probability)
    if args.tier_policy == "lift":
        return LiftPolicy(sql_lift=args.sql_lift, mql_lift=args.mql_lift)
    if args.tier_policy == "expected-value":
        won_value = args.won_value if args.won_value is not None else _median_won_amount(deals, "--won-value")
        return ExpectedValuePolicy(won_value=won_value, sql_cost=args.contact_cost, mql_cost=args.nurture_cost)
    return CapacityPolicy(sql_share=args.sql_share, mql_share=args.mql_share)


def _print_report(result, logged, uri, seconds, report, *, decision=None, model_name=DEFAULT_MODEL_NAME) -> None:
    metrics, params = result.metrics, result.params
    test = (f"test window {params['window_test_first']} .. {params['window_test_last']}, "
            f"{metrics['test_rows']:,.0f} snapshots" if params["split"] == "temporal"
            else f"{params['split']} split, {metrics['test_rows']:,.0f} test leads")
    # What must not be missed comes first: doubtful columns, and a model with nothing to say.
    leakage = result.tables.get("leakage_report")
    if params.get("suspicious_columns") and leakage is not None:
        doubtful = leakage[leakage["verdict"].isin(("suspicious", "kept on request"))].drop_duplicates("column")
        print("\nSUSPICIOUS: " + "; ".join(f"{row.column} (single-column AUC {row.single_column_auc:.3f}, "
                                            f"{row.verdict})" for row in doubtful.itertuples())
              + ". Each alone predicts the outcome well enough to have been written after it: the model is not "
                "promoted automatically. Declare them under [leakage] post_outcome, or promote by hand.")
    if not params.get("has_signal", True):
        print(f"\nNO SIGNAL: validation ROC AUC {metrics['validation_roc_auc']:.4f} does not beat the floor: the "
              "ranking is noise and the SQL / MQL / nurture tiers below carry no information.")
    print(f"\ntrained {params['model']} + {params['calibration']} calibration in {seconds:.0f} s; "
          f"{test}, base rate {metrics['test_base_rate']:.3f}")
    if params.get("excluded_columns"):
        print("  excluded as post-outcome (declared, or caught by the leakage guard): "
              + ", ".join(params["excluded_columns"]))
    line = f"  test ROC AUC {metrics['test_roc_auc']:.4f}"
    if "test_oracle_roc_auc" in metrics:
        line += f" (oracle {metrics['test_oracle_roc_auc']:.4f}"
        if "test_observable_ceiling_roc_auc" in metrics:  # the oracle knows the hidden stage; no model can
            line += f", observable ceiling {metrics['test_observable_ceiling_roc_auc']:.4f}"
        line += ")"
    line += (f" | PR AUC {metrics['test_pr_auc']:.4f} | ECE {metrics['test_ece']:.4f} | "
             f"Brier {metrics['test_brier']:.4f} | top-decile lift {metrics['test_top_decile_lift']:.2f}")
    print(line)
    cutoffs = result.tables.get("calibration_tier_cutoffs")
    if cutoffs is not None:
        print("  tier cut-offs (probability) and volumes on the calibration split: " + "; ".join(
            f"{row.tier} from {row.from_probability:.3f}: {row.leads:,} ({row.share:.1%}, expected conversion "
            f"{row.expected_conversion:.3f})" for row in cutoffs.itertuples()))
    if "test_segments" in result.tables:
        print(f"  segment models by {params['segment_by']} on the test split:")
        print("  " + result.tables["test_segments"].to_string(index=False, float_format=lambda v: f"{v:.4f}")
              .replace("\n", "\n  "))
    print("  conversion per tier on the test split:")
    print("  " + result.tables["test_tiers"].to_string(index=False, float_format=lambda v: f"{v:.3f}")
          .replace("\n", "\n  "))
    if decision is not None:
        champion = ("" if decision.champion_auc is None else
                    f"champion on the same test window: ROC AUC {decision.champion_auc:.4f}; ")
        print(f"  {champion}{decision.outcome.upper()}: {decision.reason}")
        if decision.outcome == "held for review":
            print(f"  to promote it after checking: python -m training promote --model-name {model_name} "
                  f"--version {logged['version']}")
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
    parser.add_argument("--segment-by", help="a categorical lead column: one model per value with enough data, a "
                                             "global model for the rest, in one bundle")
    parser.add_argument("--model-name", help=f"registered model name (default: the config's model_name, "
                                             f"else {DEFAULT_MODEL_NAME})")
    parser.add_argument("--threads", type=int, help="threads for LightGBM and BLAS (default: the "
                        "LEAD_SCORING_THREADS environment variable, the config's [runtime] threads, else the "
                        "cores this process may use)")
    if not any(action.dest == "seed" for action in parser._actions):
        parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")


def _error_text(error: Exception) -> str:
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    return str(error)


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
