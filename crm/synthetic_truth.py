"""What the synthetic world knows and a model cannot see: the hidden stages, the oracle, the observable ceiling.

The true probability of a win within a horizon given the stage at ``as_of`` is one matrix exponential per
fit level (the oracle); the observable ceiling filters the hidden chain over a lead's own events
(``crm.synthetic_filter``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm.synthetic_filter import (ObservationModel, check_possible, filter_stages, first_touches, fit_prior,
                                  observed_events)
from crm.synthetic_world import LOST, N_FIT_LEVELS, STAGES, WON, event_frame


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
        closing = self.spells.loc[self.spells["stage"].isin(STAGES[WON:])].groupby("lead_id")["started_at"].min()
        created = first.reindex(query["lead_id"]).to_numpy(dtype="datetime64[ns]")
        unknown = np.isnat(created) | (created >= query["as_of"].to_numpy())
        if unknown.any():
            raise ValueError("filtered_probability: every snapshot needs a known lead created before as_of; "
                             f"{int(unknown.sum())} rows are not, e.g.\n"
                             f"{query.loc[unknown, ['lead_id', 'as_of']].head(5).to_string()}")
        closed_at = closing.reindex(query["lead_id"]).to_numpy(dtype="datetime64[ns]")
        open_ = ~(closed_at < query["as_of"].to_numpy())  # NaT compares False: never closed
        query = query.loc[open_].assign(created=created[open_])
        frame = event_frame(events)
        observed = observed_events(frame, query)
        model = ObservationModel.build(self.generators, activity_nodes)
        won = self.won_within(horizon_days)[:, :WON]
        ids = np.unique(query["lead_id"].to_numpy())
        if leads is None:
            level = self.leads["fit_level"].to_numpy(dtype=np.int64)[np.searchsorted(lead_ids, ids)]
            stage, evidence = filter_stages(query, observed, level, model)
            check_possible(query, evidence[:, None])
            result[query["row"].to_numpy()] = np.einsum("ns,ns->n", stage, won[level[np.searchsorted(ids, query["lead_id"])]])
            return result
        prior = fit_prior(leads, ids, first_touches(frame, query), np.random.default_rng(seed))
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
            stage, evidence[rows, level] = filter_stages(part, observed.loc[observed["lead_id"].isin(ids[possible])],
                                                          np.full(possible.sum(), level), model, weight[possible])
            chance[rows, level] = stage @ won[level]
        check_possible(query, evidence)
        posterior = np.exp(evidence - evidence.max(axis=1, keepdims=True))
        result[query["row"].to_numpy()] = (posterior * chance).sum(axis=1) / posterior.sum(axis=1)
        return result

    def won_within(self, horizon_days: float) -> np.ndarray:
        """Table (levels, stages): P(absorbed in won within the horizon | level, stage); 0 if closed."""
        from scipy.linalg import expm

        table = np.array([expm(q * float(horizon_days))[:, WON] for q in self.generators])
        table[:, [WON, LOST]] = 0.0
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
