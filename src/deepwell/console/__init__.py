"""The web console: its static pages (``static/``) and the service behind its API."""

from pathlib import Path

from deepwell.console.service import AccountAdmin, UnknownKey

STATIC_DIR = Path(__file__).parent / "static"
"""The console's HTML, CSS and JavaScript, shipped in the package."""

__all__ = ["STATIC_DIR", "AccountAdmin", "UnknownKey"]
