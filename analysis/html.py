"""What a report hands its template: tables formatted for people, pictures as embedded PNGs, numbers in words."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd


def table(frame: pd.DataFrame, *, formats: dict | None = None, labels: dict | None = None) -> dict:
    """``frame`` as a table for people, in plain values a template lays out (``_parts.html``'s ``table``).

    Returns ``{"columns": [{"label", "css"}], "rows": [[text, ...]]}``: column labels in words,
    every cell already formatted. ``formats`` maps a column to ``"percent"``, ``"money"``,
    ``"count"``, ``"ratio"`` (2 decimals), ``"probability"`` (3 decimals) or a callable; text
    columns get the css class ``text`` (left-aligned). Missing values show as an en dash.
    ``labels`` maps a column to its heading; columns without one keep their name with
    underscores as spaces.
    """
    formats, labels = formats or {}, labels or {}
    columns = []
    for column in frame.columns:
        text = column not in formats and not pd.api.types.is_numeric_dtype(frame[column])
        columns.append({"label": labels.get(column, str(column).replace("_", " ")), "css": "text" if text else ""})
    rows = [[format_value(value, formats.get(column)) for column, value in zip(frame.columns, values)]
            for values in frame.itertuples(index=False)]
    return {"columns": columns, "rows": rows}


def format_value(value, kind=None) -> str:
    """One cell as text: ``kind`` as in :func:`table`; numbers without a kind get thousands separators."""
    if callable(kind):
        return kind(value)
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return "\u2013"
    if kind == "percent":
        return percent(value)
    if kind == "money":
        return money(value)
    if kind == "count":
        return f"{int(round(float(value))):,}"
    if kind == "ratio":
        return f"{float(value):,.2f}"
    if kind == "probability":
        return f"{float(value):.3f}"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):,.3f}"
    return str(value)


def percent(value, *, decimals: int | None = None) -> str:
    """0.0523 -> '5.2 %'; small shares keep two decimals (0.0042 -> '0.42 %')."""
    value = float(value)
    if np.isnan(value):
        return "\u2013"
    if decimals is None:
        decimals = 2 if 0 < abs(value) < 0.01 else 1
    return f"{value * 100:.{decimals}f} %"


def money(value) -> str:
    """2272197.163 -> '2,272,197'; amounts are whole units of the CRM's currency."""
    value = float(value)
    return "\u2013" if np.isnan(value) else f"{value:,.0f}"


def figure(figures: dict, name: str, *, caption: str = "", dpi: int = 100) -> dict | None:
    """The named matplotlib figure as ``{"name", "src", "caption"}``, ``src`` an embedded PNG; None when absent."""
    shown = figures.get(name)
    if shown is None:
        return None
    encoded = base64.b64encode(png_bytes(shown, dpi=dpi)).decode("ascii")
    return {"name": name, "src": f"data:image/png;base64,{encoded}", "caption": caption}


def png_bytes(shown, *, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    shown.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
