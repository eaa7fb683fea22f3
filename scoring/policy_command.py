"""``lead-serve policy show|save|restore``: a model version's tier policy from scripts, as the planner page saves it."""

from __future__ import annotations

import getpass
import sys


def add_policy_parser(commands) -> None:
    """The ``policy`` subcommand's arguments (parser building only: nothing heavy is imported)."""
    from command_line import HelpFormatter, add_common_arguments

    policy = commands.add_parser(
        "policy", help="show, save or restore a model version's tier policy (SQL / MQL cut-offs)",
        formatter_class=HelpFormatter,
        description="The cut-offs score, spark-score and http use for a model version, kept in MLflow with who "
                    "decided, when and why. Cut-offs are probabilities or, with --scores, volumes a week.",
        epilog="example:\n  lead-serve policy show --model models:/lead-conversion@champion\n"
               "  lead-serve policy save --sql 0.3 --mql 0.1 --reason 'two more reps from May'\n"
               "  lead-serve policy save --sql-per-week 40 --mql 0.08 --scores scores.parquet --reason 'capacity'\n"
               "  lead-serve policy restore --entry 0 --reason 'back to the trained cut-offs'")
    policy.add_argument("action", choices=("show", "save", "restore"))
    policy.add_argument("--model", default="models:/lead-conversion@champion",
                        help="MLflow model URI of a registered version (default: %(default)s)")
    for tier in ("sql", "mql"):
        name = tier.upper()
        policy.add_argument(f"--{tier}", type=float, help=f"{name} cut-off as a probability")
        policy.add_argument(f"--{tier}-per-week", type=float, help=f"{name} cut-off as leads a week (needs --scores)")
        policy.add_argument(f"--{tier}-per-month", type=float,
                            help=f"{name} cut-off as leads a month (needs --scores)")
    policy.add_argument("--scores", help="the latest scoring run's output: the open base volumes are counted on")
    policy.add_argument("--leads-per-week", type=float, help="leads entering the base a week (default: the base "
                                                             "spread over the model's horizon)")
    policy.add_argument("--entry", type=int, help="restore: the history entry to make current (0: as trained)")
    policy.add_argument("--by", default=None, help="who decides (default: the login name)")
    policy.add_argument("--reason", help="why (required for save and restore)")
    add_common_arguments(policy, experiment=False)


def run_policy(args) -> int:
    """Run one ``policy`` action; refusals are one line on stderr and exit status 2, nothing saved."""
    from registry.loading import load_bundle
    from registry.store import quiet_mlflow, use_default_store
    from registry.tier_policy import PolicyRefused, restore_tier_policy, save_tier_policy, tier_policy_history

    quiet_mlflow(verbose=args.verbose)
    use_default_store()
    try:
        bundle, identity = load_bundle(args.model)
        name, version = identity.get("model_name"), identity.get("model_version")
        if not name:
            raise PolicyRefused(f"--model {args.model}: a tier policy belongs to a registered version; "
                                "give models:/name/<version> or models:/name@alias.")
        by = args.by or getpass.getuser()
        if args.action == "save":
            sql, mql, settings = _cutoffs(args, bundle)
            entry = save_tier_policy(name, version, sql=sql, mql=mql, by=by, reason=args.reason, settings=settings)
            print(f"saved entry {entry['entry']} of {name} version {version}: SQL from {entry['sql']:.4f}, "
                  f"MQL from {entry['mql']:.4f} (by {entry['by']}: {entry['reason']})")
            return 0
        if args.action == "restore":
            if args.entry is None:
                raise PolicyRefused("policy restore needs --entry N (lead-serve policy show lists them).")
            entry = restore_tier_policy(name, version, entry=args.entry, by=by, reason=args.reason)
            print(f"restored entry {args.entry} of {name} version {version} as entry {entry['entry']}: "
                  f"SQL from {entry['sql']:.4f}, MQL from {entry['mql']:.4f}")
            return 0
        history = tier_policy_history(name, version)
    except (PolicyRefused, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"tier policy history of {name} version {version} (the last entry is current):")
    for entry in history:
        print(f"  {entry['entry']:>3}  {entry['at']}  SQL from {entry['sql']:.4f}  MQL from {entry['mql']:.4f}  "
              f"{entry['by']}: {entry['reason']}")
    return 0


def _cutoffs(args, bundle) -> tuple[float, float, dict]:
    """Each cut-off from its one given setting (probability, a week, a month); the other falls back to the current."""
    from scoring.planner import OpenBase, cutoff_from_setting, default_leads_per_week

    binned = OpenBase(scores=args.scores).binned() if args.scores else None
    if args.scores and binned is None:
        raise ValueError(f"--scores {args.scores}: no such file.")
    per_week = args.leads_per_week
    if per_week is None and binned is not None:
        per_week = default_leads_per_week(binned[1]["leads"],
                                          float(bundle.metadata.get("params", {}).get("horizon_days") or 90))
    values, settings = {}, {"leads_per_week": per_week}
    for tier in ("sql", "mql"):
        given = {mode: getattr(args, f"{tier}{suffix}") for mode, suffix in
                 (("probability", ""), ("per_week", "_per_week"), ("per_month", "_per_month"))}
        given = {mode: value for mode, value in given.items() if value is not None}
        if len(given) > 1:
            raise ValueError(f"Give the {tier.upper()} cut-off one way: {', '.join(given)} were all given.")
        if not given:
            raise ValueError(f"policy save needs the {tier.upper()} cut-off: --{tier}, --{tier}-per-week or "
                             f"--{tier}-per-month.")
        (mode, value), = given.items()
        settings[tier] = {"mode": mode, "value": value}
        values[tier] = cutoff_from_setting(settings[tier], binned[0] if binned else None, leads_per_week=per_week,
                                           what=tier.upper())
    return values["sql"], values["mql"], settings
