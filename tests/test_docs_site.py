"""The documentation site builds with ``mkdocs build --strict`` and reads offline: nothing loaded from the web."""

import os
import re
import subprocess
import sys
from pathlib import Path

from docs_pages import nav_pages

ROOT = Path(__file__).resolve().parent.parent


def test_the_site_builds_strictly_and_loads_nothing_from_the_web(tmp_path):
    site = tmp_path / "site"
    # As `make docs` runs it; strict: a broken link, a page missing from docs/ or a bad API reference fails.
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    pages = nav_pages()
    assert "reference/api.md" in pages and "results/demo-gap.md" in pages
    for page in pages:  # use_directory_urls is off (offline plugin): a page is its own .html file
        assert (site / page.replace(".md", ".html")).is_file(), page

    # Offline: no page loads a script, style sheet, font or picture from another host.
    loads = re.compile(r"<(?:script|link|img)\b[^>]*?\b(?:src|href)=[\"'](?:https?:)?//", re.I)
    for html in site.rglob("*.html"):
        found = loads.search(html.read_text())
        assert found is None, f"{html.relative_to(site)} loads from the web: {found.group(0)}"
    for css in (site / "assets" / "stylesheets").glob("*.css"):
        assert "fonts.googleapis" not in css.read_text() and "@import url(http" not in css.read_text(), css.name
    # The API reference was generated from the docstrings, not left as the ::: directive.
    api = (site / "reference" / "api.html").read_text()
    assert ":::" not in api and "score_lead_base" in api and "generate_crm" in api
    # Search from files opened straight from disk: the index inlined as a script, the worker shim shipped.
    assert (site / "search" / "search_index.js").is_file()
    assert (site / "assets" / "javascripts" / "iframe-worker-shim.js").is_file()


def test_the_readme_links_to_files_that_exist():
    """The README is read on a code host, not in the site: its relative links must name real files."""
    targets = re.findall(r"\]\(([^)#\s]+)", (ROOT / "README.md").read_text())
    local = [target for target in targets if "://" not in target]
    assert len(local) >= 10
    assert [target for target in local if not (ROOT / target).exists()] == []
