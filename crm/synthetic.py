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

STAGES = ("aware", "engaged", "evaluating", "cold", "won", "lost")
EVENT_TYPES = (
    "email_open", "email_click", "page_view", "pricing_page_view", "content_download", "webinar_attended",
    "form_submit", "newsletter_signup", "free_trial_start", "demo_request", "unsubscribe", "email_bounce",
)
#: Fit logits are quantised on this grid so that each level has one generator matrix.
N_FIT_LEVELS = 64
FIT_RANGE = (-4.0, 4.0)
TRUTH_FILES = ("truth_leads.parquet", "truth_spells.parquet", "truth.json")


@dataclass
class SyntheticTruth:
    """The generator's hidden state: fit level per lead, stage spells, one rate matrix per level.

    ``leads``: lead_id, fit, fit_level, activity, bad_email (sorted by lead_id).
    ``spells``: lead_id, stage, started_at, ended_at; the last spell of a lead ends at ``end``.
    ``generators``: array (levels, stages, stages) of transition rates per day.
    """

    leads: pd.DataFrame
    spells: pd.DataFrame
    generators: np.ndarray
    end: pd.Timestamp

    def oracle_probability(self, snapshots: pd.DataFrame, horizon_days: int = 90) -> np.ndarray:
        """True P(won deal with as_of <= closed_at < as_of + horizon | hidden state at as_of), per row.

        ``snapshots`` needs ``lead_id`` and ``as_of``; each lead must exist, be created before
        ``as_of``, and ``as_of`` must not lie after ``end`` (the hidden state is unknown there).
        A lead already closed before ``as_of`` gets 0: it cannot close again.
        """
        query = self._query(snapshots, horizon_days, "oracle_probability")
        if len(query) == 0:
            return np.zeros(0)
        spells = pd.DataFrame({
            "lead_id": self.spells["lead_id"].to_numpy(dtype=np.int64),
            "started_at": self.spells["started_at"].to_numpy(dtype="datetime64[ns]"),
            "stage_code": pd.Categorical(self.spells["stage"], categories=STAGES).codes,
        }).sort_values("started_at", kind="stable")
        # Strictly before as_of: a deal closing exactly at as_of still counts for the label.
        found = pd.merge_asof(query.sort_values("as_of", kind="stable"), spells, left_on="as_of",
                              right_on="started_at", by="lead_id", allow_exact_matches=False)
        unmatched = found["stage_code"].isna()
        if unmatched.any():
            raise ValueError("oracle_probability: every snapshot needs a known lead created before as_of; "
                             f"{int(unmatched.sum())} rows are not, e.g.\n"
                             f"{found.loc[unmatched, ['lead_id', 'as_of']].head(5).to_string()}")
        order = found["row"].to_numpy()
        stage = found["stage_code"].to_numpy(dtype=np.int64)
        lead_ids = self.leads["lead_id"].to_numpy(dtype=np.int64)
        level = self.leads["fit_level"].to_numpy(dtype=np.int64)[np.searchsorted(lead_ids, found["lead_id"])]
        result = np.empty(len(query))
        result[order] = self.won_within(horizon_days)[level, stage]
        return result

    def filtered_probability(self, snapshots: pd.DataFrame, events, horizon_days: int = 90, *, leads=None,
                             activity_nodes: int = 33, seed: int = 0) -> np.ndarray:
        """Bayes-optimal P(won deal within the horizon | the lead's events before ``as_of``, its fit level), per row.

        The observable ceiling beside :meth:`oracle_probability`: the same chain and horizon, but
        the stage at ``as_of`` is inferred, not known. A forward filter of the hidden chain runs from
        ``created_at`` (stage ``aware``) over the lead's events strictly before ``as_of``, exactly as
        :func:`generate_crm` draws them: Poisson events per stage scaled by the lead's activity,
        the action that opens each ``engaged`` and ``evaluating`` spell, the unsubscribe that may
        open a ``cold`` one, bounces of a bad address; silence between events and the absence of a
        deal (the deals table shows every close) count as evidence too. The lognormal activity is
        integrated on ``activity_nodes`` quadrature nodes and the bad-address flag on its prior
        share. ``events`` is a frame or a CSV/Parquet path with ``lead_id``, ``occurred_at`` and
        ``event_type``; verbatim duplicate rows and the first touch at ``created_at`` carry no
        information about the stage and are dropped. A lead closed before ``as_of`` gets 0.

        Without ``leads`` the fit level is the truth's: the ceiling of a model that reads a lead's
        attributes perfectly. With ``leads``, the exported (messy) leads table, the fit level is
        inferred as a model must: its prior given the lead's title, industry, country, source,
        company size, revenue, e-mail domain and first touch (missing values drawn from the
        generator's distributions, ``seed``), times the events' likelihood under each level.
        """
        query = self._query(snapshots, horizon_days, "filtered_probability")
        if isinstance(activity_nodes, bool) or not isinstance(activity_nodes, (int, np.integer)) or activity_nodes < 1:
            raise ValueError("The 'activity_nodes' parameter of filtered_probability must be a positive integer. "
                             f"Got {activity_nodes!r} instead.")
        result = np.zeros(len(query))
        if len(query) == 0:
            return result
        lead_ids = self.leads["lead_id"].to_numpy(dtype=np.int64)
        first = self.spells.groupby("lead_id", sort=True)["started_at"].min()
        closing = self.spells.loc[self.spells["stage"].isin(STAGES[_WON:])].groupby("lead_id")["started_at"].min()
        created = first.reindex(query["lead_id"]).to_numpy(dtype="datetime64[ns]")
        unknown = np.isnat(created) | (created >= query["as_of"].to_numpy())
        if unknown.any():
            raise ValueError("filtered_probability: every snapshot needs a known lead created before as_of; "
                             f"{int(unknown.sum())} rows are not, e.g.\n"
                             f"{query.loc[unknown, ['lead_id', 'as_of']].head(5).to_string()}")
        closed_at = closing.reindex(query["lead_id"]).to_numpy(dtype="datetime64[ns]")
        open_ = ~(closed_at < query["as_of"].to_numpy())  # NaT compares False: never closed
        query = query.loc[open_].assign(created=created[open_])
        frame = _event_frame(events)
        observed = _observed_events(frame, query)
        model = _ObservationModel.build(self.generators, activity_nodes)
        won = self.won_within(horizon_days)[:, :_WON]
        ids = np.unique(query["lead_id"].to_numpy())
        if leads is None:
            level = self.leads["fit_level"].to_numpy(dtype=np.int64)[np.searchsorted(lead_ids, ids)]
            stage, evidence = _filter_stages(query, observed, level, model)
            _check_possible(query, evidence[:, None])
            result[query["row"].to_numpy()] = np.einsum("ns,ns->n", stage, won[level[np.searchsorted(ids, query["lead_id"])]])
            return result
        prior = _fit_prior(leads, ids, _first_touches(frame, query), np.random.default_rng(seed))
        evidence = np.full((len(query), N_FIT_LEVELS), -np.inf)
        chance = np.zeros((len(query), N_FIT_LEVELS))
        top = prior.sum(axis=1).max(axis=1)
        for level in range(N_FIT_LEVELS):  # one filter per fit level, over the leads it is possible for
            weight = prior[:, :, level]
            possible = weight.sum(axis=1) > 1e-6 * top  # a level a millionth as likely as the best cannot matter
            if not possible.any():
                continue
            rows = np.flatnonzero(np.isin(query["lead_id"].to_numpy(), ids[possible]))
            part = query.iloc[rows]
            stage, evidence[rows, level] = _filter_stages(part, observed.loc[observed["lead_id"].isin(ids[possible])],
                                                          np.full(possible.sum(), level), model, weight[possible])
            chance[rows, level] = stage @ won[level]
        _check_possible(query, evidence)
        posterior = np.exp(evidence - evidence.max(axis=1, keepdims=True))
        result[query["row"].to_numpy()] = (posterior * chance).sum(axis=1) / posterior.sum(axis=1)
        return result

    def won_within(self, horizon_days: float) -> np.ndarray:
        """Table (levels, stages): P(absorbed in won within the horizon | level, stage); 0 if closed."""
        from scipy.linalg import expm

        table = np.array([expm(q * float(horizon_days))[:, _WON] for q in self.generators])
        table[:, [_WON, _LOST]] = 0.0
        return np.clip(table, 0.0, 1.0)

    def _query(self, snapshots, horizon_days, caller) -> pd.DataFrame:
        """Checked snapshots as ``lead_id`` (int64), ``as_of`` (datetime64[ns]) and ``row`` (position)."""
        if not (isinstance(horizon_days, (int, float, np.integer, np.floating)) and horizon_days > 0):
            raise ValueError(f"The 'horizon_days' parameter of {caller} must be a positive number. "
                             f"Got {horizon_days!r} instead.")
        missing = [c for c in ("lead_id", "as_of") if c not in snapshots.columns]
        if missing:
            raise ValueError(f"{caller} needs snapshot columns ['lead_id', 'as_of']; missing {missing}.")
        query = pd.DataFrame({
            "lead_id": snapshots["lead_id"].to_numpy(dtype=np.int64),
            "as_of": pd.to_datetime(snapshots["as_of"]).to_numpy(dtype="datetime64[ns]"),
            "row": np.arange(len(snapshots)),
        })
        late = query["as_of"] > self.end
        if late.any():
            raise ValueError(f"{caller}: as_of must not lie after the data end {self.end}; "
                             f"{int(late.sum())} rows do, e.g.\n{query.loc[late].head(5).to_string()}")
        return query


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

    people = _draw_people(attr_rng, int(n_leads), window_days)
    level = _fit_level(people["fit"])
    generators = _generator_matrices(_level_fit_values())
    spells = _simulate_chain(chain_rng, level, people["created"], generators, window_days)
    lead_ids = np.arange(1, n_leads + 1, dtype=np.int64) + 1_000_000
    to_time = _time_converter(origin)

    leads = _messy_leads(mess_rng, people, lead_ids, to_time)
    events = _draw_events(event_rng, spells, people, lead_ids, to_time, end)
    deals = _deals(chain_rng, spells, people, lead_ids, to_time)
    truth = SyntheticTruth(
        leads=pd.DataFrame({"lead_id": lead_ids, "fit": people["fit"], "fit_level": level.astype(np.int16),
                            "activity": people["activity"], "bad_email": people["bad_email"]}),
        spells=pd.DataFrame({"lead_id": lead_ids[spells["lead"]],
                             "stage": pd.Series(np.asarray(STAGES, dtype=object)[spells["stage"]], dtype="str"),
                             "started_at": to_time(spells["start"]), "ended_at": to_time(spells["stop"])}),
        generators=generators, end=end)
    return SyntheticCRM(leads=leads, events=events, deals=deals, truth=truth, end=end)


