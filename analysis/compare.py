"""Model vs. points rules on the same held-out test snapshots: AUC, lift, tiers at equal volume, disagreements."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from analysis.forecast import forecast_table, level_check
from features.build import build_features
from features.snapshots import build_snapshots
from models.rules import PointsRules, RulesError, points_from_inputs, rule_inputs, top_rules
from models.score_bins import gains_by_score
from models.scorecard import fit_scorecard
from models.tiers import TIERS
from training.evaluate import top_share
from training.pipeline import config_from_params, split_snapshots
from training.split import assign_leads, stratified_split, time_ordered_split

SHARES = (0.05, 0.10, 0.20)


@dataclass
class Comparison:
    """What :func:`compare_on_test` measured: headline metrics, tables by name, and the scored test rows."""

    metrics: dict
    tables: dict
    scored: pd.DataFrame  # lead_id, as_of, label, probability, model_tier, points, rule_tier, ...
    params: dict = field(default_factory=dict)
    scorecard: PointsRules | None = None  # the learned points table, when one was fitted


def compare_on_test(bundle, rules: PointsRules, leads: pd.DataFrame, events, deals: pd.DataFrame | None, *,
                    labels: pd.Series | None = None, extra_rules: dict | None = None, scorecard: bool = False,
                    n_disagreements: int = 10, level: float = 0.9, n_bootstrap: int = 200,
                    seed: int = 0) -> Comparison:
    """Score the training run's test snapshots with the model and the rules, and compare them.

    The snapshots and split come from :func:`training.pipeline.split_snapshots` with the run's own
    configuration and data end, so they are exactly the snapshots the model was tested on. A model
    trained on one lead table (split ``time`` or ``stratified``) is compared on its test leads,
    rebuilt from ``labels`` (the outcome column, one value per lead) as training drew them.
    ``extra_rules`` (name -> PointsRules) are scored beside for AUC and lift; ``scorecard=True``
    also fits a learned points table on the training split (``Comparison.scorecard``).
    ``n_bootstrap`` resamples of the test leads give the intervals of the ``intervals`` table.
    """
    run = bundle.metadata.get("params", {})
    config = config_from_params(run)
    table_split = run.get("split") in ("time", "stratified")
    if table_split:
        if labels is None:
            raise ValueError(f"This model was trained on one lead table ({run['split']} split); compare it "
                             "through the same project config (--config) so the outcome column is read.")
        snapshots, windows, history = _table_rows(leads, labels, config, run["split"]), None, None
    else:
        if "data_end" not in run:
            raise ValueError("The model's metadata lacks its training parameters ('data_end'); "
                             "compare needs a model trained by this project.")
        if deals is None:
            raise ValueError("This model was trained on snapshots of leads, events and deals; compare needs "
                             "the deals table too.")
        snapshots, windows, as_of_dates = split_snapshots(leads, deals, config=config, data_end=run["data_end"])
        history = _level_history(leads, deals, as_of_dates, windows, config, run["data_end"])
    wanted = snapshots["split"].eq("test") | (scorecard and snapshots["split"].isin(["train", "calibration"]))
    snapshots = pd.concat([snapshots[wanted.to_numpy()], *([history] if history is not None else [])],
                          ignore_index=True)
    extra_rules = dict(extra_rules or {})
    spec = bundle.spec
    for rule_set in (rules, *extra_rules.values()):
        spec = rule_set.feature_spec(spec)
        if events is None and rule_set.behaviours:
            raise RulesError(f"{rule_set.source}: behaviour rules ({rule_set.behaviours[0].name!r}, ...) need an "
                             "event log, and this data has none; score engagement with attribute rules on the "
                             "lead table's own columns instead.")
    features = build_features(snapshots, leads, events, spec)  # one build serves the model and every rule set
    inputs = rule_inputs(features, snapshots, leads)
    for rule_set in (rules, *extra_rules.values()):
        _check_rule_columns(rule_set, inputs)
    split = snapshots["split"].to_numpy()
    test = split == "test"

    learned = None
    if scorecard:
        policy = config.tier_policy
        shares = ({"sql_share": policy.sql_share, "mql_share": policy.mql_share}
                  if hasattr(policy, "sql_share") else {})
        learned = fit_scorecard(inputs[split == "train"], snapshots.loc[split == "train", "label"], spec=bundle.spec,
                                thresholds_from=inputs[split == "calibration"], **shares)
        extra_rules["learned points"] = learned

    scored_rules = points_from_inputs(rules, inputs[test])
    model = bundle.score(features[test])
    keys = ["lead_id", "label"] if table_split else ["lead_id", "as_of", "label"]
    scored = snapshots.loc[test, keys].reset_index(drop=True).assign(
        probability=model["probability"].to_numpy(), model_tier=model["tier"].to_numpy(),
        points=scored_rules["points"].to_numpy(), rule_tier=scored_rules["tier"].to_numpy(),
        rule_reasons=top_rules(scored_rules).to_numpy())
    for name, rule_set in extra_rules.items():
        scored[f"points_{name}"] = points_from_inputs(rule_set, inputs[test])["points"].to_numpy()
    scored["model_tier_equal_volume"] = equal_volume_tiers(scored["probability"], scored["rule_tier"])
    y = scored["label"].to_numpy()

    scores = {"model": scored["probability"], "rules": scored["points"],
              **{name: scored[f"points_{name}"] for name in extra_rules}}
    auc = pd.DataFrame([{"scorer": name, "roc_auc": roc_auc_score(y, score),
                         "pr_auc": average_precision_score(y, score)} for name, score in scores.items()])
    tiers = tier_comparison(y, {"rules": scored["rule_tier"], "model": scored["model_tier"],
                                "model at equal volume": scored["model_tier_equal_volume"]})
    past = split == "history"
    if table_split:
        forecast, forecast_metrics = _forecast_of_table(scored, level=level)
    else:
        forecast, forecast_metrics = _forecast_backtest(
            scored, y_history=snapshots.loc[past, "label"], p_history=bundle.predict_probability(features[past]),
            deals=deals, before=windows.test_first, level=level)
    intervals = bootstrap_intervals(scored, n=n_bootstrap, seed=seed, level=0.95)
    metrics = {
        "test_rows": int(len(scored)), "test_base_rate": float(y.mean()),
        **{f"{_key(row.scorer)}_{name}": float(getattr(row, name)) for row in auc.itertuples()
           for name in ("roc_auc", "pr_auc")},
        **{f"{_key(row.scorer)}_{row.tier.lower()}_conversion": float(row.conversion_rate)
           for row in tiers.itertuples()},
        **forecast_metrics,
    }
    tables = {
        "auc": auc,
        "lift": lift_table(y, scores),
        "tiers": tiers,
        "crosstab": tier_crosstab(y, scored["rule_tier"], scored["model_tier"]),
        "crosstab_equal_volume": tier_crosstab(y, scored["rule_tier"], scored["model_tier_equal_volume"]),
        "disagreements": disagreements(scored, features[test].reset_index(drop=True), bundle, n=n_disagreements),
        "forecast": forecast,
        "intervals": intervals,
        "rules_gains": gains_by_score(scored["points"], y),  # aggregates only: the planner's rules at any volume
    }
    metrics.update({f"{row.metric}_{bound}": float(getattr(row, bound)) for row in intervals.itertuples()
                    for bound in ("low", "high") if np.isfinite(getattr(row, bound))})
    params = {"rules": rules.description or rules.source, "split": run.get("split", "temporal"),
              "horizon_days": config.horizon_days, "bootstrap_resamples": n_bootstrap}
    if windows is not None:  # the test window keeps its hour on schedules below a day
        params.update(window_test_first=windows.as_dict()["test_first"],
                      window_test_last=windows.as_dict()["test_last"])
    return Comparison(metrics=metrics, tables=tables, scored=scored, params=params, scorecard=learned)


def equal_volume_tiers(probability, reference_tiers) -> np.ndarray:
    """Model tiers sized to another scorer's tier counts: its top n_SQL leads are SQL, the next n_MQL MQL."""
    probability = np.asarray(probability, dtype=float)
    reference = np.asarray(reference_tiers, dtype=object)
    n_sql, n_mql = int((reference == "SQL").sum()), int((reference == "MQL").sum())
    order = np.argsort(-probability, kind="stable")
    tiers = np.full(probability.size, "nurture", dtype=object)
    tiers[order[:n_sql]] = "SQL"
    tiers[order[n_sql:n_sql + n_mql]] = "MQL"
    return tiers


