"""The synthetic CRM's hidden world: who the leads are, how each walks its stages, what events and deals follow.

Each lead walks a continuous-time Markov chain over the stages ``aware -> engaged -> evaluating ->
won/lost`` (with ``cold`` stalls and re-engagement). Its transition rates depend only on a *fit* level,
a quantised logit of its clean attributes; events are Poisson per stage.
"""

from __future__ import annotations

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
AWARE, ENGAGED, _EVALUATING, COLD, WON, LOST = range(len(STAGES))
# (from, to, rate per day at fit 0, elasticity of the log-rate to the fit logit)
_TRANSITIONS = (
    (AWARE, ENGAGED, 0.030, 0.5),
    (AWARE, COLD, 0.012, -0.4),
    (AWARE, LOST, 0.001, -0.6),  # disqualified on sight
    (ENGAGED, _EVALUATING, 0.012, 0.6),
    (ENGAGED, COLD, 0.020, -0.3),
    (ENGAGED, LOST, 0.002, -0.5),
    (_EVALUATING, WON, 0.012, 0.8),
    (_EVALUATING, LOST, 0.012, -0.6),
    (_EVALUATING, COLD, 0.006, -0.3),
    (COLD, ENGAGED, 0.004, 0.4),
    (COLD, LOST, 0.002, 0.0),  # pipeline clean-up
)


# Event rates per day by stage, in EVENT_TYPES order; evaluating is loud and high-intent,
# cold nearly silent, so a model can read the stage from recent activity.
EVENT_RATES = np.array([
    # open  click  view  price  down  webin form  news  trial demo  unsub bounce
    [0.060, 0.005, 0.020, 0.000, 0.005, 0.001, 0.001, 0.010, 0.000, 0.000, 0.0005, 0.0],  # aware
    [0.100, 0.100, 0.100, 0.006, 0.075, 0.030, 0.006, 0.004, 0.000, 0.000, 0.0005, 0.0],  # engaged
    [0.075, 0.050, 0.150, 0.310, 0.012, 0.006, 0.100, 0.000, 0.055, 0.090, 0.0, 0.0],  # evaluating
    [0.004, 0.0002, 0.002, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.002, 0.0],  # cold
])


BOUNCE_RATE = 0.03  # marketing keeps mailing a bad address whatever the stage
EMAIL_ONLY = [EVENT_TYPES.index(t) for t in ("email_open", "email_click", "unsubscribe")]
_CHANNELS = {"email_open": "email", "email_click": "email", "unsubscribe": "email", "email_bounce": "email",
             "newsletter_signup": "email", "page_view": "web", "pricing_page_view": "web", "form_submit": "web",
             "demo_request": "web", "content_download": "web", "webinar_attended": "webinar",
             "free_trial_start": "product"}
# Attribute vocabularies: (name, weight, effect on the fit logit).
SENIORITY = (("c_level", 0.06, 0.6), ("vp", 0.08, 0.7), ("director", 0.14, 0.5), ("manager", 0.24, 0.2),
              ("individual", 0.38, -0.3), ("entry", 0.10, -1.3))
FUNCTION = (("marketing", 0.30, 0.5), ("sales", 0.18, 0.3), ("engineering", 0.22, 0.0), ("finance", 0.10, 0.0),
             ("operations", 0.12, 0.0), ("people", 0.08, -0.3), ("executive", 0.0, 0.3))
INDUSTRY = (("Software", 0.20, 0.5), ("Financial Services", 0.12, 0.4), ("Healthcare", 0.10, 0.0),
             ("Manufacturing", 0.11, 0.0), ("Retail", 0.09, 0.0), ("Education", 0.08, -0.7),
             ("Government", 0.05, -0.9), ("Consulting", 0.10, 0.3), ("Telecommunications", 0.06, 0.0),
             ("Media", 0.05, 0.0), ("Non-profit", 0.04, -0.8))