def write_crm(crm: SyntheticCRM, directory) -> None:
    """Write leads/events/deals Parquet files and the truth files (``truth_*.parquet``, ``truth.json``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    crm.leads.to_parquet(directory / "leads.parquet", index=False)
    crm.events.to_parquet(directory / "events.parquet", index=False)
    crm.deals.to_parquet(directory / "deals.parquet", index=False)
    crm.truth.leads.to_parquet(directory / "truth_leads.parquet", index=False)
    crm.truth.spells.to_parquet(directory / "truth_spells.parquet", index=False)
    meta = {"stages": list(STAGES), "end": crm.end.isoformat(), "generators": crm.truth.generators.tolist()}
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


# --- the hidden model -------------------------------------------------------------------------

_AWARE, _ENGAGED, _EVALUATING, _COLD, _WON, _LOST = range(len(STAGES))

# (from, to, rate per day at fit 0, elasticity of the log-rate to the fit logit)
_TRANSITIONS = (
    (_AWARE, _ENGAGED, 0.030, 0.5),
    (_AWARE, _COLD, 0.012, -0.4),
    (_AWARE, _LOST, 0.001, -0.6),  # disqualified on sight
    (_ENGAGED, _EVALUATING, 0.012, 0.6),
    (_ENGAGED, _COLD, 0.020, -0.3),
    (_ENGAGED, _LOST, 0.002, -0.5),
    (_EVALUATING, _WON, 0.012, 0.8),
    (_EVALUATING, _LOST, 0.012, -0.6),
    (_EVALUATING, _COLD, 0.006, -0.3),
    (_COLD, _ENGAGED, 0.004, 0.4),
    (_COLD, _LOST, 0.002, 0.0),  # pipeline clean-up
)

# Event rates per day by stage, in EVENT_TYPES order; evaluating is loud and high-intent,
# cold nearly silent, so a model can read the stage from recent activity.
_EVENT_RATES = np.array([
    # open  click  view  price  down  webin form  news  trial demo  unsub bounce
    [0.060, 0.005, 0.020, 0.000, 0.005, 0.001, 0.001, 0.010, 0.000, 0.000, 0.0005, 0.0],  # aware
    [0.100, 0.100, 0.100, 0.006, 0.075, 0.030, 0.006, 0.004, 0.000, 0.000, 0.0005, 0.0],  # engaged
    [0.075, 0.050, 0.150, 0.310, 0.012, 0.006, 0.100, 0.000, 0.055, 0.090, 0.0, 0.0],  # evaluating
    [0.004, 0.0002, 0.002, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.002, 0.0],  # cold
])
_BOUNCE_RATE = 0.03  # marketing keeps mailing a bad address whatever the stage
_EMAIL_ONLY = [EVENT_TYPES.index(t) for t in ("email_open", "email_click", "unsubscribe")]
_CHANNELS = {"email_open": "email", "email_click": "email", "unsubscribe": "email", "email_bounce": "email",
             "newsletter_signup": "email", "page_view": "web", "pricing_page_view": "web", "form_submit": "web",
             "demo_request": "web", "content_download": "web", "webinar_attended": "webinar",
             "free_trial_start": "product"}

# Attribute vocabularies: (name, weight, effect on the fit logit).
_SENIORITY = (("c_level", 0.06, 0.6), ("vp", 0.08, 0.7), ("director", 0.14, 0.5), ("manager", 0.24, 0.2),
              ("individual", 0.38, -0.3), ("entry", 0.10, -1.3))
_FUNCTION = (("marketing", 0.30, 0.5), ("sales", 0.18, 0.3), ("engineering", 0.22, 0.0), ("finance", 0.10, 0.0),
             ("operations", 0.12, 0.0), ("people", 0.08, -0.3), ("executive", 0.0, 0.3))
_INDUSTRY = (("Software", 0.20, 0.5), ("Financial Services", 0.12, 0.4), ("Healthcare", 0.10, 0.0),
             ("Manufacturing", 0.11, 0.0), ("Retail", 0.09, 0.0), ("Education", 0.08, -0.7),
             ("Government", 0.05, -0.9), ("Consulting", 0.10, 0.3), ("Telecommunications", 0.06, 0.0),
             ("Media", 0.05, 0.0), ("Non-profit", 0.04, -0.8))
_COUNTRY = (("United States", 0.38, 0.3), ("United Kingdom", 0.12, 0.3), ("Canada", 0.06, 0.3),
            ("Germany", 0.09, 0.1), ("France", 0.06, 0.0), ("Netherlands", 0.04, 0.1), ("Australia", 0.05, 0.1),
            ("Spain", 0.04, 0.0), ("India", 0.10, -0.6), ("Brazil", 0.06, -0.5))
_SOURCE = (("Organic Search", 0.22, 0.2), ("Paid Search", 0.16, 0.0), ("Referral", 0.06, 0.9),
           ("Partner", 0.05, 0.6), ("Webinar", 0.08, 0.1), ("Trade Show", 0.06, 0.0),
           ("Content Syndication", 0.12, -0.5), ("Social Media", 0.10, -0.4), ("Purchased List", 0.07, -1.1),
           ("Direct", 0.08, 0.2))
# The lead's first touch is an event at created_at for sources that come through a form.
_FIRST_TOUCH = {"Organic Search": "form_submit", "Paid Search": "form_submit", "Direct": "form_submit",
                "Social Media": "form_submit", "Webinar": "webinar_attended",
                "Content Syndication": "content_download"}
_ENTRY_TRIGGERS = {
    _ENGAGED: (("email_click", "content_download", "webinar_attended"), (0.4, 0.4, 0.2)),
    _EVALUATING: (("demo_request", "pricing_page_view", "free_trial_start"), (0.4, 0.4, 0.2)),
}
_UNSUBSCRIBE_ON_COLD = 0.3
_BAD_EMAIL, _BAD_EMAIL_PURCHASED = 0.04, 0.20  # share of undeliverable addresses; purchased lists are worse
_ACTIVITY_LOG_MEAN, _ACTIVITY_LOG_SD = -0.045, 0.3  # lognormal per-lead multiplier of the event rates
_FIT_INTERCEPT = -0.45
_FIT_NOISE = 0.1  # what no attribute explains
_BAD_EMAIL_EFFECT = -0.8  # on the fit logit
_EXECUTIVE_SHARE = 0.35  # of C-levels, whose function is then "executive"
_COMPANY_SIZE_LOG_MEAN, _COMPANY_SIZE_LOG_SD = np.log(80), 1.6
_REVENUE_PER_EMPLOYEE_LOG_MEAN, _REVENUE_PER_EMPLOYEE_LOG_SD = np.log(150_000), 0.5


def _draw_people(rng, n, window_days):
    """Clean attributes, hidden flags and the fit logit of each lead (times in days from start)."""
    n_companies = max(20, n // 3)
    company_industry = _choice(rng, _INDUSTRY, n_companies)
    company_country = _choice(rng, _COUNTRY, n_companies)
    company_size = _company_sizes(rng, n_companies)
    revenue_per_employee = np.exp(rng.normal(_REVENUE_PER_EMPLOYEE_LOG_MEAN, _REVENUE_PER_EMPLOYEE_LOG_SD, n_companies))
    company_revenue = np.round(company_size * revenue_per_employee, -3)
    company = rng.integers(0, n_companies, n)
    size = company_size[company]

    seniority = _choice(rng, _SENIORITY, n)
    function = _choice(rng, _FUNCTION, n)
    executive = (seniority == _index(_SENIORITY, "c_level")) & (rng.random(n) < _EXECUTIVE_SHARE)
    function[executive] = _index(_FUNCTION, "executive")
    source = _choice(rng, _SOURCE, n)
    free_email = rng.random(n) < _free_email_chance(size, seniority)
    bad_email = rng.random(n) < np.where(source == _index(_SOURCE, "Purchased List"), _BAD_EMAIL_PURCHASED, _BAD_EMAIL)

    fit = (_attribute_fit(seniority, function, company_industry[company], company_country[company], source, size,
                          free_email)
           + _BAD_EMAIL_EFFECT * bad_email
           + rng.normal(0.0, _FIT_NOISE, n))

    # Steady inflow: a growing one would starve the oldest (training) months of leads.
    created = np.sort(rng.random(n)) * window_days
    activity = np.exp(rng.normal(_ACTIVITY_LOG_MEAN, _ACTIVITY_LOG_SD, n))  # mean 1; engagement style, not intent
    return {"company": company, "industry": company_industry[company], "country": company_country[company],
            "size": size, "revenue": company_revenue[company], "seniority": seniority, "function": function,
            "source": source, "free_email": free_email, "bad_email": bad_email, "fit": fit,
            "created": created, "activity": activity}


def _attribute_fit(seniority, function, industry, country, source, size, free_email):
    """The fit logit the attributes make (codes per lead), before the bad-address effect and the noise."""
    senior = seniority <= _index(_SENIORITY, "director")
    return (_FIT_INTERCEPT + _effects(_SENIORITY)[seniority] + _effects(_FUNCTION)[function]
            + _effects(_INDUSTRY)[industry] + _effects(_COUNTRY)[country]
            + _effects(_SOURCE)[source]
            + 0.4 * (np.minimum(np.log10(size), 3.5) - 2.0)
            # Interactions a linear model cannot see: senior buyers at large firms close, and a
            # free mailbox only disqualifies a small company.
            + 1.0 * (senior & (size >= 200))
            + np.where(free_email, np.where(size < 50, -1.0, -0.1), 0.0))


def _company_sizes(rng, n):
    return np.clip(np.round(np.exp(rng.normal(_COMPANY_SIZE_LOG_MEAN, _COMPANY_SIZE_LOG_SD, n))), 1, 300_000)


def _free_email_chance(size, seniority):
    return np.where(size < 50, 0.45, 0.12) + 0.15 * (seniority == _index(_SENIORITY, "entry"))


def _fit_level(fit):
    low, high = FIT_RANGE
    return np.clip(np.floor((fit - low) / (high - low) * N_FIT_LEVELS), 0, N_FIT_LEVELS - 1).astype(np.int64)


def _level_fit_values():
    low, high = FIT_RANGE
    return low + (np.arange(N_FIT_LEVELS) + 0.5) * (high - low) / N_FIT_LEVELS


def _generator_matrices(level_fit):
    q = np.zeros((len(level_fit), len(STAGES), len(STAGES)))
    for source, target, base, elasticity in _TRANSITIONS:
        q[:, source, target] = base * np.exp(elasticity * level_fit)
    q[:, np.arange(len(STAGES)), np.arange(len(STAGES))] = -q.sum(axis=2)
    return q


def _simulate_chain(rng, level, created, generators, window_days):
    """All stage spells, vectorised over leads: one loop iteration per jump."""
    n_stages = len(STAGES)
    exit_rate = -np.diagonal(generators, axis1=1, axis2=2)  # (levels, stages); 0 when absorbing
    jump = np.where(np.eye(n_stages, dtype=bool), 0.0, generators) / np.where(exit_rate > 0, exit_rate, 1.0)[:, :, None]
    jump = np.cumsum(jump, axis=2)  # next stage = how many cumulative probabilities u passes

    lead = np.arange(len(level))
    stage = np.full(len(level), _AWARE)
    time = created.astype(float)
    parts = []
    while lead.size:
        stop = time + rng.exponential(1.0, lead.size) / exit_rate[level[lead], stage]
        parts.append((lead, stage, time, np.minimum(stop, window_days)))
        going = stop < window_days
        lead, stage, stop = lead[going], stage[going], stop[going]
        u = rng.random(lead.size)
        stage = np.minimum((u[:, None] >= jump[level[lead], stage]).sum(axis=1), n_stages - 1)
        absorbed = stage >= _WON
        parts.append((lead[absorbed], stage[absorbed], stop[absorbed], np.full(absorbed.sum(), window_days)))
        lead, stage, time = lead[~absorbed], stage[~absorbed], stop[~absorbed]
    spells = {key: np.concatenate([p[i] for p in parts]) for i, key in enumerate(("lead", "stage", "start", "stop"))}
    order = np.lexsort((spells["start"], spells["lead"]))
    return {key: value[order] for key, value in spells.items()}


# --- the exported tables ----------------------------------------------------------------------

def _draw_events(rng, spells, people, lead_ids, to_time, end):
    """Poisson counts per (spell, event type), uniform times inside the spell; vectorised via np.repeat."""
    transient = spells["stage"] < _WON
    lead, stage = spells["lead"][transient], spells["stage"][transient]
    start, duration = spells["start"][transient], (spells["stop"] - spells["start"])[transient]
    bad = people["bad_email"][lead]
    exposure = people["activity"][lead] * duration
    leads_out, types_out, times_out = [], [], []
    for k in range(len(EVENT_TYPES)):
        rate = _EVENT_RATES[stage, k]
        if k in _EMAIL_ONLY:
            rate = np.where(bad, 0.0, rate)
        elif EVENT_TYPES[k] == "email_bounce":
            rate = np.where(bad, _BOUNCE_RATE, 0.0)
        count = rng.poisson(rate * exposure)
        which = np.repeat(np.arange(lead.size), count)
        leads_out.append(lead[which])
        types_out.append(np.full(which.size, k, dtype=np.int8))
        times_out.append(start[which] + rng.random(which.size) * duration[which])
    source_names = [name for name, _, _ in _SOURCE]
    first_touch = np.array([EVENT_TYPES.index(_FIRST_TOUCH[s]) if s in _FIRST_TOUCH else -1 for s in source_names])
    touch = first_touch[people["source"]]
    has_touch = np.flatnonzero(touch >= 0)
    leads_out.append(has_touch)
    types_out.append(touch[has_touch].astype(np.int8))
    times_out.append(people["created"][has_touch])
    # Entering engaged or evaluating is an action (a click, a demo request): the spell opens with it.
    for entered, (names, weights) in _ENTRY_TRIGGERS.items():
        opens = np.flatnonzero((stage == entered) & (duration > 0))
        kinds = np.array([EVENT_TYPES.index(t) for t in names])[rng.choice(len(names), opens.size, p=weights)]
        if entered == _ENGAGED:  # a bad address cannot click
            kinds = np.where(bad[opens] & (kinds == EVENT_TYPES.index("email_click")), EVENT_TYPES.index("page_view"), kinds)
        leads_out.append(lead[opens])
        types_out.append(kinds.astype(np.int8))
        times_out.append(start[opens])
    # Some leads say so when they lose interest.
    quits = np.flatnonzero((stage == _COLD) & (duration > 0) & ~bad & (rng.random(stage.size) < _UNSUBSCRIBE_ON_COLD))
    leads_out.append(lead[quits])
    types_out.append(np.full(quits.size, EVENT_TYPES.index("unsubscribe"), dtype=np.int8))
    times_out.append(start[quits])

    lead = np.concatenate(leads_out)
    kind = np.concatenate(types_out)
    when = to_time(np.concatenate(times_out)).to_numpy()
    keep = when < np.datetime64(end)  # float rounding at the window's edge
    lead, kind, when = lead[keep], kind[keep], when[keep]
    # A real export repeats about 1% of rows verbatim.
    dup = rng.choice(lead.size, size=int(round(0.01 * lead.size)), replace=False) if lead.size else np.zeros(0, int)
    lead, kind, when = (np.concatenate([a, a[dup]]) for a in (lead, kind, when))
    order = np.argsort(when, kind="stable")
    lead, kind, when = lead[order], kind[order], when[order]
    channels = np.array([_CHANNELS[t] for t in EVENT_TYPES], dtype=object)
    return pd.DataFrame({"lead_id": lead_ids[lead], "occurred_at": when,
                         "event_type": _strings(kind, EVENT_TYPES),
                         "channel": _strings(kind, tuple(channels))})


def _deals(rng, spells, people, lead_ids, to_time):
    """One closed deal per absorbed lead; bigger companies sign bigger amounts."""
    absorbed = spells["stage"] >= _WON
    lead = spells["lead"][absorbed]
    # Absorption spells start at the jump; the window's end censors later ones, so none is here.
    size = people["size"][lead]
    amount = np.round(np.exp(8.0 + 0.35 * np.log(size) + rng.normal(0.0, 0.5, lead.size)), 2)
    deals = pd.DataFrame({"lead_id": lead_ids[lead], "closed_at": to_time(spells["start"][absorbed]),
                          "outcome": pd.Series(np.where(spells["stage"][absorbed] == _WON, "won", "lost"), dtype="str"),
                          "amount": amount})
    return deals.sort_values(["closed_at", "lead_id"], kind="stable", ignore_index=True)


# --- the observable ceiling: a forward filter of the hidden chain -----------------------------

def _event_frame(events) -> pd.DataFrame:
    """Events as lead_id (int64), at (datetime64[ns]) and kind (code in EVENT_TYPES), from a frame or a file."""
    if not isinstance(events, pd.DataFrame):
        from crm.readers import read_table

        events = read_table(events, text_columns=("lead_id",), table="events")
    missing = [c for c in ("lead_id", "occurred_at", "event_type") if c not in events.columns]
    if missing:
        raise ValueError(f"filtered_probability needs event columns ['lead_id', 'occurred_at', 'event_type']; "
                         f"missing {missing}.")
    kind = pd.Categorical(events["event_type"], categories=EVENT_TYPES).codes
    unknown = kind < 0
    if unknown.any():
        raise ValueError("filtered_probability: the generator draws only the event types "
                         f"{list(EVENT_TYPES)}; {int(unknown.sum())} events are of others, e.g.\n"
                         f"{events.loc[unknown, ['lead_id', 'occurred_at', 'event_type']].head(5).to_string()}")
    return pd.DataFrame({"lead_id": events["lead_id"].to_numpy(dtype=np.int64),
                         "at": pd.to_datetime(events["occurred_at"]).to_numpy(dtype="datetime64[ns]"),
                         "kind": kind.astype(np.int64)})


def _check_possible(query, evidence):
    impossible = ~np.isfinite(evidence).any(axis=1)
    if impossible.any():
        raise ValueError("filtered_probability: the events of leads "
                         f"{query['lead_id'].to_numpy()[impossible][:5].tolist()} are impossible under this truth's "
                         "chain; were they generated with it?")


def _observed_events(frame, query) -> pd.DataFrame:
    """The queried leads' informative events: after ``created_at``, before their last ``as_of``, no repeats."""
    span = query.groupby("lead_id").agg(created=("created", "first"), last=("as_of", "max"))
    created = span["created"].reindex(frame["lead_id"]).to_numpy(dtype="datetime64[ns]")
    last = span["last"].reindex(frame["lead_id"]).to_numpy(dtype="datetime64[ns]")
    # The first touch sits exactly at created_at whatever the stage; a verbatim repeat is the export's noise.
    return frame.loc[(frame["at"].to_numpy() > created) & (frame["at"].to_numpy() < last)].drop_duplicates()