def tier_comparison(y_true, tiers_by_scorer: dict) -> pd.DataFrame:
    """Leads, conversions, conversion rate and share of all conversions per scorer and tier."""
    y_true = np.asarray(y_true, dtype=int)
    rows = []
    for scorer, tiers in tiers_by_scorer.items():
        tiers = np.asarray(tiers, dtype=object)
        for tier in TIERS:
            chosen = tiers == tier
            conversions = int(y_true[chosen].sum())
            rows.append({"scorer": scorer, "tier": tier, "leads": int(chosen.sum()), "conversions": conversions,
                         "conversion_rate": conversions / chosen.sum() if chosen.any() else np.nan,
                         "share_of_conversions": conversions / max(int(y_true.sum()), 1)})
    return pd.DataFrame(rows)


def tier_crosstab(y_true, rule_tiers, model_tiers) -> pd.DataFrame:
    """One row per (rule tier, model tier): leads, conversions and conversion rate in the cell."""
    frame = pd.DataFrame({"rule_tier": pd.Categorical(np.asarray(rule_tiers, dtype=object), categories=TIERS),
                          "model_tier": pd.Categorical(np.asarray(model_tiers, dtype=object), categories=TIERS),
                          "converted": np.asarray(y_true, dtype=int)})
    table = frame.groupby(["rule_tier", "model_tier"], observed=False)["converted"].agg(
        leads="size", conversions="sum").reset_index()
    table["conversion_rate"] = table["conversions"] / table["leads"].where(table["leads"] > 0)
    return table


