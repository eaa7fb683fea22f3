"""A scoring run never writes over what it reads: outputs that are inputs are refused before any work.

The inputs are the lead, event and deal tables (files, tables or queries in a database, given on
the command line or by the project config) and the config file itself; the outputs are the
scores (a file or a table), the score history (a folder or a table) and the monitoring report
folder. Each is compared as a :class:`crm.locations.Location`, so no spelling of the same file
or table slips through.
"""

from __future__ import annotations

from pathlib import Path

from crm.locations import Location, file_location, query_locations, table_location


def refuse_outputs_that_are_inputs(*, config_path=None, leads=None, events=None, deals=None, db=None, out=None,
                                   out_db=None, history=None, history_table=None, monitoring_out=None) -> None:
    """Raise ``ValueError`` (one line) when an output of a ``score`` run is, or holds, one of its inputs.

    Arguments are the command line's, as given: ``out`` a file or a table of ``out_db`` (default
    ``db``, else the config's ``[data] url``); ``history`` a folder, ``history_table`` a table.
    """
    url = db
    sources = {"leads": leads, "events": events, "deals": deals}
    inputs = []
    if config_path is not None:
        from crm.config import load_config

        config = load_config(config_path)
        url = db or config.url
        sources = {table: given if given is not None else getattr(config, table)
                   for table, given in sources.items()}
        inputs.append(("config", file_location(config_path)))
    for table, source in sources.items():
        if source is not None:
            inputs += [(f"--{table}", location) for location in _source_locations(url, source)]
    out_url = out_db or url
    outputs = []
    if out is not None:
        if Path(str(out)).suffix.lower() in (".parquet", ".csv") or out_url is None:
            outputs.append(("--out", file_location(out)))  # a file, or Spark's Parquet folder
        else:
            outputs.append(("--out", table_location(out_url, str(out))))
    if history is not None:
        outputs.append(("--history", file_location(history)))
    if history_table is not None and out_url is not None:
        outputs.append(("--history-table", table_location(out_url, str(history_table))))
    if monitoring_out is not None:
        outputs.append(("--monitoring-out", file_location(monitoring_out)))
    for flag, output in outputs:
        for given, source in inputs:
            if output.contains(source):
                how = "is" if output.key == source.key else "holds"
                raise ValueError(f"{flag} {output.label} {how} the input {given} ({source.label}); a run never writes "
                                 "over what it reads: choose another output.")


def _source_locations(url, source) -> list[Location]:
    if url is None:
        return [file_location(source)]
    from crm.database import is_query

    if is_query(str(source)):
        return query_locations(url, str(source))
    return [table_location(url, str(source))]