def _first_touches(frame, query) -> pd.Series:
    """Per queried lead, the kind of its event at ``created_at`` (-1: none): it tells the lead source apart."""
    created = query.groupby("lead_id")["created"].first()
    at_creation = frame.loc[frame["at"].to_numpy() == created.reindex(frame["lead_id"]).to_numpy()]
    return at_creation.groupby("lead_id")["kind"].first().reindex(created.index, fill_value=-1)


def _filter_stages(query, observed, level, model, bad_weight=None):
    """Stage posterior and log evidence at each row of ``query``, from a forward filter run once per lead.

    ``level`` and ``bad_weight`` (unnormalised prior over a deliverable and a bad address; default
    the population's shares) are per lead, in the order of ``np.unique(query["lead_id"])``. The
    filter's state is the joint of (bad address, activity node, stage). Each lead's events and
    as_of moments form one timeline (an as_of before an event at the same instant: strictly
    before); all leads advance together, one timeline position per step.
    """
    leads, lead_of_query = np.unique(query["lead_id"].to_numpy(), return_inverse=True)
    created = np.empty(leads.size, dtype=np.int64)
    created[lead_of_query] = query["created"].to_numpy(dtype="datetime64[ns]").view(np.int64)

    n_query = len(query)
    lead = np.concatenate([lead_of_query, np.searchsorted(leads, observed["lead_id"].to_numpy())])
    time = np.concatenate([query["as_of"].to_numpy(dtype="datetime64[ns]").view(np.int64),
                           observed["at"].to_numpy(dtype="datetime64[ns]").view(np.int64)])
    kind = np.concatenate([np.full(n_query, -1), observed["kind"].to_numpy()])
    which = np.concatenate([np.arange(n_query), np.full(len(observed), -1)])
    order = np.lexsort((kind >= 0, time, lead))
    lead, time, kind, which = lead[order], time[order], kind[order], which[order]
    starts = np.flatnonzero(np.r_[True, lead[1:] != lead[:-1]])
    step = np.arange(lead.size) - np.repeat(starts, np.diff(np.r_[starts, lead.size]))
    order = np.lexsort((lead, step))
    lead, time, kind, which, step = lead[order], time[order], kind[order], which[order], step[order]

    state = np.broadcast_to(model.prior, (leads.size, *model.prior.shape)).copy()
    if bad_weight is not None:
        state *= (bad_weight / model.prior.sum(axis=(1, 2)))[:, :, None, None]
    evidence = np.log(state.sum(axis=(1, 2, 3)))
    state /= np.exp(evidence)[:, None, None, None]
    last = created.copy()
    posterior, at_query = np.empty((n_query, model.prior.shape[-1])), np.empty(n_query)
    for block in np.split(np.arange(lead.size), np.flatnonzero(np.diff(step)) + 1):
        ids, levels, kinds = lead[block], level[lead[block]], kind[block]
        alpha, scale = model.propagate(state[ids], levels, (time[block] - last[ids]) / 86_400e9)
        seen = kinds >= 0
        alpha[seen] = model.observe(alpha[seen], levels[seen], kinds[seen])
        total = alpha.sum(axis=(1, 2, 3))
        dead = ~(total > 0)  # impossible under this level: evidence -inf, the state only kept finite
        alpha[dead], total[dead] = 1.0, alpha[0].size
        alpha /= total[:, None, None, None]
        with np.errstate(divide="ignore"):
            evidence[ids] += np.where(dead, -np.inf, scale + np.log(total))
        posterior[which[block][~seen]] = alpha[~seen].sum(axis=(1, 2))
        at_query[which[block][~seen]] = evidence[ids[~seen]]
        state[ids], last[ids] = alpha, time[block]
    return posterior, at_query