def lift_table(y_true, scores: dict, *, shares=SHARES) -> pd.DataFrame:
    """For each scorer and top share of leads: leads, conversion rate, lift over base rate, capture."""
    y_true = np.asarray(y_true, dtype=float)
    base, total = y_true.mean(), max(y_true.sum(), 1)
    rows = []
    for name, score in scores.items():
        for share in shares:
            top = top_share(score, share=share)
            rate = y_true[top].mean()
            rows.append({"scorer": name, "top_share": share, "leads": top.size, "conversion_rate": rate,
                         "lift": rate / base if base > 0 else np.nan, "capture": y_true[top].sum() / total})
    return pd.DataFrame(rows)


def disagreements(scored: pd.DataFrame, features: pd.DataFrame, bundle, *, n: int = 10) -> pd.DataFrame:
    """The test leads the model and the rules rank most differently, both ways, converters included.

    ``direction`` is ``model higher`` (the model ranks the lead well above the rules: leads the
    rules miss) or ``rules higher`` (the reverse). Each direction lists up to ``n`` leads: the
    largest rank gaps among leads that converted and among leads that did not, half each, so
    the table shows what each scorer's favourites turned into. One row per lead.
    """
    model_rank = scored["probability"].rank(pct=True).to_numpy()
    rule_rank = scored["points"].rank(pct=True).to_numpy()
    gap = model_rank - rule_rank
    label = scored["label"].to_numpy()
    picks, directions = [], []
    for direction, sign in (("model higher", 1.0), ("rules higher", -1.0)):
        order = np.argsort(-sign * gap, kind="stable")
        order = order[sign * gap[order] > 0]
        # One row per lead: its test snapshots a month apart would otherwise fill the list twice.
        order = order[~pd.Series(scored["lead_id"].to_numpy()[order]).duplicated().to_numpy()]
        converters = order[label[order] == 1][:(n + 1) // 2]
        others = order[label[order] == 0][:n - converters.size]
        chosen = np.concatenate([converters, others])
        chosen = chosen[np.argsort(-sign * gap[chosen], kind="stable")]
        picks.extend(chosen.tolist())
        directions.extend([direction] * chosen.size)
    picks = np.array(picks, dtype=int)
    columns = [column for column in ("lead_id", "as_of", "label", "probability", "model_tier", "points", "rule_tier",
                                     "rule_reasons") if column in scored.columns]
    table = scored.iloc[picks][columns].copy()
    table.insert(0, "direction", directions)
    table.insert(table.columns.get_loc("label") + 1, "rank_gap", gap[picks])
    table["model_reasons"] = model_reasons(bundle, features.iloc[picks]).to_numpy() if picks.size else []
    return table.reset_index(drop=True)


def bootstrap_intervals(scored: pd.DataFrame, *, n: int = 200, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Percentile intervals from resampling leads (all of a lead's snapshots together), ``n`` times.

    Rows: ``roc_auc_difference`` (model minus rules), ``sql_conversion_difference`` (the model's
    SQLs at equal volume minus the rules' SQLs) and each side's SQL conversion. ``low``/``high``
    are NaN when ``n`` is 0. Resampling leads, not rows, keeps one lead's correlated snapshots
    together, so the interval is not too narrow.
    """
    y = scored["label"].to_numpy()
    lead_codes, leads = pd.factorize(scored["lead_id"])
    model_sql = scored["model_tier_equal_volume"].to_numpy() == "SQL"
    rule_sql = scored["rule_tier"].to_numpy() == "SQL"

    def measures(weight):
        def rate(mask):
            total = weight[mask].sum()
            return float((weight[mask] * y[mask]).sum() / total) if total > 0 else np.nan
        both = weight > 0
        if len(np.unique(y[both])) < 2:
            difference = np.nan
        else:
            difference = (roc_auc_score(y, scored["probability"], sample_weight=weight)
                          - roc_auc_score(y, scored["points"], sample_weight=weight))
        model_rate, rule_rate = rate(model_sql), rate(rule_sql)
        return [difference, model_rate - rule_rate, model_rate, rule_rate]

    estimate = measures(np.ones(len(scored)))
    names = ["roc_auc_difference", "sql_conversion_difference", "model_sql_conversion", "rules_sql_conversion"]
    low = high = [np.nan] * len(names)
    if n > 0 and len(leads):
        rng = np.random.default_rng(seed)
        draws = np.array([measures(rng.multinomial(len(leads), np.full(len(leads), 1 / len(leads)))[lead_codes]
                                   .astype(float)) for _ in range(n)])
        tail = (1 - level) / 2 * 100
        low, high = np.nanpercentile(draws, tail, axis=0), np.nanpercentile(draws, 100 - tail, axis=0)
    return pd.DataFrame({"metric": names, "estimate": estimate, "low": low, "high": high, "level": level,
                         "resamples": n})


def model_reasons(bundle, features: pd.DataFrame, *, n: int = 3) -> pd.Series:
    """The model's ``n`` strongest factors per lead in plain words, from its exact contributions."""
    from models.explain import feature_contributions
    from models.reasons import top_reasons

    contributions, _ = feature_contributions(bundle, features)
    texts = []
    for positive, negative in top_reasons(contributions, features, bundle.spec, n=n):
        strongest = sorted(positive + negative, key=lambda reason: -abs(reason.impact))[:n]
        texts.append("; ".join(str(reason) for reason in strongest))
    return pd.Series(texts, index=features.index)


def expected_amounts(deals: pd.DataFrame, *, before, n: int) -> np.ndarray:
    """Each lead's expected deal amount if won: the mean won amount closed before the test window."""
    if "amount" not in deals.columns:
        return np.full(n, np.nan)
    won = deals[deals["outcome"].eq("won") & (deals["closed_at"] < before)]
    return np.full(n, float(won["amount"].mean()) if len(won) else np.nan)


def won_amounts(scored: pd.DataFrame, deals: pd.DataFrame) -> np.ndarray:
    """The amount each converted test snapshot actually brought in within its horizon (0 otherwise)."""
    if "amount" not in deals.columns:
        return np.full(len(scored), np.nan)
    won = deals[deals["outcome"].eq("won")].drop_duplicates("lead_id").set_index("lead_id")["amount"]
    amounts = won.reindex(scored["lead_id"]).fillna(0.0).to_numpy()
    return np.where(scored["label"].to_numpy() == 1, amounts, 0.0)


def _forecast_backtest(scored, *, y_history, p_history, deals, before, level) -> tuple[pd.DataFrame, dict]:
    """Forecast table per test date and model tier (raw and level-checked) against what happened."""
    shift, level_sd = level_check(y_history, p_history)
    amounts = expected_amounts(deals, before=before, n=len(scored))
    revenue = won_amounts(scored, deals)
    frames = []
    for as_of, group in scored.groupby("as_of"):
        rows = group.index.to_numpy()
        table = forecast_table(group["probability"], groups=group["model_tier"], amounts=amounts[rows],
                               actual=group["label"], actual_revenue=revenue[rows], level=level, shift=shift,
                               level_sd=level_sd)
        as_of = pd.Timestamp(as_of)  # a date, or a date and time on a schedule below a day
        frames.append(table.assign(as_of=str(as_of.date()) if as_of == as_of.normalize() else str(as_of)))
    forecast = pd.concat(frames, ignore_index=True)
    order = {"all": 0, **{tier: i + 1 for i, tier in enumerate(TIERS)}}
    forecast = (forecast.assign(_order=forecast["group"].map(order)).sort_values(["as_of", "_order"], kind="stable")
                .drop(columns="_order").reset_index(drop=True))
    forecast = forecast[["as_of", *[column for column in forecast.columns if column != "as_of"]]]
    overall = forecast[forecast["group"].eq("all")]
    p_sum = float(np.sum(p_history))
    metrics = {
        "forecast_history_rows": int(len(p_history)),
        "forecast_history_actual_per_expected": float(np.sum(y_history) / p_sum) if p_sum > 0 else float("nan"),
        "forecast_level_shift": shift,
        "forecast_inside_share": float(overall["inside"].mean()),
        "forecast_inside_share_adjusted": float(overall["inside_adjusted"].mean()),
        "forecast_expected_per_actual": float(overall["expected_conversions"].sum()
                                              / max(overall["actual_conversions"].sum(), 1)),
    }
    return forecast, metrics


def _forecast_of_table(scored, *, level) -> tuple[pd.DataFrame, dict]:
    """Forecast of the test leads of a single-table model (no dates to backtest by): all and per model tier."""
    forecast = forecast_table(scored["probability"], groups=scored["model_tier"], actual=scored["label"], level=level)
    order = {"all": 0, **{tier: i + 1 for i, tier in enumerate(TIERS)}}
    forecast = (forecast.assign(_order=forecast["group"].map(order)).sort_values("_order", kind="stable")
                .drop(columns="_order").reset_index(drop=True))
    overall = forecast[forecast["group"].eq("all")]
    return forecast, {"forecast_inside_share": float(overall["inside"].mean()),
                      "forecast_expected_per_actual": float(overall["expected_conversions"].sum()
                                                            / max(overall["actual_conversions"].sum(), 1))}


def _table_rows(leads: pd.DataFrame, labels: pd.Series, config, split_kind: str) -> pd.DataFrame:
    """The labelled leads of a single-table model with the split training drew (see ``train_on_table``)."""
    labelled = labels.notna().to_numpy()
    kept = leads.loc[labelled].reset_index(drop=True)
    y = pd.Series(labels[labelled].astype(int).to_numpy())
    if split_kind == "time":
        if "created_at" not in kept.columns:
            raise ValueError("The model was split by creation date, but this lead table has no creation date.")
        split = time_ordered_split(kept["created_at"], shares=config.lead_shares)
    else:
        split = stratified_split(y, shares=config.lead_shares, seed=config.seed)
    return pd.DataFrame({"lead_id": kept["lead_id"], "as_of": pd.NaT, "label": y, "split": split})


def _check_rule_columns(rules: PointsRules, inputs: pd.DataFrame) -> None:
    """Every column an attribute rule reads must be in the data: one line naming rule and column otherwise."""
    for rule in rules.attributes:
        if rule.column not in inputs.columns:
            available = sorted(column for column in inputs.columns if not column.startswith(("events_", "decayed_",
                                                                                           "days_since_")))
            raise RulesError(f"{rules.source}: attribute rule {rule.name!r} reads column {rule.column!r}, which "
                             f"this data does not have; columns rules may use: {', '.join(available)}.")


def _level_history(leads, deals, as_of_dates, windows, config, data_end) -> pd.DataFrame:
    """Snapshots of the test split's leads whose whole horizon ended before the test window opened.

    Outcomes known at forecast time, from leads the model never trained or calibrated on: the
    forecast checks the level of its probabilities on them (split name ``history``). Ownership is
    the split's own draw, so leads that converted before the test window are in, as they must be.
    """
    horizon = pd.Timedelta(days=config.horizon_days)
    dates = [date for date in as_of_dates if date + horizon <= windows.test_first]
    every = build_snapshots(leads, deals, as_of_dates=as_of_dates, horizon_days=config.horizon_days,
                            data_end=data_end)
    owner = every["lead_id"].map(assign_leads(every["lead_id"].unique(), lead_shares=config.lead_shares,
                                              seed=config.seed))
    chosen = owner.eq("test").to_numpy() & every["as_of"].isin(dates).to_numpy()
    return every[chosen].assign(split="history")


def _key(name: str) -> str:
    return name.replace(" ", "_")
