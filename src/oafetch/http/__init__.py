"""The polite HTTP layer: one shared client, rate limits, retries, breakers, robots, redaction."""

from oafetch.http.client import HttpClient, TextResponse
from oafetch.urls import canonical_url, redact_url, url_hash

__all__ = ["HttpClient", "TextResponse", "canonical_url", "redact_url", "url_hash"]