def _fit_prior(leads, ids, touches, rng, samples: int = 256) -> np.ndarray:
    """P(bad address, fit level | the exported attributes and first touch), shape (len(ids), 2, levels).

    Known attributes enter as they are; a missing or placeholder one is drawn ``samples`` times from
    the generator's distribution, weighted by what the lead does show (e-mail domain, revenue, first
    touch). Approximations: companies are not linked across leads (a colleague's row could reveal a
    missing size), and revenue is read as unrounded.
    """
    missing = [c for c in ("lead_id", "job_title", "industry", "country", "lead_source", "company_size",
                           "annual_revenue", "email") if c not in leads.columns]
    if missing:
        raise ValueError(f"filtered_probability reads the fit from the leads columns; missing {missing}.")
    rows = leads.assign(lead_id=leads["lead_id"].to_numpy(dtype=np.int64)).drop_duplicates("lead_id")
    rows = rows.set_index("lead_id").reindex(ids)
    if rows["email"].isna().any():
        raise ValueError("filtered_probability: every queried lead must be in the leads table with an e-mail; "
                         f"{int(rows['email'].isna().sum())} are not, e.g. {rows.index[rows['email'].isna()][:5].tolist()}")
    n = len(ids)
    sen, fun = (np.array([w for _, w, _ in t]) / sum(w for _, w, _ in t) for t in (_SENIORITY, _FUNCTION))
    executive, c_level = _index(_FUNCTION, "executive"), _index(_SENIORITY, "c_level")
    pair = np.outer(sen, fun)  # the generator makes 35% of C-levels executives, whatever their function
    pair[c_level] *= 1.0 - _EXECUTIVE_SHARE
    pair[c_level, executive] += _EXECUTIVE_SHARE * sen[c_level]
    titles = {}
    for s_, (s_name, _, _) in enumerate(_SENIORITY):
        for f_, (f_name, _, _) in enumerate(_FUNCTION):
            names = _titles_for(s_name, f_name)
            for name in names:
                titles.setdefault(name.strip().casefold(), np.zeros(pair.shape))[s_, f_] += 1.0 / len(names)
    title = [titles.get(t.strip().casefold()) if isinstance(t, str) else None for t in rows["job_title"]]
    pair_weight = np.stack([pair * t if t is not None else pair for t in title]).reshape(n, -1)

    def categorical(column, table, extra=None):
        lookup = {name.casefold(): i for i, name in enumerate(_names(table))}
        weight = np.tile(np.array([w for _, w, _ in table], dtype=float), (n, 1))
        code = np.array([lookup.get(v.strip().casefold(), -1) if isinstance(v, str) else -1 for v in rows[column]])
        weight[code >= 0] = np.eye(len(table))[code[code >= 0]]
        return weight if extra is None else weight * extra

    touch_of = np.array([EVENT_TYPES.index(_FIRST_TOUCH[s]) if s in _FIRST_TOUCH else -1 for s in _names(_SOURCE)])
    touch = touches.reindex(ids, fill_value=-1).to_numpy()
    weights = {"pair": pair_weight, "industry": categorical("industry", _INDUSTRY),
               "country": categorical("country", _COUNTRY),
               "source": categorical("lead_source", _SOURCE, extra=touch[:, None] == touch_of[None, :])}
    known_size = rows["company_size"].to_numpy(dtype=float)
    uncertain = np.isnan(known_size) | np.column_stack([(w > 0).sum(axis=1) > 1 for w in weights.values()]).any(axis=1)
    k = np.where(uncertain, samples, 1)
    lead = np.repeat(np.arange(n), k)
    draw = {name: _draw_rows(rng, np.cumsum(w, axis=1), lead) for name, w in weights.items()}
    size = known_size[lead]
    guess = np.isnan(size)
    size[guess] = _company_sizes(rng, guess.sum())
    seniority, function = np.divmod(draw["pair"], len(_FUNCTION))
    domain = rows["email"].astype(str).str.rsplit("@", n=1).str[-1].str.strip().str.casefold()
    free = domain.isin(_FREE_DOMAINS).to_numpy()[lead]
    p_free = _free_email_chance(size, seniority)
    weight = np.where(free, p_free, 1.0 - p_free)
    revenue = rows["annual_revenue"].to_numpy(dtype=float)[lead]
    shown = guess & np.isfinite(revenue) & (revenue > 0)
    weight[shown] *= np.exp(-0.5 * ((np.log(revenue[shown] / size[shown]) - _REVENUE_PER_EMPLOYEE_LOG_MEAN)
                                    / _REVENUE_PER_EMPLOYEE_LOG_SD) ** 2)
    fit = _attribute_fit(seniority, function, draw["industry"], draw["country"], draw["source"], size, free)
    p_bad = np.where(draw["source"] == _index(_SOURCE, "Purchased List"), _BAD_EMAIL_PURCHASED, _BAD_EMAIL)
    from scipy.special import ndtr

    low, high = FIT_RANGE
    width = (high - low) / N_FIT_LEVELS
    reach = int(np.ceil(7 * _FIT_NOISE / width))  # levels beyond 7 noise deviations get nothing
    prior = np.zeros((n, 2, N_FIT_LEVELS))
    for bad, share in ((0, 1.0 - p_bad), (1, p_bad)):
        value = fit + _BAD_EMAIL_EFFECT * bad
        level = _fit_level(value)[:, None] + np.arange(-reach, reach + 1)[None, :]  # may leave 0..levels-1
        upper = np.where(level >= N_FIT_LEVELS - 1, np.inf, low + (level + 1) * width)
        lower = np.where(level <= 0, -np.inf, low + level * width)
        mass = ndtr((upper - value[:, None]) / _FIT_NOISE) - ndtr((lower - value[:, None]) / _FIT_NOISE)
        inside = (level >= 0) & (level < N_FIT_LEVELS)
        cell = (lead[:, None] * N_FIT_LEVELS + level)[inside]
        prior[:, bad] = np.bincount(cell, (mass * (weight * share)[:, None])[inside],
                                    minlength=n * N_FIT_LEVELS).reshape(n, N_FIT_LEVELS)
    return prior / prior.sum(axis=(1, 2), keepdims=True)


