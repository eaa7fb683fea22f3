"""The console summary of a training run: the lines ``lead-train train`` prints when it has logged the model."""

from __future__ import annotations


def training_summary(result, logged: dict, uri: str, seconds: float, report: dict, *, decision=None,
                     model_name: str) -> list[str]:
    """What a person must read after a training run, most important first: doubtful columns, no signal, figures,
    tiers, the promotion decision and where everything went."""
    lines = []
    metrics, params = result.metrics, result.params
    test = (f"test window {params['window_test_first']} .. {params['window_test_last']}, "
            f"{metrics['test_rows']:,.0f} snapshots" if params["split"] == "temporal"
            else f"{params['split']} split, {metrics['test_rows']:,.0f} test leads")
    # What must not be missed comes first: doubtful columns, and a model with nothing to say.
    leakage = result.tables.get("leakage_report")
    if params.get("suspicious_columns") and leakage is not None:
        doubtful = leakage[leakage["verdict"].isin(("suspicious", "kept on request"))].drop_duplicates("column")
        lines.append("\nSUSPICIOUS: " + "; ".join(f"{row.column} (single-column AUC {row.single_column_auc:.3f}, "
                                                   f"{row.verdict})" for row in doubtful.itertuples())
                     + ". Each alone predicts the outcome well enough to have been written after it: the model is not "
                       "promoted automatically. Declare them under [leakage] post_outcome, or promote by hand.")
    if not params.get("has_signal", True):
        lines.append(f"\nNO SIGNAL: validation ROC AUC {metrics['validation_roc_auc']:.4f} does not beat the floor: "
                     "the ranking is noise and the SQL / MQL / nurture tiers below carry no information.")
    lines.append(f"\ntrained {params['model']} + {params['calibration']} calibration in {seconds:.0f} s; "
                 f"{test}, base rate {metrics['test_base_rate']:.3f}")
    if params.get("excluded_columns"):
        lines.append("  excluded as post-outcome (declared, or caught by the leakage guard): "
                     + ", ".join(params["excluded_columns"]))
    line = f"  test ROC AUC {metrics['test_roc_auc']:.4f}"
    if "test_oracle_roc_auc" in metrics:
        line += f" (oracle {metrics['test_oracle_roc_auc']:.4f}"
        if "test_observable_ceiling_roc_auc" in metrics:  # the oracle knows the hidden stage; no model can
            line += f", observable ceiling {metrics['test_observable_ceiling_roc_auc']:.4f}"
        line += ")"
    line += (f" | PR AUC {metrics['test_pr_auc']:.4f} | ECE {metrics['test_ece']:.4f} | "
             f"Brier {metrics['test_brier']:.4f} | top-decile lift {metrics['test_top_decile_lift']:.2f}")
    lines.append(line)
    cutoffs = result.tables.get("calibration_tier_cutoffs")
    if cutoffs is not None:
        lines.append("  tier cut-offs (probability) and volumes on the calibration split: " + "; ".join(
                   f"{row.tier} from {row.from_probability:.3f}: {row.leads:,} ({row.share:.1%}, expected conversion "
                   f"{row.expected_conversion:.3f})" for row in cutoffs.itertuples()))
    if "test_segments" in result.tables:
        lines.append(f"  segment models by {params['segment_by']} on the test split:")
        lines.append("  " + result.tables["test_segments"].to_string(index=False, float_format=lambda v: f"{v:.4f}")
                     .replace("\n", "\n  "))
    lines.append("  conversion per tier on the test split:")
    lines.append("  " + result.tables["test_tiers"].to_string(index=False, float_format=lambda v: f"{v:.3f}")
                 .replace("\n", "\n  "))
    if decision is not None:
        champion = ("" if decision.champion_auc is None else
                    f"champion on the same test window: ROC AUC {decision.champion_auc:.4f}; ")
        lines.append(f"  {champion}{decision.outcome.upper()}: {decision.reason}")
        if decision.outcome == "held for review":
            lines.append(f"  to promote it after checking: lead-train promote --model-name {model_name} "
                         f"--version {logged['version']}")
    lines.append(f"  training report {report['path']} (KS {report['metrics']['test_ks']:.3f})")
    lines.append(f"  registered as version {logged['version']}"
                 f"{' (alias champion)' if logged['champion'] else ''}; MLflow store {uri}, run {logged['run_id']}")
    return lines
