"""Pieces of a self-contained HTML report: a page, tables formatted for people, pictures as embedded PNGs."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd

STYLE = ("body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222;"
         "line-height:1.4}h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}"
         "table{border-collapse:collapse;font-size:13px;margin:.8em 0}"
         "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
         "td.text,th.text{text-align:left}.headline{font-size:1.1em;background:#f3f6fa;padding:.8em}"
         ".scroll{overflow-x:auto;max-width:100%}.note{color:#555;font-size:.92em}"
         "img{max-width:100%;height:auto}figure{margin:1em 0}figcaption{color:#555;font-size:.9em}"
         ".row{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}.row figure{margin:0}")


def row(*parts: str) -> str:
    """Pictures side by side, wrapping on a narrow screen."""
    return f"<div class='row'>{''.join(parts)}</div>"


def page(title: str, parts: list[str]) -> str:
    """One HTML document around ``parts`` (already HTML)."""
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")


def table(frame: pd.DataFrame, *, formats: dict | None = None, labels: dict | None = None) -> str:
    """``frame`` as an HTML table for people: column labels in words, each column in its format.

    ``formats`` maps a column to ``"percent"``, ``"money"``, ``"count"``, ``"ratio"`` (2 decimals),
    ``"probability"`` (3 decimals) or a callable; text columns are left-aligned. Missing values show
    as an en dash. ``labels`` maps a column to its heading; columns without one keep their name
    with underscores as spaces.
    """
    formats, labels = formats or {}, labels or {}
    heads = []
    text_columns = set()
    for column in frame.columns:
        if column not in formats and not pd.api.types.is_numeric_dtype(frame[column]):
            text_columns.add(column)
        label = labels.get(column, str(column).replace("_", " "))
        heads.append(f"<th class='{'text' if column in text_columns else ''}'>{html.escape(label)}</th>")
    rows = []
    for values in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, values):
            text = format_value(value, formats.get(column))
            cells.append(f"<td class='{'text' if column in text_columns else ''}'>{html.escape(text)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (f"<div class='scroll'><table><thead><tr>{''.join(heads)}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


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


def figure(figures: dict, name: str, *, caption: str = "", dpi: int = 100) -> str:
    """The named matplotlib figure as an embedded PNG (empty when absent), with an optional caption."""
    shown = figures.get(name)
    if shown is None:
        return ""
    encoded = base64.b64encode(png_bytes(shown, dpi=dpi)).decode("ascii")
    note = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{encoded}'>{note}</figure>"


def png_bytes(shown, *, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    shown.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def paragraph(text: str, *, css: str = "") -> str:
    """Plain text as a paragraph (escaped)."""
    return f"<p class='{css}'>{html.escape(text)}</p>" if css else f"<p>{html.escape(text)}</p>"
