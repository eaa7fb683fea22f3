"""The feature specification: which columns, event types, windows and half-lives make a lead's features."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

#: Event types of the data contract. Types outside the spec are counted under ``other``.
DEFAULT_EVENT_TYPES = (
    "email_open",
    "email_click",
    "page_view",
    "pricing_page_view",
    "content_download",
    "webinar_attended",
    "form_submit",
    "newsletter_signup",
    "free_trial_start",
    "demo_request",
    "unsubscribe",
    "email_bounce",
)
OTHER_EVENT_TYPE = "other"


@dataclass(frozen=True)
class FeatureSpec:
    """What the feature builders compute; saved inside the model so scoring rebuilds the same columns.

    Parameters
    ----------
    event_types : event types that get their own columns; any other type counts as ``other``.
    windows_days : count windows, in days before ``as_of``.
    half_lives_days : half-lives of the exponentially decayed event intensities.
    categorical_columns : lead columns used as categories after normalising case and blanks.
    numeric_columns : lead columns used as ``log1p`` numbers.
    job_title_column : free-text title parsed into seniority and function, or None.
    email_column : e-mail address reduced to its domain type (business / free), or None.
    missing_tokens : values that mean "missing" in categorical columns (compared lower-cased).
    raw_numeric_columns : lead columns used as numbers unchanged (ratios, scores that may be negative).
    boolean_columns : lead columns holding yes/no, true/false or 1/0, used as 1.0 / 0.0.
    event_log : whether there is an event log; without one there are no engagement features.
    lead_age : whether the leads have a creation date, giving the ``lead_age_days`` feature.
    engagement_columns : which of the lead columns above summarise behaviour (visits, time on site,
        last activity): built as their kind says, but counted as engagement, not fit, in the
        sub-scores and reasons of a table without an event log.

    Feature names are the column names made identifier-like (``"Do Not Email"`` ->
    ``do_not_email``); the defaults give the synthetic contract's 109 features.
    """

    event_types: tuple[str, ...] = DEFAULT_EVENT_TYPES
    windows_days: tuple[int, ...] = (7, 30, 90)
    half_lives_days: tuple[float, ...] = (7.0, 30.0)
    categorical_columns: tuple[str, ...] = ("industry", "country", "lead_source")
    numeric_columns: tuple[str, ...] = ("company_size", "annual_revenue")
    job_title_column: str | None = "job_title"
    email_column: str | None = "email"
    missing_tokens: tuple[str, ...] = field(
        default=("", "select", "unknown", "n/a", "na", "none", "null", "nan", "-", "?")
    )
    raw_numeric_columns: tuple[str, ...] = ()
    boolean_columns: tuple[str, ...] = ()
    event_log: bool = True
    lead_age: bool = True
    engagement_columns: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("event_types", "windows_days", "half_lives_days", "categorical_columns",
                     "numeric_columns", "missing_tokens", "raw_numeric_columns", "boolean_columns",
                     "engagement_columns"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if any(w <= 0 for w in self.windows_days) or any(h <= 0 for h in self.half_lives_days):
            raise ValueError(
                "FeatureSpec windows_days and half_lives_days must be positive. "
                f"Got {self.windows_days} and {self.half_lives_days} instead."
            )
        if OTHER_EVENT_TYPE in self.event_types:
            raise ValueError(f"FeatureSpec event_types must not contain the reserved name {OTHER_EVENT_TYPE!r}.")
        attributes = {*self.categorical_columns, *self.numeric_columns, *self.raw_numeric_columns,
                      *self.boolean_columns}
        stray = [column for column in self.engagement_columns if column not in attributes]
        if stray:
            raise ValueError(f"FeatureSpec engagement_columns must be categorical, numeric, raw numeric or boolean "
                             f"columns too. Got {stray}, which are none of them.")
        names = self.feature_names
        clashing = sorted({name for name in names if names.count(name) > 1})
        if clashing:
            raise ValueError(f"FeatureSpec columns must give distinct feature names; {clashing} come from more "
                             "than one column (or a column and a built-in feature). Rename or drop one of them.")

    # --- column names, in the one order every builder and model uses -------------------------

    @property
    def categorical_feature_names(self) -> list[str]:
        names = [feature_name(column) for column in self.categorical_columns]
        if self.job_title_column:
            names += ["seniority", "job_function"]
        if self.email_column:
            names.append("email_domain_type")
        return names

    @property
    def numeric_fit_feature_names(self) -> list[str]:
        return ([f"log_{feature_name(column)}" for column in self.numeric_columns]
                + [feature_name(column) for column in (*self.raw_numeric_columns, *self.boolean_columns)])

    @property
    def fit_feature_names(self) -> list[str]:
        """Features made from lead attributes: a scorer lacking their columns treats them as missing."""
        return self.categorical_feature_names + self.numeric_fit_feature_names

    @property
    def source_columns(self) -> dict[str, str]:
        """Fit feature name -> the lead column it is made from."""
        sources = {feature_name(column): column for column in self.categorical_columns}
        if self.job_title_column:
            sources.update(seniority=self.job_title_column, job_function=self.job_title_column)
        if self.email_column:
            sources["email_domain_type"] = self.email_column
        sources.update({f"log_{feature_name(column)}": column for column in self.numeric_columns})
        sources.update({feature_name(column): column
                        for column in (*self.raw_numeric_columns, *self.boolean_columns)})
        return sources

    @property
    def summarised_engagement_feature_names(self) -> list[str]:
        """Fit-block features made from ``engagement_columns``: behaviour summarised in the lead table."""
        behaviour = set(self.engagement_columns)
        return [name for name, column in self.source_columns.items() if column in behaviour]

    @property
    def engagement_feature_names(self) -> list[str]:
        if not self.event_log:
            return []
        names = []
        for event_type in (*self.event_types, OTHER_EVENT_TYPE):
            names += [f"events_{event_type}_{w}d" for w in self.windows_days]
            names.append(f"events_{event_type}_total")
            names.append(f"days_since_{event_type}")
            names += [f"decayed_{event_type}_hl{_fmt(h)}d" for h in self.half_lives_days]
        names += [f"events_any_{w}d" for w in self.windows_days]
        names += ["events_any_total", "days_since_any_event", "active_days_total", "active_days_30d",
                  "events_trend_30d"]
        if self.has_email_click_rate:
            names.append("email_click_rate")
        return names

    @property
    def has_email_click_rate(self) -> bool:
        return "email_open" in self.event_types and "email_click" in self.event_types

    @property
    def feature_names(self) -> list[str]:
        """All feature columns: categorical first, then numeric."""
        return (self.fit_feature_names + (["lead_age_days"] if self.lead_age else [])
                + self.engagement_feature_names)

    # --- persistence --------------------------------------------------------------------------

    def as_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> FeatureSpec:
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"Unknown FeatureSpec fields {sorted(unknown)}; expected some of "
                             f"{sorted(cls.__dataclass_fields__)}.")
        return cls(**values)


def feature_name(column: str) -> str:
    """A lead column's feature name: lower case, runs of other characters -> ``_`` ("Total Visits" -> total_visits)."""
    name = re.sub(r"[^0-9a-z]+", "_", str(column).strip().lower()).strip("_")
    return name or "column"


def _fmt(days: float) -> str:
    """7.0 -> '7', 1.5 -> '1.5': readable column names."""
    return f"{days:g}"