def _draw_rows(rng, cumulative, rows):
    """One category for each of ``rows``, from the cumulative weights (rows, categories) of its row."""
    u = rng.random(rows.size) * cumulative[rows, -1]
    return np.minimum((u[:, None] >= cumulative[rows]).sum(axis=1), cumulative.shape[1] - 1)


@dataclass
class _ObservationModel:
    """How :func:`_draw_events` reveals the stage, per (fit level, bad address, activity node), transient stages.

    ``decay``: (levels, 2, nodes, stages) diagonal of the no-event generator (every exit, every
    Poisson event); ``jump``: (levels, 2, types, stages, stages) rate of a jump that opens its
    spell with an event of that type; ``rates``: (2, stages, types) Poisson rates at activity 1;
    ``nodes`` and ``prior`` (2, nodes, stages) the activity grid and the state at ``created_at``.
    The rest serves :meth:`propagate`: the stages ``silent_from`` which a jump into ``cold`` can go
    unseen, the log of its rate, and per stage ``|d_i - d_cold|`` and ``max(d_i, d_cold)``.
    """

    decay: np.ndarray
    jump: np.ndarray
    rates: np.ndarray
    nodes: np.ndarray
    prior: np.ndarray
    silent_from: np.ndarray
    log_cold_in: np.ndarray
    gap: np.ndarray
    slower: np.ndarray

    @classmethod
    def build(cls, generators, activity_nodes):
        n, k = _WON, len(EVENT_TYPES)  # transient stages come first
        rates = np.stack([_EVENT_RATES, _EVENT_RATES.copy()])
        rates[1][:, _EMAIL_ONLY] = 0.0  # [0] a deliverable address, [1] a bad one
        rates[1][:, EVENT_TYPES.index("email_bounce")] = _BOUNCE_RATE
        opens = np.zeros((2, n, k))  # P(entering the stage is an event of that type)
        for entered, (names, weights) in _ENTRY_TRIGGERS.items():
            for name, weight in zip(names, weights):
                opens[:, entered, EVENT_TYPES.index(name)] += weight
        opens[1, _ENGAGED, EVENT_TYPES.index("page_view")] += opens[1, _ENGAGED, EVENT_TYPES.index("email_click")]
        opens[1, _ENGAGED, EVENT_TYPES.index("email_click")] = 0.0
        opens[0, _COLD, EVENT_TYPES.index("unsubscribe")] = _UNSUBSCRIBE_ON_COLD

        q = generators[:, :n, :n]
        between = q * (1.0 - np.eye(n))
        silent = between[:, None] * (1.0 - opens.sum(axis=2))[None, :, None, :]
        others = np.ones(n, dtype=bool)
        others[_COLD] = False
        if silent[..., others].any() or silent[..., _COLD, :].any():
            raise ValueError("filtered_probability solves the no-event dynamics in closed form for chains whose "
                             "only silent jumps lead into cold; this generator has others.")
        z = np.linspace(-4.0, 4.0, activity_nodes) if activity_nodes > 1 else np.zeros(1)
        nodes = np.exp(_ACTIVITY_LOG_MEAN + _ACTIVITY_LOG_SD * z)
        weight = np.exp(-0.5 * z**2) / np.exp(-0.5 * z**2).sum()
        share = np.array([w for _, w, _ in _SOURCE]) / sum(w for _, w, _ in _SOURCE)
        bad = np.where(np.array(_names(_SOURCE)) == "Purchased List", _BAD_EMAIL_PURCHASED, _BAD_EMAIL) @ share
        prior = np.zeros((2, nodes.size, n))
        prior[:, :, _AWARE] = np.array([1.0 - bad, bad])[:, None] * weight[None, :]
        decay = (np.diagonal(q, axis1=1, axis2=2)[:, None, None, :]
                 - nodes[None, None, :, None] * rates.sum(axis=2)[None, :, None, :])
        jump = between[:, None, None] * opens.transpose(0, 2, 1)[None, :, :, None, :]
        silent_from = np.flatnonzero(others)
        with np.errstate(divide="ignore"):
            log_cold_in = np.log(silent[..., silent_from, _COLD])
        return cls(decay=decay, jump=jump, rates=rates, nodes=nodes, prior=prior, silent_from=silent_from,
                   log_cold_in=log_cold_in, gap=np.abs(decay[..., silent_from] - decay[..., [_COLD]]),
                   slower=np.maximum(decay[..., silent_from], decay[..., [_COLD]]))

    def propagate(self, alpha, levels, days):
        """State after ``days`` without an event or a close, the no-event generator's exponential, as (e^-scale x, scale).

        Stages other than cold only decay; cold also collects their silent jumps,
        ``(e^(d_i t) - e^(d_c t)) / (d_i - d_c)``, taken in logs so long silences neither cancel nor
        underflow.
        """
        d = self.decay[levels]
        t = days[:, None, None, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_alpha = np.log(alpha)
            out = log_alpha + d * t
            gap = self.gap[levels]
            share = np.where(gap * t > 1e-12, -np.expm1(-gap * t) / np.where(gap > 0, gap, 1.0), t)
            inflow = (log_alpha[..., self.silent_from] + self.log_cold_in[levels][:, :, None, :]
                      + self.slower[levels] * t + np.log(share))
            out[..., _COLD] = np.logaddexp.reduce(np.concatenate([out[..., [_COLD]], inflow], axis=-1), axis=-1)
            scale = out.max(axis=(1, 2, 3))
        return np.exp(out - scale[:, None, None, None]), scale

    def observe(self, alpha, levels, kinds):
        """Multiply in one event of type ``kinds`` per row: a Poisson event in the stage, or the jump it opens."""
        emitted = self.nodes[None, None, :, None] * self.rates[:, :, kinds].transpose(2, 0, 1)[:, :, None, :]
        return alpha * emitted + np.matmul(alpha, self.jump[levels, :, kinds])


def _messy_leads(rng, people, lead_ids, to_time):
    """The leads table as an export shows it: PII e-mails, free-text titles, dirty categories, gaps."""
    n = lead_ids.size
    first = np.array(_FIRST_NAMES, dtype=object)[rng.integers(0, len(_FIRST_NAMES), n)]
    last = np.array(_LAST_NAMES, dtype=object)[rng.integers(0, len(_LAST_NAMES), n)]
    domains = _company_domains(rng, people["company"].max() + 1)[people["company"]]
    free_domains = np.array(_FREE_DOMAINS, dtype=object)[rng.integers(0, len(_FREE_DOMAINS), n)]
    digits = rng.integers(1, 999, n)
    style = rng.integers(0, 3, n)
    emails = [
        (f"{f}{d}@{fd}" if style_ == 0 else f"{f}.{l}{d}@{fd}") if free else
        (f"{f}.{l}@{dom}" if style_ < 2 else f"{f[0]}{l}@{dom}")
        for f, l, d, fd, dom, free, style_ in zip(
            np.char.lower(first.astype(str)), np.char.lower(last.astype(str)), digits, free_domains, domains,
            people["free_email"], style)
    ]
    size = people["size"].astype(float).copy()
    size[rng.random(n) < 0.08] = np.nan
    revenue = people["revenue"].astype(float).copy()
    revenue[rng.random(n) < 0.20] = np.nan
    return pd.DataFrame({
        "lead_id": lead_ids,
        "created_at": to_time(people["created"]),
        "job_title": _messy_titles(rng, people["seniority"], people["function"]),
        "industry": _messy_category(rng, people["industry"], _names(_INDUSTRY), missing=0.04, placeholder=0.02),
        "company_size": size,
        "annual_revenue": revenue,
        "country": _messy_category(rng, people["country"], _names(_COUNTRY), missing=0.02, placeholder=0.01),
        "lead_source": _messy_category(rng, people["source"], _names(_SOURCE), missing=0.02, placeholder=0.01),
        "email": pd.Series(emails, dtype="str"),
    })


def _messy_titles(rng, seniority, function):
    """Free-text titles that parse back to (seniority, function) most of the time."""
    vocabulary, ranges = [], {}
    for s, (s_name, _, _) in enumerate(_SENIORITY):
        for f, (f_name, _, _) in enumerate(_FUNCTION):
            titles = _titles_for(s_name, f_name)
            ranges[s, f] = (len(vocabulary), len(titles))
            vocabulary += titles
    offset = np.zeros((len(_SENIORITY), len(_FUNCTION)), dtype=np.int64)
    count = np.ones_like(offset)
    for (s, f), (o, c) in ranges.items():
        offset[s, f], count[s, f] = o, c
    title = offset[seniority, function] + (rng.random(seniority.size) * count[seniority, function]).astype(np.int64)
    return _messy_category(rng, title, tuple(vocabulary), missing=0.02, placeholder=0.01, placeholder_text="")


def _titles_for(seniority, function):
    if function == "executive":
        return ["CEO", "Founder", "Co-Founder & CEO", "Owner", "President", "Managing Director"]
    words = _FUNCTION_WORDS[function]
    if seniority == "c_level":
        return list(_C_LEVEL[function])
    if seniority in _LEVEL_TEMPLATES:
        return [template.format(word) for template in _LEVEL_TEMPLATES[seniority] for word in words]
    return list((_INDIVIDUAL if seniority == "individual" else _ENTRY)[function])


def _messy_category(rng, codes, names, *, missing, placeholder, placeholder_text="Select"):
    """Canonical names with casing and whitespace variants, some missing, some placeholders."""
    variants = (lambda s: s, str.lower, str.upper, lambda s: s + " ", lambda s: " " + s.lower() + " ")
    vocabulary = np.array([v(name) for name in names for v in variants] + [None, placeholder_text], dtype=object)
    variant = rng.choice(len(variants), size=codes.size, p=[0.72, 0.14, 0.05, 0.06, 0.03])
    index = codes * len(variants) + variant
    u = rng.random(codes.size)
    index[u < missing] = len(vocabulary) - 2
    index[(u >= missing) & (u < missing + placeholder)] = len(vocabulary) - 1
    return pd.Series(vocabulary[index], dtype="str")


def _company_domains(rng, n_companies):
    first = rng.integers(0, len(_COMPANY_STEMS), n_companies)
    second = rng.integers(0, len(_COMPANY_STEMS), n_companies)
    suffix = rng.integers(0, len(_COMPANY_SUFFIXES), n_companies)
    tld = rng.integers(0, len(_TLDS), n_companies)
    return np.array([f"{_COMPANY_STEMS[a]}{_COMPANY_STEMS[b]}{_COMPANY_SUFFIXES[c]}.{_TLDS[d]}"
                     for a, b, c, d in zip(first, second, suffix, tld)], dtype=object)


def _strings(codes, names):
    """Integer codes to a pandas ``str`` column via Arrow: 20M rows in well under a second."""
    import pyarrow as pa

    array = pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int32()), pa.array(list(names)))
    return pd.Series(array.cast(pa.string()), dtype="str")