COUNTRY = (("United States", 0.38, 0.3), ("United Kingdom", 0.12, 0.3), ("Canada", 0.06, 0.3),
            ("Germany", 0.09, 0.1), ("France", 0.06, 0.0), ("Netherlands", 0.04, 0.1), ("Australia", 0.05, 0.1),
            ("Spain", 0.04, 0.0), ("India", 0.10, -0.6), ("Brazil", 0.06, -0.5))
SOURCE = (("Organic Search", 0.22, 0.2), ("Paid Search", 0.16, 0.0), ("Referral", 0.06, 0.9),
           ("Partner", 0.05, 0.6), ("Webinar", 0.08, 0.1), ("Trade Show", 0.06, 0.0),
           ("Content Syndication", 0.12, -0.5), ("Social Media", 0.10, -0.4), ("Purchased List", 0.07, -1.1),
           ("Direct", 0.08, 0.2))
# The lead's first touch is an event at created_at for sources that come through a form.
FIRST_TOUCH = {"Organic Search": "form_submit", "Paid Search": "form_submit", "Direct": "form_submit",
                "Social Media": "form_submit", "Webinar": "webinar_attended",
                "Content Syndication": "content_download"}
ENTRY_TRIGGERS = {
    ENGAGED: (("email_click", "content_download", "webinar_attended"), (0.4, 0.4, 0.2)),
    _EVALUATING: (("demo_request", "pricing_page_view", "free_trial_start"), (0.4, 0.4, 0.2)),
}


UNSUBSCRIBE_ON_COLD = 0.3
BAD_EMAIL, BAD_EMAIL_PURCHASED = 0.04, 0.20  # share of undeliverable addresses; purchased lists are worse
ACTIVITY_LOG_MEAN, ACTIVITY_LOG_SD = -0.045, 0.3  # lognormal per-lead multiplier of the event rates
_FIT_INTERCEPT = -0.45
FIT_NOISE = 0.1  # what no attribute explains
BAD_EMAIL_EFFECT = -0.8  # on the fit logit
EXECUTIVE_SHARE = 0.35  # of C-levels, whose function is then "executive"
_COMPANY_SIZE_LOG_MEAN, _COMPANY_SIZE_LOG_SD = np.log(80), 1.6
REVENUE_PER_EMPLOYEE_LOG_MEAN, REVENUE_PER_EMPLOYEE_LOG_SD = np.log(150_000), 0.5


