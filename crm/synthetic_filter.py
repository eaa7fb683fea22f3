"""The observable ceiling's machinery: a forward filter of the synthetic world's hidden chain over a lead's
own events, and the prior over its fit level that a model could infer from the exported lead table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm.synthetic_export import FREE_DOMAINS, titles_for
from crm.synthetic_world import (ACTIVITY_LOG_MEAN, ACTIVITY_LOG_SD, attribute_fit, AWARE, BAD_EMAIL, BAD_EMAIL_EFFECT,
                                 BAD_EMAIL_PURCHASED, BOUNCE_RATE, COLD, company_sizes, COUNTRY, EMAIL_ONLY, ENGAGED,
                                 ENTRY_TRIGGERS, EVENT_RATES, EVENT_TYPES, EXECUTIVE_SHARE, FIRST_TOUCH,
                                 fit_level, FIT_NOISE, FIT_RANGE, free_email_chance, FUNCTION, INDUSTRY,
                                 N_FIT_LEVELS, REVENUE_PER_EMPLOYEE_LOG_MEAN, REVENUE_PER_EMPLOYEE_LOG_SD, SENIORITY,
                                 SOURCE, table_index, table_names, UNSUBSCRIBE_ON_COLD, WON)


def check_possible(query, evidence):
    impossible = ~np.isfinite(evidence).any(axis=1)
    if impossible.any():
        raise ValueError("filtered_probability: the events of leads "
                         f"{query['lead_id'].to_numpy()[impossible][:5].tolist()} are impossible under this truth's "
                         "chain; were they generated with it?")


def observed_events(frame, query) -> pd.DataFrame:
    """The queried leads' informative events: after ``created_at``, before their last ``as_of``, no repeats."""
    span = query.groupby("lead_id").agg(created=("created", "first"), last=("as_of", "max"))
    created = span["created"].reindex(frame["lead_id"]).to_numpy(dtype="datetime64[ns]")
    last = span["last"].reindex(frame["lead_id"]).to_numpy(dtype="datetime64[ns]")
    # The first touch sits exactly at created_at whatever the stage; a verbatim repeat is the export's noise.
    return frame.loc[(frame["at"].to_numpy() > created) & (frame["at"].to_numpy() < last)].drop_duplicates()


def first_touches(frame, query) -> pd.Series:
    """Per queried lead, the kind of its event at ``created_at`` (-1: none): it tells the lead source apart."""
    created = query.groupby("lead_id")["created"].first()
    at_creation = frame.loc[frame["at"].to_numpy() == created.reindex(frame["lead_id"]).to_numpy()]
    return at_creation.groupby("lead_id")["kind"].first().reindex(created.index, fill_value=-1)


def filter_stages(query, observed, level, model, bad_weight=None):
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


