"""Train, report, decide and log: one training run of ``lead-train train`` end to end, across rooms."""

from __future__ import annotations

import logging
import time

from command_line import step
from registry import DEFAULT_MODEL_NAME

log = logging.getLogger("lead_scoring")


def train_and_log(args, leads, events, deals, *, truth=None, project=None, labels=None):
    """Train on the tables, write the training report, decide promotion and log it all: ``(result, logged)``."""
    from analysis.training_report import training_report
    from registry.aliases import champion_version
    from registry.loading import load_champion
    from registry.runs import log_training_run, training_run
    from registry.store import check_model_name, quiet_mlflow, use_default_store
    from training.options import training_options
    from training.pipeline import TrainingConfig, train_model, train_on_table
    from training.promotion import decide_promotion
    from training.summary import training_summary

    if args.model_name is not None:  # MLflow would refuse a bad name only at registration, after the training
        check_model_name(args.model_name)
    quiet_mlflow(verbose=args.verbose)
    uri = use_default_store()
    if args.model_name is None and project is not None and project.model_name:
        args.model_name = project.model_name
    args.model_name = args.model_name or DEFAULT_MODEL_NAME
    config = TrainingConfig(**training_options(args, deals, project))
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
        # Against a refit champion, both are judged on the test rows after its data ended (training.refit).
        decision = decide_promotion(challenger_auc=result.metrics.get("challenger_fair_roc_auc",
                                                                      result.metrics["test_roc_auc"]),
                                    champion_auc=result.metrics.get("champion_test_roc_auc"),
                                    has_champion=champion is not None,
                                    champion_version=expected_champion if champion else None,
                                    suspicious_columns=result.params.get("suspicious_columns", ()),
                                    has_signal=result.params.get("has_signal", True),
                                    drift=result.params.get("drift"),
                                    champion_comparison=result.params.get("champion_comparison"))
        with step("logging the run and the model to MLflow"):
            logged = log_training_run(result, model_name=args.model_name, figures=report["figures"],
                                      decision=decision, report_path=report["path"], report_tables=report["tables"],
                                      extra_metrics=report["metrics"], expected_champion=expected_champion)
    if decision.promote and not logged["champion"]:
        print(f"  lost the promotion: another run made version {logged['champion_now']} champion while this one "
              f"trained; version {logged['version']} is registered without the alias (re-run to compare with it)")
    print("\n".join(training_summary(result, logged, uri, time.perf_counter() - started, report,
                                    decision=logged["decision"] or decision, model_name=args.model_name)))
    return result, logged