def draw_people(rng, n, window_days):
    """Clean attributes, hidden flags and the fit logit of each lead (times in days from start)."""
    n_companies = max(20, n // 3)
    company_industry = _choice(rng, INDUSTRY, n_companies)
    company_country = _choice(rng, COUNTRY, n_companies)
    company_size = company_sizes(rng, n_companies)
    revenue_per_employee = np.exp(rng.normal(REVENUE_PER_EMPLOYEE_LOG_MEAN, REVENUE_PER_EMPLOYEE_LOG_SD, n_companies))
    company_revenue = np.round(company_size * revenue_per_employee, -3)
    company = rng.integers(0, n_companies, n)
    size = company_size[company]

    seniority = _choice(rng, SENIORITY, n)
    function = _choice(rng, FUNCTION, n)
    executive = (seniority == table_index(SENIORITY, "c_level")) & (rng.random(n) < EXECUTIVE_SHARE)
    function[executive] = table_index(FUNCTION, "executive")
    source = _choice(rng, SOURCE, n)
    free_email = rng.random(n) < free_email_chance(size, seniority)
    bad_email = rng.random(n) < np.where(source == table_index(SOURCE, "Purchased List"), BAD_EMAIL_PURCHASED, BAD_EMAIL)

    fit = (attribute_fit(seniority, function, company_industry[company], company_country[company], source, size,
                          free_email)
           + BAD_EMAIL_EFFECT * bad_email
           + rng.normal(0.0, FIT_NOISE, n))

    # Steady inflow: a growing one would starve the oldest (training) months of leads.
    created = np.sort(rng.random(n)) * window_days
    activity = np.exp(rng.normal(ACTIVITY_LOG_MEAN, ACTIVITY_LOG_SD, n))  # mean 1; engagement style, not intent
    return {"company": company, "industry": company_industry[company], "country": company_country[company],
            "size": size, "revenue": company_revenue[company], "seniority": seniority, "function": function,
            "source": source, "free_email": free_email, "bad_email": bad_email, "fit": fit,
            "created": created, "activity": activity}


def attribute_fit(seniority, function, industry, country, source, size, free_email):
    """The fit logit the attributes make (codes per lead), before the bad-address effect and the noise."""
    senior = seniority <= table_index(SENIORITY, "director")
    return (_FIT_INTERCEPT + _effects(SENIORITY)[seniority] + _effects(FUNCTION)[function]
            + _effects(INDUSTRY)[industry] + _effects(COUNTRY)[country]
            + _effects(SOURCE)[source]
            + 0.4 * (np.minimum(np.log10(size), 3.5) - 2.0)
            # Interactions a linear model cannot see: senior buyers at large firms close, and a
            # free mailbox only disqualifies a small company.
            + 1.0 * (senior & (size >= 200))
            + np.where(free_email, np.where(size < 50, -1.0, -0.1), 0.0))


def company_sizes(rng, n):
    return np.clip(np.round(np.exp(rng.normal(_COMPANY_SIZE_LOG_MEAN, _COMPANY_SIZE_LOG_SD, n))), 1, 300_000)


def free_email_chance(size, seniority):
    return np.where(size < 50, 0.45, 0.12) + 0.15 * (seniority == table_index(SENIORITY, "entry"))


def fit_level(fit):
    low, high = FIT_RANGE
    return np.clip(np.floor((fit - low) / (high - low) * N_FIT_LEVELS), 0, N_FIT_LEVELS - 1).astype(np.int64)


def level_fit_values():
    low, high = FIT_RANGE
    return low + (np.arange(N_FIT_LEVELS) + 0.5) * (high - low) / N_FIT_LEVELS


def generator_matrices(level_fit):
    q = np.zeros((len(level_fit), len(STAGES), len(STAGES)))
    for source, target, base, elasticity in _TRANSITIONS:
        q[:, source, target] = base * np.exp(elasticity * level_fit)
    q[:, np.arange(len(STAGES)), np.arange(len(STAGES))] = -q.sum(axis=2)
    return q


def simulate_chain(rng, level, created, generators, window_days):
    """All stage spells, vectorised over leads: one loop iteration per jump."""
    n_stages = len(STAGES)
    exit_rate = -np.diagonal(generators, axis1=1, axis2=2)  # (levels, stages); 0 when absorbing
    jump = np.where(np.eye(n_stages, dtype=bool), 0.0, generators) / np.where(exit_rate > 0, exit_rate, 1.0)[:, :, None]
    jump = np.cumsum(jump, axis=2)  # next stage = how many cumulative probabilities u passes

    lead = np.arange(len(level))
    stage = np.full(len(level), AWARE)
    time = created.astype(float)
    parts = []
    while lead.size:
        stop = time + rng.exponential(1.0, lead.size) / exit_rate[level[lead], stage]
        parts.append((lead, stage, time, np.minimum(stop, window_days)))
        going = stop < window_days
        lead, stage, stop = lead[going], stage[going], stop[going]
        u = rng.random(lead.size)
        stage = np.minimum((u[:, None] >= jump[level[lead], stage]).sum(axis=1), n_stages - 1)
        absorbed = stage >= WON
        parts.append((lead[absorbed], stage[absorbed], stop[absorbed], np.full(absorbed.sum(), window_days)))
        lead, stage, time = lead[~absorbed], stage[~absorbed], stop[~absorbed]
    spells = {key: np.concatenate([p[i] for p in parts]) for i, key in enumerate(("lead", "stage", "start", "stop"))}
    order = np.lexsort((spells["start"], spells["lead"]))
    return {key: value[order] for key, value in spells.items()}


def draw_events(rng, spells, people, lead_ids, to_time, end):
    """Poisson counts per (spell, event type), uniform times inside the spell; vectorised via np.repeat."""
    transient = spells["stage"] < WON
    lead, stage = spells["lead"][transient], spells["stage"][transient]
    start, duration = spells["start"][transient], (spells["stop"] - spells["start"])[transient]
    bad = people["bad_email"][lead]
    exposure = people["activity"][lead] * duration
    leads_out, types_out, times_out = [], [], []
    for k in range(len(EVENT_TYPES)):
        rate = EVENT_RATES[stage, k]
        if k in EMAIL_ONLY:
            rate = np.where(bad, 0.0, rate)
        elif EVENT_TYPES[k] == "email_bounce":
            rate = np.where(bad, BOUNCE_RATE, 0.0)
        count = rng.poisson(rate * exposure)
        which = np.repeat(np.arange(lead.size), count)
        leads_out.append(lead[which])
        types_out.append(np.full(which.size, k, dtype=np.int8))
        times_out.append(start[which] + rng.random(which.size) * duration[which])
    source_names = [name for name, _, _ in SOURCE]
    first_touch = np.array([EVENT_TYPES.index(FIRST_TOUCH[s]) if s in FIRST_TOUCH else -1 for s in source_names])
    touch = first_touch[people["source"]]
    has_touch = np.flatnonzero(touch >= 0)
    leads_out.append(has_touch)
    types_out.append(touch[has_touch].astype(np.int8))
    times_out.append(people["created"][has_touch])
    # Entering engaged or evaluating is an action (a click, a demo request): the spell opens with it.
    for entered, (names, weights) in ENTRY_TRIGGERS.items():
        opens = np.flatnonzero((stage == entered) & (duration > 0))
        kinds = np.array([EVENT_TYPES.index(t) for t in names])[rng.choice(len(names), opens.size, p=weights)]
        if entered == ENGAGED:  # a bad address cannot click
            kinds = np.where(bad[opens] & (kinds == EVENT_TYPES.index("email_click")), EVENT_TYPES.index("page_view"), kinds)
        leads_out.append(lead[opens])
        types_out.append(kinds.astype(np.int8))
        times_out.append(start[opens])
    # Some leads say so when they lose interest.
    quits = np.flatnonzero((stage == COLD) & (duration > 0) & ~bad & (rng.random(stage.size) < UNSUBSCRIBE_ON_COLD))
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
                         "event_type": coded_strings(kind, EVENT_TYPES),
                         "channel": coded_strings(kind, tuple(channels))})


