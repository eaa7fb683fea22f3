import numpy as np
import pandas as pd
import pytest

from features.fit import build_fit_features, normalise_category, parse_job_function, parse_seniority
from features.spec import FeatureSpec


@pytest.mark.parametrize("title, seniority, function", [
    ("VP of Marketing", "vp", "marketing"),
    ("vp, marketing", "vp", "marketing"),
    ("Senior Vice President Sales", "vp", "sales"),
    ("Chief Technology Officer", "c_level", "engineering"),
    ("CEO & Founder", "c_level", "executive"),
    ("Head of Sales", "director", "sales"),
    ("director - it", "director", "engineering"),
    ("Marketing Manager", "manager", "marketing"),
    ("Marketing Intern", "entry", "marketing"),
    ("Sr. Software Engineer", "individual", "engineering"),
    ("Nurse", "individual", "other"),
    ("", None, None),
    (None, None, None),
])
def test_job_titles_parse_into_seniority_and_function(title, seniority, function):
    assert parse_seniority(title) == seniority
    assert parse_job_function(title) == function


def test_categories_are_normalised_and_placeholders_are_missing():
    values = pd.Series(["Software", "software ", " SOFTWARE", "Select", None, "Financial  Services", 7])
    cleaned = normalise_category(values, missing_tokens=("select",))
    assert cleaned.tolist() == ["software", "software", "software", None, None, "financial services", "7"]


def test_fit_features_by_hand():
    leads = pd.DataFrame({
        "lead_id": [1, 2, 3],
        "job_title": ["VP Sales", None, "data engineer"],
        "industry": ["Software", "select", "RETAIL"],
        "country": ["US", "us ", None],
        "lead_source": ["Webinar", "webinar", "Referral"],
        "email": ["ann@acme.io", "bob@GMAIL.com", "not-an-email"],
        "company_size": [99.0, None, -5.0],
        "annual_revenue": [0.0, 1e6, np.nan],
    }, index=[10, 11, 12])
    spec = FeatureSpec()
    features = build_fit_features(leads, spec)

    assert list(features.columns) == spec.categorical_feature_names + spec.numeric_fit_feature_names
    assert list(features.index) == [10, 11, 12]
    assert features["industry"].tolist() == ["software", None, "retail"]
    assert features["country"].tolist() == ["us", "us", None]
    assert features["seniority"].tolist() == ["vp", None, "individual"]
    assert features["job_function"].tolist() == ["sales", None, "engineering"]
    assert features["email_domain_type"].tolist() == ["business", "free", None]
    # log1p(99) = log(100); a negative size is an entry error, so missing.
    np.testing.assert_allclose(features["log_company_size"], [np.log(100), np.nan, np.nan])
    np.testing.assert_allclose(features["log_annual_revenue"], [0.0, np.log1p(1e6), np.nan])


def test_no_raw_pii_survives():
    leads = pd.DataFrame({"lead_id": [1], "job_title": ["CTO"], "industry": ["x"], "country": ["y"],
                          "lead_source": ["z"], "email": ["jane.doe@acme.com"], "company_size": [1.0],
                          "annual_revenue": [1.0]})
    features = build_fit_features(leads, FeatureSpec())
    assert not features.astype(str).apply(lambda column: column.str.contains("jane|acme")).any().any()


def test_codes_read_as_floats_match_the_same_codes_as_text():
    assert normalise_category(pd.Series([3.0, np.nan, 2.5])).tolist() == ["3", None, "2.5"]
    assert normalise_category(pd.Series(["3"])).tolist() == ["3"]


def test_email_domains_vectorised_as_pythons_regex_reads_them():
    """Arrow cuts the tail after the last @, Python reads the distinct tails: the same domain types as one by one."""
    from features.fit import _email_domain_type, _email_domain_types

    addresses = ["ann@acme.io", "bob@GMAIL.com", "not-an-email", " eve@ Yahoo.com \n", "x@y@gmail.com",
                 "tab@\tgmail.com\x0b", "sep@gmail.com\x1f", "a@b", "@gmail.com", "kim@gmail.com.", "zoë@gmail.com",
                 "nbsp@gmail.com\u00a0", "x@ex\u00a0ample.com", None, "", "UPPER@HOTMAIL.CO.UK", "a@b.c d",
                 "a@", "@", "x@gmail.com@", "x@gmail.com@ acme.io ", "a@b c@gmail.com", "ann@acme.io"]
    got = _email_domain_types(pd.Series(addresses, dtype=object)).tolist()
    assert got == [_email_domain_type(a) for a in addresses]
    assert got[:5] == ["business", "free", None, "free", "free"]
    assert got[5:7] == ["free", "free"]  # \v and \x1f are whitespace to Python, not to RE2's \s
    assert got[11] == "free"  # a non-breaking space is whitespace to Python: gmail.com, not gmail.com\xa0