def fit_prior(leads, ids, touches, rng, samples: int = 256) -> np.ndarray:
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
    sen, fun = (np.array([w for _, w, _ in t]) / sum(w for _, w, _ in t) for t in (SENIORITY, FUNCTION))
    executive, c_level = table_index(FUNCTION, "executive"), table_index(SENIORITY, "c_level")
    pair = np.outer(sen, fun)  # the generator makes 35% of C-levels executives, whatever their function
    pair[c_level] *= 1.0 - EXECUTIVE_SHARE
    pair[c_level, executive] += EXECUTIVE_SHARE * sen[c_level]
    titles = {}
    for s_, (s_name, _, _) in enumerate(SENIORITY):
        for f_, (f_name, _, _) in enumerate(FUNCTION):
            names = titles_for(s_name, f_name)
            for name in names:
                titles.setdefault(name.strip().casefold(), np.zeros(pair.shape))[s_, f_] += 1.0 / len(names)
    title = [titles.get(t.strip().casefold()) if isinstance(t, str) else None for t in rows["job_title"]]
    pair_weight = np.stack([pair * t if t is not None else pair for t in title]).reshape(n, -1)

    def categorical(column, table, extra=None):
        lookup = {name.casefold(): i for i, name in enumerate(table_names(table))}
        weight = np.tile(np.array([w for _, w, _ in table], dtype=float), (n, 1))
        code = np.array([lookup.get(v.strip().casefold(), -1) if isinstance(v, str) else -1 for v in rows[column]])
        weight[code >= 0] = np.eye(len(table))[code[code >= 0]]
        return weight if extra is None else weight * extra

    touch_of = np.array([EVENT_TYPES.index(FIRST_TOUCH[s]) if s in FIRST_TOUCH else -1 for s in table_names(SOURCE)])
    touch = touches.reindex(ids, fill_value=-1).to_numpy()
    weights = {"pair": pair_weight, "industry": categorical("industry", INDUSTRY),
               "country": categorical("country", COUNTRY),
               "source": categorical("lead_source", SOURCE, extra=touch[:, None] == touch_of[None, :])}
    known_size = rows["company_size"].to_numpy(dtype=float)
    uncertain = np.isnan(known_size) | np.column_stack([(w > 0).sum(axis=1) > 1 for w in weights.values()]).any(axis=1)
    k = np.where(uncertain, samples, 1)
    lead = np.repeat(np.arange(n), k)
    draw = {name: _draw_rows(rng, np.cumsum(w, axis=1), lead) for name, w in weights.items()}
    size = known_size[lead]
    guess = np.isnan(size)
    size[guess] = company_sizes(rng, guess.sum())
    seniority, function = np.divmod(draw["pair"], len(FUNCTION))
    domain = rows["email"].astype(str).str.rsplit("@", n=1).str[-1].str.strip().str.casefold()
    free = domain.isin(FREE_DOMAINS).to_numpy()[lead]
    p_free = free_email_chance(size, seniority)
    weight = np.where(free, p_free, 1.0 - p_free)
    revenue = rows["annual_revenue"].to_numpy(dtype=float)[lead]
    shown = guess & np.isfinite(revenue) & (revenue > 0)
    weight[shown] *= np.exp(-0.5 * ((np.log(revenue[shown] / size[shown]) - REVENUE_PER_EMPLOYEE_LOG_MEAN)
                                    / REVENUE_PER_EMPLOYEE_LOG_SD) ** 2)
    fit = attribute_fit(seniority, function, draw["industry"], draw["country"], draw["source"], size, free)
    p_bad = np.where(draw["source"] == table_index(SOURCE, "Purchased List"), BAD_EMAIL_PURCHASED, BAD_EMAIL)
    from scipy.special import ndtr

    low, high = FIT_RANGE
    width = (high - low) / N_FIT_LEVELS
    reach = int(np.ceil(7 * FIT_NOISE / width))  # levels beyond 7 noise deviations get nothing
    prior = np.zeros((n, 2, N_FIT_LEVELS))
    for bad, share in ((0, 1.0 - p_bad), (1, p_bad)):
        value = fit + BAD_EMAIL_EFFECT * bad
        level = fit_level(value)[:, None] + np.arange(-reach, reach + 1)[None, :]  # may leave 0..levels-1
        upper = np.where(level >= N_FIT_LEVELS - 1, np.inf, low + (level + 1) * width)
        lower = np.where(level <= 0, -np.inf, low + level * width)
        mass = ndtr((upper - value[:, None]) / FIT_NOISE) - ndtr((lower - value[:, None]) / FIT_NOISE)
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
class ObservationModel:
    """How :func:`draw_events` reveals the stage, per (fit level, bad address, activity node), transient stages.

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
        n, k = WON, len(EVENT_TYPES)  # transient stages come first
        rates = np.stack([EVENT_RATES, EVENT_RATES.copy()])
        rates[1][:, EMAIL_ONLY] = 0.0  # [0] a deliverable address, [1] a bad one
        rates[1][:, EVENT_TYPES.index("email_bounce")] = BOUNCE_RATE
        opens = np.zeros((2, n, k))  # P(entering the stage is an event of that type)
        for entered, (names, weights) in ENTRY_TRIGGERS.items():
            for name, weight in zip(names, weights):
                opens[:, entered, EVENT_TYPES.index(name)] += weight
        opens[1, ENGAGED, EVENT_TYPES.index("page_view")] += opens[1, ENGAGED, EVENT_TYPES.index("email_click")]
        opens[1, ENGAGED, EVENT_TYPES.index("email_click")] = 0.0
        opens[0, COLD, EVENT_TYPES.index("unsubscribe")] = UNSUBSCRIBE_ON_COLD

        q = generators[:, :n, :n]
        between = q * (1.0 - np.eye(n))
        silent = between[:, None] * (1.0 - opens.sum(axis=2))[None, :, None, :]
        others = np.ones(n, dtype=bool)
        others[COLD] = False
        if silent[..., others].any() or silent[..., COLD, :].any():
            raise ValueError("filtered_probability solves the no-event dynamics in closed form for chains whose "
                             "only silent jumps lead into cold; this generator has others.")
        z = np.linspace(-4.0, 4.0, activity_nodes) if activity_nodes > 1 else np.zeros(1)
        nodes = np.exp(ACTIVITY_LOG_MEAN + ACTIVITY_LOG_SD * z)
        weight = np.exp(-0.5 * z**2) / np.exp(-0.5 * z**2).sum()
        share = np.array([w for _, w, _ in SOURCE]) / sum(w for _, w, _ in SOURCE)
        bad = np.where(np.array(table_names(SOURCE)) == "Purchased List", BAD_EMAIL_PURCHASED, BAD_EMAIL) @ share
        prior = np.zeros((2, nodes.size, n))
        prior[:, :, AWARE] = np.array([1.0 - bad, bad])[:, None] * weight[None, :]
        decay = (np.diagonal(q, axis1=1, axis2=2)[:, None, None, :]
                 - nodes[None, None, :, None] * rates.sum(axis=2)[None, :, None, :])
        jump = between[:, None, None] * opens.transpose(0, 2, 1)[None, :, :, None, :]
        silent_from = np.flatnonzero(others)
        with np.errstate(divide="ignore"):
            log_cold_in = np.log(silent[..., silent_from, COLD])
        return cls(decay=decay, jump=jump, rates=rates, nodes=nodes, prior=prior, silent_from=silent_from,
                   log_cold_in=log_cold_in, gap=np.abs(decay[..., silent_from] - decay[..., [COLD]]),
                   slower=np.maximum(decay[..., silent_from], decay[..., [COLD]]))

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
            out[..., COLD] = np.logaddexp.reduce(np.concatenate([out[..., [COLD]], inflow], axis=-1), axis=-1)
            scale = out.max(axis=(1, 2, 3))
        return np.exp(out - scale[:, None, None, None]), scale

    def observe(self, alpha, levels, kinds):
        """Multiply in one event of type ``kinds`` per row: a Poisson event in the stage, or the jump it opens."""
        emitted = self.nodes[None, None, :, None] * self.rates[:, :, kinds].transpose(2, 0, 1)[:, :, None, :]
        return alpha * emitted + np.matmul(alpha, self.jump[levels, :, kinds])
