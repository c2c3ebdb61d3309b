"""The HTTP cache stage (placeholder until the RFC 9111 cache lands): no caching."""

from __future__ import annotations

from typing import Any

from oafetch.config import Config


def build_cache(config: Config, telemetry: Any) -> Any:
    """Return a transport wrapper for the cache stage, or None for no cache."""
    return None
