"""The mess of a real CRM export laid over the synthetic leads: free-text titles, casing, placeholders, gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm.synthetic_world import COUNTRY, FUNCTION, INDUSTRY, SENIORITY, SOURCE, table_names


def messy_leads(rng, people, lead_ids, to_time):
    """The leads table as an export shows it: PII e-mails, free-text titles, dirty categories, gaps."""
    n = lead_ids.size
    first = np.array(_FIRST_NAMES, dtype=object)[rng.integers(0, len(_FIRST_NAMES), n)]
    last = np.array(_LAST_NAMES, dtype=object)[rng.integers(0, len(_LAST_NAMES), n)]
    domains = _company_domains(rng, people["company"].max() + 1)[people["company"]]
    free_domains = np.array(FREE_DOMAINS, dtype=object)[rng.integers(0, len(FREE_DOMAINS), n)]
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
        "industry": _messy_category(rng, people["industry"], table_names(INDUSTRY), missing=0.04, placeholder=0.02),
        "company_size": size,
        "annual_revenue": revenue,
        "country": _messy_category(rng, people["country"], table_names(COUNTRY), missing=0.02, placeholder=0.01),
        "lead_source": _messy_category(rng, people["source"], table_names(SOURCE), missing=0.02, placeholder=0.01),
        "email": pd.Series(emails, dtype="str"),
    })


def _messy_titles(rng, seniority, function):
    """Free-text titles that parse back to (seniority, function) most of the time."""
    vocabulary, ranges = [], {}
    for s, (s_name, _, _) in enumerate(SENIORITY):
        for f, (f_name, _, _) in enumerate(FUNCTION):
            titles = titles_for(s_name, f_name)
            ranges[s, f] = (len(vocabulary), len(titles))
            vocabulary += titles
    offset = np.zeros((len(SENIORITY), len(FUNCTION)), dtype=np.int64)
    count = np.ones_like(offset)
    for (s, f), (o, c) in ranges.items():
        offset[s, f], count[s, f] = o, c
    title = offset[seniority, function] + (rng.random(seniority.size) * count[seniority, function]).astype(np.int64)
    return _messy_category(rng, title, tuple(vocabulary), missing=0.02, placeholder=0.01, placeholder_text="")


def titles_for(seniority, function):
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
FREE_DOMAINS = ("gmail.com", "gmail.com", "gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com",
                 "gmx.de", "aol.com")
_COMPANY_STEMS = ("acme", "globex", "initech", "umbra", "stark", "wayne", "hooli", "vandelay", "pied", "piper",
                  "soylent", "tyrell", "wonka", "cyber", "dyne", "nova", "blue", "red", "north", "summit",
                  "apex", "bright", "cloud", "data", "metro", "omni", "peak", "quant", "river", "stone",
                  "terra", "vertex", "zen", "alpha", "beta", "delta", "echo", "fusion", "granite", "harbor")
_COMPANY_SUFFIXES = ("", "-corp", "labs", "systems", "tech", "-group", "soft", "works", "-inc", "ly")
_TLDS = ("com", "com", "com", "io", "co", "net", "de", "co.uk")
