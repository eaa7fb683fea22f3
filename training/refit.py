"""The champion refit on everything known: after selection and evaluation, the chosen settings are fitted
again on every snapshot whose outcome is known at the data's end.

The evaluated model has seen nothing of the last horizon + calibration + test span of the data (240 days
on the demo); a champion scoring the open base should. The refit repeats the evaluated procedure
moved forward to the data's end: the newest ``calibration_days`` of labelled snapshots calibrate (and
cut the tiers, and are the monitoring reference), every snapshot whose horizon ends before that window
opens fits (so no fitting label is read past the calibration window's opening, the same leads being in
both), of every lead: also the snapshots the lead-share split left out (a training lead's later ones, a
test lead's earlier ones), which gave the demo's refit 1.7 times the leads and closed a quarter of its
forward gap to the oracle (``benchmarks/forward_gap.py``). Its held-out figures are the procedure's,
measured by the evaluation on the test window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from features.build import build_features
from features.timing import duration
from models.bundle import ModelBundle
from models.monitoring import build_reference
from models.tiers import tier_cutoffs
from training.calibrate import calibrate
from training.weights import fit_weighted, training_weights


def refit_on_known(features: pd.DataFrame, labels, as_of, *, groups, candidate, per_lead: bool, horizon_days,
                   calibration_days, tier_policy, categorical=(), seed: int = 0, half_life_days=None) -> dict:
    """Fit ``candidate`` (unfitted) on the known snapshots, calibrate on the newest window, cut the tiers.

    ``features``, ``labels``, ``as_of`` and ``groups`` (lead ids) are every labelled snapshot, whatever its
    split (each one's outcome known at the data's end: censored ones were never built). Returns ``{"model", "thresholds",
    "reference", "cutoffs", "params"}``.
    """
    labels = np.asarray(labels, dtype=int)
    as_of = pd.to_datetime(pd.Series(np.asarray(as_of))).to_numpy()
    groups = np.asarray(groups)
    dates = np.unique(as_of)
    calibration_span = duration(calibration_days).to_timedelta64()
    later = dates[dates > dates[-1] - calibration_span]
    calibration_first = later[0] if later.size else dates[-1]
    fit = as_of + duration(horizon_days).to_timedelta64() <= calibration_first
    calibrating = as_of >= calibration_first
    for name, rows in (("fitting", fit), ("calibration", calibrating)):
        if np.bincount(labels[rows], minlength=2).min() == 0:
            raise ValueError(f"The refit's {name} rows hold one outcome only ({int(rows.sum())} snapshots); it needs "
                             "both. Train without the refit, or with a longer data window.")
    weight = training_weights(groups[fit], as_of[fit], per_lead=per_lead, half_life_days=half_life_days)
    model = fit_weighted(clone(candidate), features[fit], labels[fit], weight)
    calibrated, _, probability = calibrate(model, features[calibrating], labels[calibrating], seed=seed,
                                           with_probability=True)
    thresholds = tier_policy.choose(probability)
    reference = build_reference(features[calibrating], probability, thresholds.assign(probability),
                                categorical=categorical, source="the refit's calibration window")
    cutoffs = tier_cutoffs(thresholds, probability)
    params = {"refit_rows_fit": int(fit.sum()), "refit_leads_fit": int(pd.unique(groups[fit]).size),
              "refit_rows_calibration": int(calibrating.sum()),
              "refit_fit_as_of_last": str(pd.Timestamp(as_of[fit].max())),
              "refit_calibration_first": str(pd.Timestamp(calibration_first)),
              "refit_calibration_last": str(pd.Timestamp(dates[-1]))}
    return {"model": calibrated, "thresholds": thresholds, "reference": reference, "cutoffs": cutoffs, "params": params}


def refit_registered(features, snapshots, fitted: dict, *, spec, config, data_end, log) -> dict:
    """Training's refit step: with ``config.refit``, ``fitted``'s model, thresholds, reference and cut-offs
    replaced by :func:`refit_on_known`'s; returns the params that say which model is registered.

    ``features`` and ``snapshots`` are every labelled snapshot (``training.snapshot_split.split_snapshots``
    with ``unassigned=True``), not only those a split holds."""
    if not config.refit:
        return {"registered_model": "the evaluated model (fitted on the training split)"}
    if config.segment_by:
        log("refit: not done with segment models; the evaluated model is registered")
        return {"registered_model": "the evaluated model (no refit with segment models)"}
    refit = refit_on_known(features, snapshots["label"], snapshots["as_of"], groups=snapshots["lead_id"],
                           candidate=fitted["candidate"], per_lead=fitted["per_lead"],
                           horizon_days=config.horizon_days, calibration_days=config.calibration_days,
                           tier_policy=config.tier_policy, categorical=spec.categorical_feature_names, seed=config.seed,
                           half_life_days=fitted.get("half_life_days"))
    fitted.update(model=refit["model"], thresholds=refit["thresholds"], reference=refit["reference"],
                  cutoffs=refit["cutoffs"])
    params = refit["params"]
    log(f"refit on everything known at {data_end}: fitted on {params['refit_rows_fit']:,} snapshots of "
        f"{params['refit_leads_fit']:,} leads (as_of up to "
        f"{params['refit_fit_as_of_last']}), calibrated on {params['refit_rows_calibration']:,} (as_of from "
        f"{params['refit_calibration_first']}); the test figures are the procedure's, held out")
    return {**params, "refit_data_end": str(data_end),
            "registered_model": "refit on everything known at the data's end (the test figures are the procedure's)"}


def compare_champion(champion: ModelBundle, test_rows: pd.DataFrame, leads: pd.DataFrame, events, fitted: dict,
                     *, spec=None, label: str | None = None, split: dict | None = None, log) -> None:
    """Score the champion on the same test snapshots, when its features can be built from this data.

    A champion trained on another data contract (another label, or lead columns this run's ``spec``
    does not declare) is not compared. A champion refit on everything known is judged only on test
    snapshots after its data ended, the challenger on the same ones (:func:`champion_rows`).
    ``champion_comparison`` says which comparison was made, or why none. When no such snapshot has both
    outcomes yet but the champion's run had this run's data end and split (``split``: this run's params),
    the procedures are compared: the champion's own held-out test figure, on the same test window.
    """
    foreign = other_contract(champion, spec=spec, label=label)
    if foreign:
        fitted["params"]["champion_comparison"] = f"not compared: the champion was trained on {foreign}"
        log(f"champion {fitted['params']['champion_comparison']}")
        return
    fair, comparison = champion_rows(test_rows, champion.metadata.get("params", {}))
    y_test = np.asarray(fitted["y_test"])[fair.to_numpy()]
    if np.unique(y_test).size < 2 and same_test_window(champion.metadata.get("params", {}), split or {}) and (
            "test_roc_auc" in champion.metadata.get("metrics", {})):
        fitted["params"]["champion_comparison"] = ("the procedures on the same test window (the champion was refit "
                                                   "on its outcomes: its own held-out figure from its run)")
        fitted["metrics"]["champion_test_roc_auc"] = float(champion.metadata["metrics"]["test_roc_auc"])
        log(f"champion compared by {fitted['params']['champion_comparison']}")
        return
    if np.unique(y_test).size < 2:
        fitted["params"]["champion_comparison"] = (f"not compared: the champion was refit on outcomes up to "
                                                   f"{champion.metadata['params']['refit_data_end']}, which cover "
                                                   "this test window")
        log(f"champion {fitted['params']['champion_comparison']}")
        return
    try:
        features = build_features(test_rows[fair], leads, events, champion.spec)
    except (KeyError, ValueError) as error:
        log(f"champion not comparable on this table ({error}); it is not scored")
        fitted["params"]["champion_comparison"] = f"not compared: its features cannot be built from this data ({error})"
        return
    fitted["params"]["champion_comparison"] = comparison
    fitted["metrics"]["champion_test_roc_auc"] = float(roc_auc_score(y_test, champion.predict_probability(features)))
    if not fair.all():  # the challenger on the same rows, so the two figures compare
        fitted["metrics"]["challenger_fair_roc_auc"] = float(roc_auc_score(y_test,
                                                                           fitted["probability"][fair.to_numpy()]))


#: The params that fix a run's test snapshots: equal in two runs on the same data, the same test window.
SPLIT_PARAMS = ("data_end", "horizon_days", "snapshot_every_days", "test_days", "calibration_days", "lead_shares",
                "split_by", "seed", "window_test_first", "window_test_last")


def same_test_window(champion_params: dict, split: dict) -> bool:
    """Whether the champion's run and this one (``split``: its params) took the same test snapshots."""
    def plain(value):
        return [float(share) for share in value] if isinstance(value, (list, tuple)) else str(value)

    return all(key in champion_params and key in split and plain(champion_params[key]) == plain(split[key])
               for key in SPLIT_PARAMS)


def other_contract(champion: ModelBundle, *, spec=None, label: str | None = None) -> str:
    """Why ``champion`` belongs to another data contract than this run (empty when it does not).

    ``label`` is this run's label definition (``registry``'s words, e.g. "won within 90 days of as_of");
    ``spec`` its declared feature spec, before the leakage guard drops columns.
    """
    params = champion.metadata.get("params", {})
    theirs = _label_of(params)
    if label is not None and theirs is not None and theirs != label:
        return f"another label ({theirs}; this run: {label})"
    if spec is not None:
        missing = sorted(lead_columns(champion.spec) - lead_columns(spec))
        if missing:
            return f"lead columns this data does not declare ({', '.join(missing)})"
    return ""


def lead_columns(spec) -> set:
    """The lead table's columns a feature spec reads."""
    named = (*spec.categorical_columns, *spec.numeric_columns, *spec.raw_numeric_columns, *spec.boolean_columns,
             *spec.engagement_columns, spec.job_title_column, spec.email_column)
    return {str(column) for column in named if column}


def _label_of(params: dict) -> str | None:
    """The champion's label definition in the registry's words; None for a bundle that did not log its split."""
    from registry.runs import label_definition  # the one wording; a champion was loaded through MLflow anyway

    return label_definition(params) if params.get("split") else None


def champion_rows(test: pd.DataFrame, champion_params: dict) -> tuple[pd.Series, str]:
    """The test rows a champion may fairly be judged on, and which comparison that is, in words.

    A champion refit on everything known has seen the outcomes of every snapshot before its data's
    end; it is judged only on test snapshots whose whole horizon lies after that end (as_of at or
    after it). A champion that was not refit saw nothing of this test window's outcomes (its own
    split ended earlier) and is judged on all of it.
    """
    refit_end = champion_params.get("refit_data_end")
    if not refit_end:
        return pd.Series(True, index=test.index), "the same test window"
    after = pd.to_datetime(test["as_of"]) >= pd.Timestamp(refit_end)
    return after, f"the test snapshots taken after the champion's refit data ended ({refit_end})"
