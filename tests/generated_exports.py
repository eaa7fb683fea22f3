"""Synthetic CRMs written as companies export them: their own column names, won deals only, blank dates."""

import numpy as np
import pandas as pd

from crm.synthetic import generate_crm

#: The contract's lead columns under a marketing tool's names.
LEAD_NAMES = {"lead_id": "Contact ID", "created_at": "Created On", "job_title": "Job Title", "industry": "Industry",
              "company_size": "Employees", "annual_revenue": "Annual Revenue", "country": "Country",
              "lead_source": "Source", "email": "Email"}
EVENT_NAMES = {"lead_id": "Contact", "occurred_at": "Timestamp", "event_type": "Activity", "channel": "Channel"}


def write_export(folder, *, n_leads: int = 1500, seed: int = 0, won_only: bool = False, blank_created: int = 0):
    """Write leads.csv, events.csv and deals.csv into ``folder``; returns the generated CRM (contract names).

    ``won_only``: the deals table lists wins only (``Won On``, ``Amount`` and a mostly blank ``Seller``
    note), as a marketing tool exports closed-won deals. ``blank_created``: that many leads, drawn
    at random, have an empty ``Created On``.
    """
    crm = generate_crm(n_leads, months=12, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    leads = crm.leads.rename(columns=LEAD_NAMES)
    if blank_created:
        blank = rng.choice(len(leads), blank_created, replace=False)
        leads["Created On"] = leads["Created On"].astype(object)
        leads.loc[leads.index[blank], "Created On"] = None
    leads.to_csv(folder / "leads.csv", index=False)
    crm.events.rename(columns=EVENT_NAMES).to_csv(folder / "events.csv", index=False)
    if won_only:
        won = crm.deals[crm.deals["outcome"].eq("won")]
        deals = pd.DataFrame({"Contact": won["lead_id"].to_numpy(), "Won On": won["closed_at"].to_numpy(),
                              "Amount": won["amount"].to_numpy(),
                              # Filled for a few deals only: a note, never the outcome.
                              "Seller": np.where(rng.random(len(won)) < 0.2, "Anna", None)})
    else:
        deals = crm.deals.rename(columns={"lead_id": "Contact", "closed_at": "Closed", "outcome": "Stage",
                                          "amount": "Amount"})
    deals.to_csv(folder / "deals.csv", index=False)
    return crm
