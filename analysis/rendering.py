"""HTML reports rendered from the Jinja2 templates in ``analysis/templates/``: one base page, one template per report.

The markup lives in the templates; the report modules prepare plain values (strings already
formatted for people, tables from :func:`analysis.html.table`, pictures from
:func:`analysis.html.figure`). Autoescaping is on, so a lead's or a column's text can never
become markup; undefined names fail loudly instead of rendering as empty text.
"""

from __future__ import annotations

from functools import lru_cache


def render_page(template: str, **context) -> str:
    """The named template (e.g. ``"monitoring.html"``) rendered with ``context`` as one HTML string."""
    return _environment().get_template(template).render(**context)


@lru_cache(maxsize=1)
def _environment():
    # Built on first use, not at import: importing a module does nothing.
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("analysis", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
