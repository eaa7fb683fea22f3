"""Seeded synthetic CRM: leads, events and deals from a hidden-stage Markov chain, with an exact oracle.

Each lead walks a continuous-time Markov chain over the stages ``aware -> engaged ->
evaluating -> won/lost`` (with ``cold`` stalls and re-engagement). Its transition rates depend
only on a *fit* level, a quantised logit of its clean attributes, so the true probability of a
win within a horizon given the stage at ``as_of`` is one matrix exponential per level: the
oracle no model can beat. Events are Poisson per stage; the exported tables carry the mess of
a real CRM export (free-text titles, inconsistent casing, placeholders, missing values, duplicate
events).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crm.synthetic_export import messy_leads
from crm.synthetic_truth import SyntheticTruth
from crm.synthetic_world import (EVENT_TYPES, STAGES, draw_deals, draw_events, draw_people, fit_level,  # noqa: F401
                                 generator_matrices, level_fit_values, simulate_chain)


#: EVENT_TYPES and STAGES are the synthetic CRM's vocabulary: imported from here by its users.
TRUTH_FILES = ("truth_leads.parquet", "truth_spells.parquet", "truth.json")


@dataclass
class SyntheticCRM:
    """The three CRM tables of the data contract plus the hidden truth behind them."""

    leads: pd.DataFrame
    events: pd.DataFrame
    deals: pd.DataFrame
    truth: SyntheticTruth
    end: pd.Timestamp

    def oracle_probability(self, snapshots: pd.DataFrame, horizon_days: int = 90) -> np.ndarray:
        """See :meth:`SyntheticTruth.oracle_probability`."""
        return self.truth.oracle_probability(snapshots, horizon_days)

    def filtered_probability(self, snapshots: pd.DataFrame, horizon_days: int = 90) -> np.ndarray:
        """See :meth:`SyntheticTruth.filtered_probability`; filters this CRM's own events."""
        return self.truth.filtered_probability(snapshots, self.events, horizon_days)


def generate_crm(n_leads: int = 20_000, *, start: str = "2025-01-01", months: int = 18,
                 seed: int = 0) -> SyntheticCRM:
    """Generate a reproducible CRM of ``n_leads`` leads created over ``months`` months from ``start``.

    Same arguments, same frames. No event or deal lies before its lead's ``created_at`` or at
    or after ``end`` (``start + months``).
    """
    if isinstance(n_leads, bool) or not isinstance(n_leads, (int, np.integer)) or n_leads < 1:
        raise ValueError(f"The 'n_leads' parameter of generate_crm must be a positive integer. Got {n_leads!r} instead.")
    if isinstance(months, bool) or not isinstance(months, (int, np.integer)) or months < 1:
        raise ValueError(f"The 'months' parameter of generate_crm must be a positive integer. Got {months!r} instead.")
    origin = pd.Timestamp(start)
    if origin.tz is not None:
        origin = origin.tz_convert("UTC").tz_localize(None)
    end = (origin + pd.DateOffset(months=int(months))).as_unit("ns")
    window_days = (end - origin) / pd.Timedelta(days=1)
    # Independent streams: changing how events are drawn does not reshuffle the leads.
    attr_rng, chain_rng, event_rng, mess_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))

    people = draw_people(attr_rng, int(n_leads), window_days)
    level = fit_level(people["fit"])
    generators = generator_matrices(level_fit_values())
    spells = simulate_chain(chain_rng, level, people["created"], generators, window_days)
    lead_ids = np.arange(1, n_leads + 1, dtype=np.int64) + 1_000_000
    to_time = _time_converter(origin)

    leads = messy_leads(mess_rng, people, lead_ids, to_time)
    events = draw_events(event_rng, spells, people, lead_ids, to_time, end)
    deals = draw_deals(chain_rng, spells, people, lead_ids, to_time)
    truth = SyntheticTruth(
        leads=pd.DataFrame({"lead_id": lead_ids, "fit": people["fit"], "fit_level": level.astype(np.int16),
                            "activity": people["activity"], "bad_email": people["bad_email"]}),
        spells=pd.DataFrame({"lead_id": lead_ids[spells["lead"]],
                             "stage": pd.Series(np.asarray(STAGES, dtype=object)[spells["stage"]], dtype="str"),
                             "started_at": to_time(spells["start"]), "ended_at": to_time(spells["stop"])}),
        generators=generators, end=end)
    return SyntheticCRM(leads=leads, events=events, deals=deals, truth=truth, end=end)


def as_it_stood(crm: SyntheticCRM, end) -> SyntheticCRM:
    """The export as it stood at ``end``: leads created, events done and deals closed before it.

    The truth stays whole (the world went on): its oracle answers for any ``as_of`` up to the
    world's own end, so scores taken at ``end`` can be judged against what happened after it.
    """
    end = pd.Timestamp(end)
    if not crm.leads["created_at"].min() < end <= crm.end:
        raise ValueError(f"The 'end' parameter of as_it_stood must lie after the first lead and by the world's end "
                         f"{crm.end}. Got {end} instead.")
    leads = crm.leads.loc[crm.leads["created_at"] < end].reset_index(drop=True)
    events = crm.events.loc[crm.events["occurred_at"] < end].reset_index(drop=True)
    deals = crm.deals.loc[crm.deals["closed_at"] < end].reset_index(drop=True)
    return SyntheticCRM(leads=leads, events=events, deals=deals, truth=crm.truth, end=end)


def write_crm(crm: SyntheticCRM, directory) -> None:
    """Write leads/events/deals Parquet files and the truth files (``truth_*.parquet``, ``truth.json``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    crm.leads.to_parquet(directory / "leads.parquet", index=False)
    crm.events.to_parquet(directory / "events.parquet", index=False)
    crm.deals.to_parquet(directory / "deals.parquet", index=False)
    crm.truth.leads.to_parquet(directory / "truth_leads.parquet", index=False)
    crm.truth.spells.to_parquet(directory / "truth_spells.parquet", index=False)
    # The truth's own end: an export cut earlier (as_it_stood) keeps the whole world's hidden stages.
    meta = {"stages": list(STAGES), "end": crm.truth.end.isoformat(), "generators": crm.truth.generators.tolist()}
    (directory / "truth.json").write_text(json.dumps(meta))


def load_truth(directory) -> SyntheticTruth | None:
    """Read the truth written by :func:`write_crm`; None when the directory holds none (real data)."""
    directory = Path(directory)
    if not all((directory / name).exists() for name in TRUTH_FILES):
        return None
    meta = json.loads((directory / "truth.json").read_text())
    if tuple(meta["stages"]) != STAGES:
        raise ValueError(f"{directory / 'truth.json'}: expected stages {list(STAGES)}, got {meta['stages']}.")
    return SyntheticTruth(leads=pd.read_parquet(directory / "truth_leads.parquet"),
                          spells=pd.read_parquet(directory / "truth_spells.parquet"),
                          generators=np.asarray(meta["generators"], dtype=float),
                          end=pd.Timestamp(meta["end"]))


def _time_converter(origin):
    base = origin.as_unit("ns").value

    def to_time(days):
        return pd.Series(pd.to_datetime(base + np.floor(np.asarray(days) * 86_400e9).astype(np.int64)),
                         dtype="datetime64[ns]")

    return to_time