def _time_converter(origin):
    base = origin.as_unit("ns").value

    def to_time(days):
        return pd.Series(pd.to_datetime(base + np.floor(np.asarray(days) * 86_400e9).astype(np.int64)),
                         dtype="datetime64[ns]")

    return to_time


def _choice(rng, table, size):
    weights = np.array([w for _, w, _ in table])
    return rng.choice(len(table), size=size, p=weights / weights.sum())


def _effects(table):
    return np.array([e for _, _, e in table])


def _index(table, name):
    return _names(table).index(name)


def _names(table):
    return tuple(name for name, _, _ in table)


_FUNCTION_WORDS = {"marketing": ("Marketing", "Demand Generation", "Growth"), "sales": ("Sales", "Business Development"),
                   "engineering": ("Engineering", "IT", "Technology", "Data"), "finance": ("Finance", "Accounting"),
                   "operations": ("Operations",), "people": ("HR", "People", "Talent")}
_LEVEL_TEMPLATES = {"vp": ("VP of {}", "vp, {}", "Vice President, {}", "SVP {}"),
                    "director": ("Director of {}", "director - {}", "Head of {}", "{} Director", "Sr. Director, {}"),
                    "manager": ("{} Manager", "Manager, {}", "Senior {} Manager", "{} Team Lead")}
