"""A rolling-origin backtest, as ``lead-train backtest`` runs it: refit at each cut-off, test the next window."""

from __future__ import annotations

import logging
import time

from registry import DEFAULT_MODEL_NAME

log = logging.getLogger("lead_scoring")


def backtest(args) -> int:
    """``lead-train backtest``: the export's rows in time order, refit at each cut-off, figures logged to MLflow."""
    from analysis.backtest import backtest_figure
    from crm.export import load_crm_or_config
    from registry.analysis_runs import log_backtest
    from registry.store import use_default_store
    from training.backtest import run_backtest
    from training.backtest_inputs import backtest_inputs

    if args.config is None and not (args.leads and args.events and args.deals):
        raise ValueError("backtest needs --config FILE, or all of --leads, --events and --deals.")
    started = time.perf_counter()
    uri = use_default_store()
    project, leads, labels, events, deals = load_crm_or_config(args.config, leads=args.leads, events=args.events,
                                                               deals=args.deals)
    model_name = args.model_name or (project.model_name if project is not None else None) or DEFAULT_MODEL_NAME
    data = backtest_inputs(leads, labels, events, deals, project=project, n_windows=args.windows,
                           first_share=args.first_share, seed=args.seed, horizon_days=args.horizon_days,
                           snapshot_every_days=args.snapshot_every_days)
    print(f"backtest of {args.model} on {data.shape}: {len(data.windows)} windows from {data.windows[0][0].date()}")
    result = run_backtest(data.features, data.labels, data.times, known_at=data.known_at, groups=data.groups,
                          spec=data.spec, windows=data.windows, model=args.model, seed=args.seed,
                          per_lead_candidates=data.per_lead_candidates)
    figure = backtest_figure(result.windows, title=f"Rolling-origin backtest, {args.model}, {data.shape}")
    run_id = log_backtest(result, model_name=model_name, experiment=getattr(args, "experiment", None), figure=figure,
                          params={"model": args.model, "windows": args.windows, "first_share": args.first_share,
                                  "rows": len(data.features), "shape": data.shape})
    import matplotlib.pyplot as plt

    plt.close(figure)
    print("\n" + result.windows[["window", "test_from", "test_to", "train_rows", "test_rows", "roc_auc", "ece",
                                  "train_base_rate", "test_base_rate", "max_psi", "most_drifted_feature"]]
          .to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\n" + "\n".join(result.findings))
    print(f"\nbacktest in {time.perf_counter() - started:.0f} s; MLflow store {uri}, run {run_id}")
    return 0
