"""The model against the points rules on its test snapshots, as ``lead-train compare`` runs it."""

from __future__ import annotations

import logging
import time

from command_line import step

log = logging.getLogger("lead_scoring")


#: Leads listed each way where the model and the rules disagree; bootstrap resamples of the test leads.
DISAGREEMENTS, BOOTSTRAP = 10, 200


def compare(args) -> int:
    """``lead-train compare``: score the test snapshots with the model and the rules, report, log to MLflow."""
    from analysis.compare import compare_on_test
    from analysis.report import comparison_figures, headline, write_report
    from crm.export import load_crm_or_config
    from models.rules import EXAMPLE_RULES, RulesError, load_rules
    from registry import default_model_uri
    from registry.loading import load_bundle
    from registry.analysis_runs import log_comparison
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
    args.model = args.model or default_model_uri(args.config)  # the config's own champion, never another's
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
                                log_lead_rows=args.log_lead_rows, **experiment_argument(args))
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


def experiment_argument(args) -> dict:
    """``experiment=`` for the registry's loggers when ``--experiment`` was given."""
    return {"experiment": args.experiment} if getattr(args, "experiment", None) else {}