_C_LEVEL = {"marketing": ("Chief Marketing Officer", "CMO"), "sales": ("Chief Revenue Officer", "CRO", "Chief Sales Officer"),
            "engineering": ("Chief Technology Officer", "CTO", "CIO"), "finance": ("CFO", "Chief Financial Officer"),
            "operations": ("COO", "Chief Operating Officer"),
            "people": ("Chief People Officer", "Chief Human Resources Officer")}
_INDIVIDUAL = {"marketing": ("Marketing Specialist", "Content Marketer", "Marketing Coordinator", "SEO Specialist"),
               "sales": ("Account Executive", "Sales Representative", "SDR", "Business Development Representative"),
               "engineering": ("Software Engineer", "Sr. Software Engineer", "Data Analyst", "DevOps Engineer",
                               "IT Specialist"),
               "finance": ("Accountant", "Financial Analyst", "Controller"),
               "operations": ("Operations Analyst", "Logistics Coordinator", "Supply Chain Planner"),
               "people": ("HR Generalist", "Recruiter", "Talent Acquisition Specialist")}
_ENTRY = {"marketing": ("Marketing Intern", "Marketing Assistant"), "sales": ("Sales Intern", "Junior Sales Associate"),
          "engineering": ("Software Engineering Intern", "Junior Developer", "Student"),
          "finance": ("Finance Intern", "Jr. Accountant"), "operations": ("Operations Intern", "Graduate Trainee"),
          "people": ("HR Assistant", "HR Intern")}
