"""A small hand-made single-table CRM export with the quirks real ones have, for the own-export tests."""

import numpy as np
import pandas as pd


def make_export(n: int = 600, *, seed: int = 0, leaky: bool = True) -> pd.DataFrame:
    """Leads with a yes/no label driven by visits, source and opt-out; ``Rep Verdict`` copies the label."""
    rng = np.random.default_rng(seed)
    source = rng.choice(["Web", "Referral", "Ads", "Select"], size=n, p=[0.4, 0.2, 0.3, 0.1])
    visits = rng.gamma(1.5, 600, size=n).round()
    opted_out = rng.random(n) < 0.2
    logit = -1.0 + 0.9 * np.log1p(visits) / 3 + np.select([source == "Referral", source == "Ads"], [1.2, -0.6], 0.0) \
        - 1.0 * opted_out
    converted = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame({
        "Lead Ref": [f"L-{i:05d}" for i in range(n)],
        "Source": source,
        "Visits": visits,
        "Opted Out": np.where(opted_out, "Yes", "No"),
        "Contact Email": [f"person{i}@{'gmail.com' if i % 3 else 'acme.io'}" for i in range(n)],
        "Phone": [f"+44 20 7946 {i:04d}" for i in range(n)],
        "Region": rng.choice(["North", "South", "East", "West"], size=n),
        "Constant": "same",
        "Deal Won": np.where(converted, "Yes", "No"),
    })
    if leaky:  # written by sales after the outcome: a perfect predictor
        frame.insert(7, "Rep Verdict", np.where(converted, "closed - happy", "not interested"))
    return frame


def write_quirky_csv(frame: pd.DataFrame, path, *, delimiter=";") -> None:
    """BOM, CRLF, a trailing delimiter on every line, quoted fields, thousands separators in numbers.

    Numbers carry two decimals ("1,234.00"): thousands separators alone ("1,234") could as well be a
    decimal comma, and a file that shows no decimal mark is refused until its config says which.
    """
    def cell(value):
        if isinstance(value, float) and not np.isnan(value):
            return f'"{value:,.2f}"'
        text = str(value)
        return f'"{text}"' if delimiter in text or " " in text else text

    lines = [delimiter.join(f'"{c}"' for c in frame.columns) + delimiter]
    lines += [delimiter.join(cell(v) for v in row) + delimiter for row in frame.itertuples(index=False)]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
