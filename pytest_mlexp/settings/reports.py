"""Where the session's HTML report is written, if anywhere, and how HTML figures load plotly.js."""

from __future__ import annotations

from pathlib import Path

import pytest

from .sources import base_dir, lookup


def resolve_html(config: pytest.Config) -> Path | None:
    """The path of ``--mlexp-html`` (ini ``mlexp_html``, yaml ``html``), or ``None``."""
    found = lookup(config, option="mlexp_html", key="html")
    if found is None:
        return None
    value, source = str(found[0]).strip(), found[1]
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base_dir(source, config) / path
    if path.is_dir():
        raise pytest.UsageError(
            f"{source}: {value!r} is a directory; give the path of the HTML file to write, "
            "e.g. --mlexp-html=report.html"
        )
    return path


#: How HTML figures load plotly.js: inside every file, or from plotly's CDN.
FIGURES = ("inline", "cdn")


def resolve_figures(config: pytest.Config) -> str:
    """``--mlexp-figures`` (ini ``mlexp_figures``, yaml ``figures``): ``inline`` or ``cdn``."""
    found = lookup(config, option="mlexp_figures", key="figures")
    if found is None:
        return "inline"
    value, source = str(found[0]).strip().lower(), found[1]
    if value not in FIGURES:
        raise pytest.UsageError(
            f"{source}: invalid value {found[0]!r} for figures; accepted: inline (plotly.js in "
            "every file, works offline) or cdn (plotly.js from its CDN, a few kB a figure)"
        )
    return value


def describe_figures(figures: str) -> str:
    """``figures inline`` / ``figures from the CDN``: for the session's tracking line."""
    return "figures from plotly's CDN" if figures == "cdn" else "figures inline"
