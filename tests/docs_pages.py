"""The documentation's pages and their fenced blocks, as the docs tests read them."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def nav_pages() -> list[str]:
    """Every markdown page mkdocs.yml's navigation names, in order, relative to docs/."""
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    return _flatten(config["nav"])


def code_blocks(path: Path) -> list[tuple[str, str]]:
    """(language, text) of every fenced block of a markdown file."""
    return re.findall(r"^```(\w*)\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def _flatten(nav) -> list[str]:
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages.extend(_flatten(value) if isinstance(value, list) else [value])
    return pages
