"""What a lead may plausibly hold, one rule for the HTTP service (a 422) and batch scoring (a refusal).

A size or an amount the model reads on a log scale (``spec.numeric_columns``: company size,
annual revenue) is never negative, and a lead is created between 1990 and the moment it is
scored. A value outside is refused, not scored: a lead "created" in 1900 is a typing or export
error, and scoring it would rank it as the oldest lead ever seen (it scored SQL before). The
HTTP service names the field of each refused lead; batch scoring names each field once, with
how many leads hold such a value, and writes nothing.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from features.column_types import EPOCH_START_YEAR
from features.contract import DataContractError, example_rows

#: The earliest plausible creation: CRMs (and their exports' epoch mistakes) start later.
EARLIEST_CREATED_AT = pd.Timestamp(EPOCH_START_YEAR, 1, 1)


def size_problem(value) -> str | None:
    """Why a size or amount is implausible (negative), or None; missing values are fine."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isnan(number) and number < 0:
        return f"must not be negative, got {value!r}"
    return None


def created_problem(created_at, latest) -> str | None:
    """Why a creation time is implausible (before 1990, or after ``latest``: now, or the as_of scored), or None."""
    moment = given = pd.Timestamp(created_at)
    if moment.tzinfo is not None:
        moment = moment.tz_convert("UTC").tz_localize(None)
    if moment < EARLIEST_CREATED_AT:
        return f"must not be before {EPOCH_START_YEAR}, got {given.isoformat()}"
    if moment > pd.Timestamp(latest):
        return f"must not be after as_of ({latest})"
    return None


class ImplausibleLeads:
    """Implausible values counted over a lead base read in chunks; :meth:`check` refuses them, one line per field."""

    def __init__(self, spec, *, source: str = "leads", latest=None):
        self.spec, self.source, self.latest = spec, source, latest
        self.counts: dict[str, int] = {}
        self.examples: dict[str, pd.DataFrame] = {}

    def add(self, leads: pd.DataFrame) -> bool:
        """Count ``leads``' implausible values; True when this chunk had any."""
        found = False
        for column, bad in self._problems(leads):
            count = int(bad.sum())
            if count:
                found = True
                self.counts[column] = self.counts.get(column, 0) + count
                if column not in self.examples:
                    self.examples[column] = leads.loc[bad, [name for name in ("lead_id", column) if name in leads]]
        return found

    def check(self) -> None:
        """Raise :class:`DataContractError` naming each implausible field, its count and example rows."""
        if not self.counts:
            return
        lines = []
        for column, count in self.counts.items():
            if column == "created_at":
                rule = f"creation times from {EPOCH_START_YEAR} on" + ("" if self.latest is None else
                                                                     f" and not after {self.latest}")
            else:
                rule = "non-negative sizes and amounts"
            lines.append(f"{self.source}: column {column!r} must hold {rule}; {count:,} lead(s) do not, as the "
                         f"HTTP service would refuse them (422). Example rows: {example_rows(self.examples[column], limit=3)}")
        raise DataContractError("\n".join(lines))

    def _problems(self, leads: pd.DataFrame):
        for column in self.spec.numeric_columns:
            if column in leads.columns:
                # Read for certain before (crm.readers): text here would be a caller's error, not a NaN to skip.
                values = pd.to_numeric(leads[column]).to_numpy(dtype=float, na_value=np.nan)
                with np.errstate(invalid="ignore"):
                    yield column, values < 0
        if "created_at" in leads.columns and pd.api.types.is_datetime64_any_dtype(leads["created_at"]):
            created = leads["created_at"]
            bad = (created < EARLIEST_CREATED_AT).to_numpy()
            if self.latest is not None:
                bad |= (created > pd.Timestamp(self.latest)).to_numpy()
            yield "created_at", np.asarray(bad, dtype=bool)