_FIRST_NAMES = ("James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
                "William", "Susan", "Richard", "Jessica", "Joseph", "Sarah", "Thomas", "Karen", "Priya", "Wei",
                "Lukas", "Sofia", "Mateo", "Emma", "Noah", "Olivia", "Arjun", "Chloe", "Hugo", "Ana", "Yuki", "Omar")
_LAST_NAMES = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
               "Lopez", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Martin", "Lee", "Patel", "Kumar",
               "Mueller", "Schmidt", "Dubois", "Rossi", "Silva", "Santos", "Chen", "Wang", "Kim", "Nguyen")
_FREE_DOMAINS = ("gmail.com", "gmail.com", "gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com",
                 "gmx.de", "aol.com")
_COMPANY_STEMS = ("acme", "globex", "initech", "umbra", "stark", "wayne", "hooli", "vandelay", "pied", "piper",
                  "soylent", "tyrell", "wonka", "cyber", "dyne", "nova", "blue", "red", "north", "summit",
                  "apex", "bright", "cloud", "data", "metro", "omni", "peak", "quant", "river", "stone",
                  "terra", "vertex", "zen", "alpha", "beta", "delta", "echo", "fusion", "granite", "harbor")
_COMPANY_SUFFIXES = ("", "-corp", "labs", "systems", "tech", "-group", "soft", "works", "-inc", "ly")
_TLDS = ("com", "com", "com", "io", "co", "net", "de", "co.uk")
