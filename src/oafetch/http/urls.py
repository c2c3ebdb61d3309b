"""Re-export of :mod:`oafetch.urls` (URL helpers live at the package top: works use them too)."""

from oafetch.urls import *  # noqa: F403
from oafetch.urls import REDACTED, SECRET_HEADERS, SECRET_PARAMS, canonical_url, host_of, redact_headers, redact_url, scrub, url_hash  # noqa: F401
