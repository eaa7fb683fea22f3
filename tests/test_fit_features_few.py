"""A handful of leads (an HTTP request) takes the value-by-value route; it must equal the batch route."""

import numpy as np
import pandas as pd
import pytest

from crm.synthetic import generate_crm
from features.fit import FEW_LEADS, build_fit_features
from features.spec import FeatureSpec


def test_few_leads_route_equals_the_batch_route_value_for_value():
    leads = generate_crm(400, months=6, seed=8).leads.copy()
    odd = {  # what exports and JSON bodies hold besides clean values
        "industry": [None, np.nan, "  Software  ", "SELECT", 3.0, "unknown", "Health-care  Services"],
        "job_title": [None, "VP of Marketing", "Head of Data", "", "Intern", "assistant manager", 17],
        "email": [None, "ana@GMAIL.com", "bob@acme.io ", "no-at-sign", "x@localhost", 5, "c@sub.example.co.uk"],
        "company_size": [None, -5, 0, "12", "1e3", " N/A ", True],
        "annual_revenue": [np.nan, "4.0e7", 0.5, None, "n/a", 7, 1e12],
    }
    for column, values in odd.items():
        leads[column] = leads[column].astype(object)
        leads.loc[leads.index[:len(values)], column] = pd.Series(values, index=leads.index[:len(values)],
                                                                dtype=object)
    spec = FeatureSpec(missing_tokens=("select", "unknown", "n/a"))
    batch = build_fit_features(leads, spec)
    assert len(leads) > FEW_LEADS
    for start in range(0, 60, 3):
        few = build_fit_features(leads.iloc[start:start + 3], spec)
        pd.testing.assert_frame_equal(few, batch.iloc[start:start + 3])


def test_few_leads_route_with_a_config_spec():
    spec = FeatureSpec(categorical_columns=("Source",), numeric_columns=("Visits",), raw_numeric_columns=("Score",),
                       boolean_columns=("Opted Out",), job_title_column=None, email_column=None, event_log=False,
                       lead_age=False)
    leads = pd.DataFrame({"lead_id": range(12), "Source": ["Web", None, "select", 4.0] * 3,
                          "Visits": [1, None, "7", -1] * 3, "Score": [-2.5, None, "n/a", 3] * 3,
                          "Opted Out": ["Yes", "no", True, None] * 3})
    batch = build_fit_features(leads, spec)
    for i in range(4):
        pd.testing.assert_frame_equal(build_fit_features(leads.iloc[[i]], spec), batch.iloc[[i]])


def test_text_that_is_no_number_is_refused_on_both_routes_never_a_silent_missing_value():
    # Before: "many" became NaN here (to_numeric(errors="coerce")); the readers refuse it with a line first.
    leads = generate_crm(60, months=6, seed=8).leads.copy()
    leads["company_size"] = leads["company_size"].astype(object)
    leads.loc[leads.index[4], "company_size"] = "many"
    for rows in (leads, leads.iloc[[4]]):
        with pytest.raises(ValueError, match=r"Column 'company_size' must hold numbers .*'many'"):
            build_fit_features(rows, FeatureSpec())
