"""``lead-serve history``: a lead's score trajectory, or every stored run against the outcomes that came later."""

from __future__ import annotations

import sys


def add_history_parser(commands) -> None:
    """The ``history`` subcommand's arguments (parser building only: nothing heavy is imported)."""
    from command_line import add_command, add_common_arguments

    history = add_command(commands, "history", "a lead's score trajectory, or stored scores against outcomes",
                          "lead-serve history --history score_history --evaluate --deals deals.parquet")
    history.add_argument("--history", help="score history folder written by score --history")
    history.add_argument("--history-table", help="or the history table written by score --history-table (with --db)")
    history.add_argument("--lead", help="print this lead's trajectory")
    history.add_argument("--evaluate", action="store_true",
                         help="score every stored run against the outcomes that came later (needs --deals)")
    history.add_argument("--deals", help="closed deals (.csv or .parquet, or a table / query with --db)")
    history.add_argument("--db", help="database URL holding the history table and / or the deals table")
    history.add_argument("--horizon-days", type=float, default=90,
                         help="a score counts as right when the lead was won within this many days")
    history.add_argument("--until", help="outcomes known up to this time (default: the latest closed deal)")
    add_common_arguments(history, experiment=False)


def run_history(args) -> int:
    """Print the trajectory or the evaluation; a lead without stored scores exits 1, bad arguments raise."""
    from scoring.history import lead_trajectory, open_history, read_outcomes

    if (history := open_history(args.history, args.history_table, url=args.db)) is None:
        raise ValueError("history needs --history FOLDER or --history-table TABLE (with --db).")
    if not (args.evaluate or args.lead):
        raise ValueError("history needs --lead ID (a trajectory) or --evaluate (stored scores vs outcomes).")
    if args.evaluate:
        from scoring.history_evaluation import evaluate_history

        table = evaluate_history(history.read(), read_outcomes(args.deals, db=args.db),
                                 horizon_days=args.horizon_days, until=args.until)
        print(f"stored scores against outcomes within {args.horizon_days:g} days (runs whose horizon has not passed "
              f"count only leads already closed):\n{table.to_string(index=False, float_format='{:.3f}'.format)}")
        return 0
    rows = lead_trajectory(history, args.lead)
    if rows.empty:
        print(f"error: lead {args.lead} has no stored score in {args.history or args.history_table}.", file=sys.stderr)
        return 1
    print(f"lead {args.lead}: {len(rows)} stored score(s)\n{rows.to_string(index=False, float_format='{:.1f}'.format)}")
    return 0
