"""The feature specification: which columns, event types, windows and half-lives make a lead's features."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import asdict, dataclass, field

from features.timing import duration_label

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
#: Keys the engagement features already use: an event type may not be called this.
RESERVED_EVENT_KEYS = (OTHER_EVENT_TYPE, "any")


@dataclass(frozen=True)
class FeatureSpec:
    """What the feature builders compute; saved inside the model so scoring rebuilds the same columns.

    Parameters
    ----------
    event_types : event types that get their own columns, as the data names them (``"O_SENT_BACK"``,
        ``"Send Fine"``); any other type counts as ``other``. A type's columns use its key
        (:func:`event_key`: ``send_fine``); an event matches a type when their keys are equal.
    event_words : optional ``(type, words)`` pairs for reasons: ``words`` is what the lead did
        (``"sent the offer back"``) or ``(one, many, did)`` (``("demo request", "demo requests",
        "requested a demo")``). Types without words read as their own name.
    windows_days : count windows, in days before ``as_of`` (fractions of a day are fine: 0.25 is 6 h).
    half_lives_days : half-lives of the exponentially decayed event intensities, in days.
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
    windows_days: tuple[float, ...] = (7, 30, 90)
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
    event_words: tuple = ()
    engagement_columns: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("event_types", "windows_days", "half_lives_days", "categorical_columns",
                     "numeric_columns", "missing_tokens", "raw_numeric_columns", "boolean_columns",
                     "engagement_columns"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        words = self.event_words.items() if isinstance(self.event_words, dict) else self.event_words
        object.__setattr__(self, "event_words", tuple(
            (str(kind), text if isinstance(text, str) else tuple(text)) for kind, text in words))
        # Whole-day windows stay ints (a config gives 7.0 for "7d"): names and saved form as ever.
        object.__setattr__(self, "windows_days", tuple(int(w) if float(w).is_integer() else float(w)
                                                       for w in self.windows_days))
        if any(w <= 0 for w in self.windows_days) or any(h <= 0 for h in self.half_lives_days):
            raise ValueError(
                "FeatureSpec windows_days and half_lives_days must be positive. "
                f"Got {self.windows_days} and {self.half_lives_days} instead."
            )
        keys = {}
        for kind in self.event_types:
            key = event_key(kind)
            if key in RESERVED_EVENT_KEYS:
                raise ValueError(f"FeatureSpec event_types must not contain the reserved name {key!r} "
                                 f"(from {kind!r}): its events already count under {OTHER_EVENT_TYPE!r}.")
            if key in keys:
                raise ValueError(f"FeatureSpec event types {keys[key]!r} and {kind!r} give the same column name "
                                 f"{key!r}; keep one of them (their events are one type to the features).")
            keys[key] = kind
        unknown = [kind for kind, _ in self.event_words if event_key(kind) not in keys]
        if unknown:
            raise ValueError(f"FeatureSpec event_words name type(s) {unknown} that are not among the event types "
                             f"{list(self.event_types)}.")
        for kind, text in self.event_words:
            if not (isinstance(text, str) and text.strip()) and not (
                    isinstance(text, tuple) and len(text) == 3 and all(isinstance(t, str) and t for t in text)):
                raise ValueError(f"The words for event type {kind!r} must be a phrase such as \"sent the offer "
                                 f"back\" or three phrases [one, many, did]. Got {text!r} instead.")
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
        for key in self.event_keys_with_other:
            names += [count_feature(key, w) for w in self.windows_days]
            names.append(f"events_{key}_total")
            names.append(f"days_since_{key}")
            names += [decayed_feature(key, h) for h in self.half_lives_days]
        names += [count_feature("any", w) for w in self.windows_days]
        names += ["events_any_total", "days_since_any_event", "active_days_total", "active_days_30d",
                  "events_trend_30d"]
        if self.has_email_click_rate:
            names.append("email_click_rate")
        return names

    @property
    def has_email_click_rate(self) -> bool:
        return "email_open" in self.event_keys and "email_click" in self.event_keys

    @property
    def event_keys(self) -> tuple[str, ...]:
        """The column-safe key of each event type, in order (``"Send Fine"`` -> ``send_fine``)."""
        return tuple(event_key(kind) for kind in self.event_types)

    @property
    def event_keys_with_other(self) -> tuple[str, ...]:
        return (*self.event_keys, OTHER_EVENT_TYPE)

    @property
    def event_names(self) -> dict[str, str]:
        """Key -> the type as the data names it (``other`` for the long tail)."""
        return {**dict(zip(self.event_keys, self.event_types)), OTHER_EVENT_TYPE: OTHER_EVENT_TYPE}

    def words_for(self, key: str):
        """The configured words of an event type, by key or name (a phrase or (one, many, did)), else None."""
        key = event_key(key)
        return next((text for kind, text in self.event_words if event_key(kind) == key), None)

    def event_key_of(self, name: str) -> str | None:
        """The key of a type named by its key or its name in the data, or None when the spec lacks it."""
        key = event_key(name)
        return key if key in self.event_keys_with_other else None

    @property
    def feature_names(self) -> list[str]:
        """All feature columns: categorical first, then numeric."""
        return (self.fit_feature_names + (["lead_age_days"] if self.lead_age else [])
                + self.engagement_feature_names)

    # --- persistence --------------------------------------------------------------------------

    def as_dict(self) -> dict:
        values = {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}
        values["event_words"] = {kind: text if isinstance(text, str) else list(text) for kind, text in self.event_words}
        return values

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


def event_key(value) -> str:
    """An event type's column-safe key: ASCII lower case, runs of other characters -> ``_``.

    ``"Send Fine"`` -> ``send_fine``, ``"O_SENT_BACK"`` -> ``o_sent_back``, ``" Email-Open "`` ->
    ``email_open``; a missing type is ``""``. A name with no ASCII letters or digits gets a stable
    ``type_<hash>`` key, so it still has columns of its own.
    """
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = str(value)
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    key = re.sub(r"[^0-9a-z]+", "_", folded.strip().lower()).strip("_")
    if not key and text.strip():
        key = "type_" + hashlib.sha1(text.strip().encode("utf-8")).hexdigest()[:8]
    return key


def count_feature(key: str, window_days: float) -> str:
    """``events_<key>_<window>``: 7 days -> ``events_send_fine_7d``, 6 hours -> ``events_send_fine_6h``."""
    return f"events_{key}_{duration_label(window_days)}"


def decayed_feature(key: str, half_life_days: float) -> str:
    """``decayed_<key>_hl<half-life>``: ``decayed_demo_request_hl7d``, ``decayed_send_fine_hl12h``."""
    return f"decayed_{key}_hl{duration_label(half_life_days)}"
