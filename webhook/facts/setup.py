"""Which fact gatherers run, built once from settings at start-up.

Each capability adds its gatherer here (one line) and its settings section in
``webhook/config.py``; the reviewer only sees the ``FactGatherer`` protocol.
"""

from __future__ import annotations

from webhook.config import Settings
from webhook.facts import FactGatherer


def build_gatherers(settings: Settings) -> list[FactGatherer]:
    """The gatherers configured for this process (order does not matter: they run concurrently)."""
    gatherers: list[FactGatherer] = []
    return gatherers