def draw_deals(rng, spells, people, lead_ids, to_time):
    """One closed deal per absorbed lead; bigger companies sign bigger amounts."""
    absorbed = spells["stage"] >= WON
    lead = spells["lead"][absorbed]
    # Absorption spells start at the jump; the window's end censors later ones, so none is here.
    size = people["size"][lead]
    amount = np.round(np.exp(8.0 + 0.35 * np.log(size) + rng.normal(0.0, 0.5, lead.size)), 2)
    deals = pd.DataFrame({"lead_id": lead_ids[lead], "closed_at": to_time(spells["start"][absorbed]),
                          "outcome": pd.Series(np.where(spells["stage"][absorbed] == WON, "won", "lost"), dtype="str"),
                          "amount": amount})
    return deals.sort_values(["closed_at", "lead_id"], kind="stable", ignore_index=True)


def event_frame(events) -> pd.DataFrame:
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


def _choice(rng, table, size):
    weights = np.array([w for _, w, _ in table])
    return rng.choice(len(table), size=size, p=weights / weights.sum())


def _effects(table):
    return np.array([e for _, _, e in table])


def table_index(table, name):
    return table_names(table).index(name)


def table_names(table):
    return tuple(name for name, _, _ in table)

def coded_strings(codes, names):
    """Integer codes to a pandas ``str`` column via Arrow: 20M rows in well under a second."""
    import pyarrow as pa

    array = pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int32()), pa.array(list(names)))
    return pd.Series(array.cast(pa.string()), dtype="str")
