"""A training run's settings from its three sources: the command line's flags, the project config, the defaults.

Spans and policies given on the command line win over the config's ``[training]`` and ``[tiers]``,
which win over :class:`training.pipeline.TrainingConfig`'s defaults.
"""

from __future__ import annotations

import pandas as pd

from models.tiers import (
    CapacityPolicy,
    ExpectedValuePolicy,
    LiftPolicy,
    PrecisionPolicy,
    ThresholdPolicy,
)

#: Flags that are spans of time; given, they win over the config's.
SPAN_OPTIONS = ("horizon_days", "snapshot_every_days", "test_days", "calibration_days")


def training_options(flags, deals, project=None) -> dict:
    """Keyword arguments of :class:`TrainingConfig` for the parsed ``flags`` of ``lead-train train`` / ``demo``."""
    from models.threads import resolve_threads

    options = dict(tier_policy=tier_policy_from_flags(flags, deals), seed=flags.seed, segment_by=flags.segment_by,
                   search_seconds=flags.search_seconds)
    if project is not None:  # the config file's [training], [leakage] and [tiers] win over the defaults
        options.update(project.training_options())
        if project.tiers:
            options["tier_policy"] = configured_tier_policy(project.tiers, deals)
    options.update({name: getattr(flags, name) for name in SPAN_OPTIONS if getattr(flags, name, None) is not None})
    for name in ("split_by", "refit"):
        if getattr(flags, name, None) is not None:
            options[name] = getattr(flags, name)
    options["threads"] = resolve_threads(flags.threads, config_threads=project.runtime.get("threads")
                                         if project is not None else None)
    return options


def tier_policy_from_flags(flags, deals):
    """The tier policy the flags ask for; expected value takes a won deal's value from the deals when not given."""
    if flags.tier_policy == "precision":
        return PrecisionPolicy(sql_precision=flags.sql_precision, mql_precision=flags.mql_precision)
    if flags.tier_policy == "threshold":
        return ThresholdPolicy(sql_probability=flags.sql_probability, mql_probability=flags.mql_probability)
    if flags.tier_policy == "lift":
        return LiftPolicy(sql_lift=flags.sql_lift, mql_lift=flags.mql_lift)
    if flags.tier_policy == "expected-value":
        won_value = flags.won_value if flags.won_value is not None else median_won_amount(deals, "--won-value")
        return ExpectedValuePolicy(won_value=won_value, sql_cost=flags.contact_cost, mql_cost=flags.nurture_cost)
    return CapacityPolicy(sql_share=flags.sql_share, mql_share=flags.mql_share)


def configured_tier_policy(values: dict, deals):
    """The config's ``[tiers]`` as a policy; expected value takes a won deal's value from the deals when not set."""
    from models.tiers import policy_from_dict

    values = dict(values)
    if values.get("kind") == "expected_value" and "won_value" not in values:
        values["won_value"] = median_won_amount(deals, "[tiers] won_value")
    return policy_from_dict(values)


def median_won_amount(deals, setting: str) -> float:
    """The median amount of won deals, said on the console; a sentence naming ``setting`` when there is none."""
    amounts = (deals.loc[deals["outcome"].eq("won"), "amount"].dropna()
               if deals is not None and "amount" in deals.columns else pd.Series(dtype=float))
    if amounts.empty:
        raise ValueError(f"Expected-value tiers need {setting}: the deals carry no amounts of won deals to take "
                         "it from.")
    print(f"expected-value tiers: a won deal is worth {amounts.median():,.0f} (median amount of {len(amounts):,} "
          "won deals)")
    return float(amounts.median())
