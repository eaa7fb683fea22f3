"""What the logged model accepts: feature rows, or raw lead rows whose ``events`` column nests their history.

The pyfunc model (``registry/lead_model.py``) calls :func:`score_model_input`, so ``mlflow models
serve``, ``mlflow.pyfunc.spark_udf`` and a plain ``load_model(...).predict`` all take either shape:

- **feature rows**: every feature of ``bundle.spec.feature_names``, as ``build_features`` makes them;
- **lead rows**: the lead's attribute columns as in the leads table, ``created_at`` (when the model
  uses lead age or events), and ``events``: per lead a list of ``{"occurred_at", "event_type"}``
  records (a Python list, a numpy array from Arrow or Spark, or missing for no events). An
  ``as_of`` column scores each row as of its own time; otherwise the ``as_of`` parameter, else now.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import DataContractError, contract_message, parse_timestamps
from features.timing import naive_utc, utc_now

INPUT_KINDS = ("auto", "features", "leads")
EVENTS_COLUMN = "events"


def score_model_input(bundle, frame: pd.DataFrame, *, input: str = "auto", as_of=None) -> pd.DataFrame:
    """``probability``, ``score`` and ``tier`` for each row of ``frame``, on its index.

    ``input="auto"`` reads the rows as lead rows when they have an ``events`` or ``created_at``
    column or lack any of the model's features, and as feature rows otherwise; ``"features"`` and
    ``"leads"`` say it outright (a model of categorical columns only cannot tell them apart).
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"The lead-conversion model takes a pandas DataFrame. Got {type(frame).__name__} instead.")
    if input_kind(bundle.spec, frame, input) == "features":
        return bundle.score(frame)
    return bundle.score(lead_row_features(bundle.spec, frame, as_of=as_of))


def input_kind(spec, frame: pd.DataFrame, input: str = "auto") -> str:
    """``"features"`` or ``"leads"``: how :func:`score_model_input` reads ``frame``."""
    if input not in INPUT_KINDS:
        raise ValueError(f"The 'input' parameter of the lead-conversion model must be one of {list(INPUT_KINDS)}. "
                         f"Got {input!r} instead.")
    if input != "auto":
        return input
    columns = set(frame.columns)
    if {EVENTS_COLUMN, "created_at"} & columns or not set(spec.feature_names) <= columns:
        return "leads"
    return "features"


def lead_row_features(spec, leads: pd.DataFrame, *, as_of=None) -> pd.DataFrame:
    """Feature rows of raw lead rows (attributes, ``created_at``, nested ``events``), on their index.

    Only events strictly before each row's ``as_of`` count, as everywhere else. Rows are joined to
    their events by position, so lead ids may repeat or be absent.
    """
    from features.build import build_features

    source = "model input"
    n = len(leads)
    positions = np.arange(n)
    moments = _as_of_per_row(leads, as_of, source)
    table = leads.drop(columns=[c for c in (EVENTS_COLUMN, "as_of") if c in leads.columns]).reset_index(drop=True)
    table["lead_id"] = positions
    if spec.lead_age or spec.event_log:
        if "created_at" not in table.columns:
            raise DataContractError(f"{source}: lead rows need a 'created_at' column (the model measures lead age "
                                    f"and event windows from it); or send feature rows. Columns found: "
                                    f"{list(leads.columns)}.")
        table["created_at"] = parse_timestamps(table["created_at"], source=source, column="created_at",
                                               frame=leads.reset_index(drop=True))
        late = table["created_at"].to_numpy() > moments
        if late.any():
            raise DataContractError(contract_message(source, "created_at", "a time before the row's as_of",
                                                     f"{int(late.sum())} leads created after it",
                                                     leads.reset_index(drop=True).loc[late]))
    events = None
    if spec.event_log:
        if EVENTS_COLUMN not in leads.columns:
            raise DataContractError(f"{source}: lead rows need an 'events' column (a list of occurred_at / "
                                    f"event_type records per lead, empty for none) for a model of an event log. "
                                    f"Columns found: {list(leads.columns)}.")
        events = nested_events(leads[EVENTS_COLUMN], source=source)
    snapshots = pd.DataFrame({"lead_id": positions, "as_of": moments})
    return build_features(snapshots, table, events, spec).set_axis(leads.index)


def nested_events(cells: pd.Series, *, source: str = "model input") -> pd.DataFrame:
    """One events frame (``lead_id`` = row position, ``occurred_at``, ``event_type``) from a nested column.

    A cell is a list or array of records (dicts, or anything with ``occurred_at`` and ``event_type``
    keys), or missing.
    """
    rows, times, types = [], [], []
    for position, cell in enumerate(cells.to_numpy(dtype=object)):
        if cell is None or (isinstance(cell, float) and np.isnan(cell)):
            continue
        if isinstance(cell, (str, bytes, dict)) or not hasattr(cell, "__iter__"):
            raise DataContractError(f"{source}: column 'events' must hold a list of {{occurred_at, event_type}} "
                                    f"records per lead; row {position} holds {type(cell).__name__} {str(cell)[:80]!r}.")
        for k, event in enumerate(cell):
            try:
                times.append(event["occurred_at"])
                types.append(event["event_type"])
            except (KeyError, TypeError, IndexError):
                raise DataContractError(f"{source}: events.{position}.{k} must have 'occurred_at' and 'event_type'. "
                                        f"Got {str(event)[:80]!r}.") from None
            rows.append(position)
    events = pd.DataFrame({"lead_id": np.array(rows, dtype=np.int64),
                           "occurred_at": pd.Series(times, dtype=object),
                           "event_type": pd.Series(types, dtype=object)})
    if len(events):
        events["occurred_at"] = parse_timestamps(events["occurred_at"], source=f"{source} events",
                                                 column="occurred_at", frame=events)
    else:
        events["occurred_at"] = events["occurred_at"].astype("datetime64[ns]")
    return events


def _as_of_per_row(leads: pd.DataFrame, as_of, source: str) -> np.ndarray:
    if "as_of" in leads.columns:
        parsed = parse_timestamps(leads["as_of"].reset_index(drop=True), source=source, column="as_of",
                                  frame=leads.reset_index(drop=True))
        return parsed.to_numpy()
    moment = naive_utc(pd.Timestamp(as_of)) if as_of not in (None, "") else utc_now()
    return np.full(len(leads), moment.to_datetime64(), dtype="datetime64[ns]")
