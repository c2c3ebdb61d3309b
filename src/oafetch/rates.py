"""Rate policies as values: parse ``"10/s"``, ``"1/3s"``, ``"60/min, 2000/h"``; the default table.

Pure and I/O-free; the limiter in :mod:`oafetch.http.ratelimit` enforces what this describes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")
_UNLIMITED = {"none", "off", "unlimited", "inf"}


@dataclass(frozen=True)
class RateWindow:
    """At most ``count`` requests per ``period_s`` seconds, evenly spaced."""

    count: float
    period_s: float

    @property
    def interval_s(self) -> float:
        """The spacing between two requests this window allows."""
        return self.period_s / self.count

    def __str__(self) -> str:
        return f"{self.count:g}/{self.period_s:g}s"


@dataclass(frozen=True)
class RatePolicy:
    """All windows must allow a request; no windows means unlimited."""

    windows: tuple[RateWindow, ...]

    @property
    def unlimited(self) -> bool:
        return not self.windows

    @property
    def interval_s(self) -> float:
        """The tightest spacing any window imposes (0 when unlimited)."""
        return max((w.interval_s for w in self.windows), default=0.0)

    def with_min_interval(self, interval_s: float) -> RatePolicy:
        """This policy, slowed to at most one request per ``interval_s`` (robots Crawl-delay)."""
        if interval_s <= self.interval_s:
            return self
        return RatePolicy((*self.windows, RateWindow(1.0, interval_s)))

    def __str__(self) -> str:
        return ", ".join(str(w) for w in self.windows) or "unlimited"


def parse_rate(text: str) -> RatePolicy:
    """Parse a rate policy string.

    Accepts one or more comma-separated windows ``N/unit`` or ``N/Munit`` (``10/s``, ``1/3s``,
    ``60/min``, ``2000/h``, ``1/2.5s``) or ``unlimited``.

    Raises:
        ValueError: with the rule that was broken, for use in a config error message.
    """
    cleaned = text.strip().lower()
    if cleaned in _UNLIMITED:
        return RatePolicy(())
    windows = []
    for part in cleaned.split(","):
        match = _WINDOW.match(part)
        if not match:
            raise ValueError(
                "must look like '10/s', '1/3s', '60/min' or '60/min, 2000/h' (or 'unlimited')"
            )
        count, mult, unit = float(match[1]), float(match[2] or 1), match[3]
        if unit not in _UNITS:
            raise ValueError(f"unknown time unit {unit!r}; use one of ms, s, min, h, d")
        if count <= 0 or mult <= 0:
            raise ValueError("must be > 0 requests per period")
        windows.append(RateWindow(count, mult * _UNITS[unit]))
    return RatePolicy(tuple(windows))


# Defaults per host, from each source's published limits (see docs/POLITENESS.md).
DEFAULT_RATES: MappingProxyType[str, str] = MappingProxyType(
    {
        "api.unpaywall.org": "1/s",
        "api.crossref.org": "10/s",
        "api.openalex.org": "10/s",
        "content.openalex.org": "10/s",  # paid downloads; the key's 100/s cap is shared
        "export.arxiv.org": "1/3s",
        "arxiv.org": "1/15s",
        "eutils.ncbi.nlm.nih.gov": "3/s",
        "pmc.ncbi.nlm.nih.gov": "3/s",
        "www.ncbi.nlm.nih.gov": "3/s",
        "pmc-oa-opendata.s3.amazonaws.com": "5/s",
        "www.ebi.ac.uk": "2/s",
        "europepmc.org": "2/s",
        "api.semanticscholar.org": "1/3s",
        "api.core.ac.uk": "1/6s",
        "core.ac.uk": "1/s",
        "doaj.org": "2/s",
        "zenodo.org": "1/s",
        "api.figshare.com": "1/s",
        "ndownloader.figshare.com": "1/s",
        "api.archives-ouvertes.fr": "1/s",
        "hal.science": "1/s",
        "api.osf.io": "1/36s",
        "osf.io": "1/s",
        "api.openaire.eu": "1/60s",
        "archive.org": "1/2.5s",
        "web.archive.org": "1/s",
        "doi.org": "5/s",
    }
)

# Hosts that share one budget (NCBI counts every E-utilities/PMC host against one key or IP).
DEFAULT_RATE_GROUPS: MappingProxyType[str, str] = MappingProxyType(
    {
        "eutils.ncbi.nlm.nih.gov": "ncbi",
        "pmc.ncbi.nlm.nih.gov": "ncbi",
        "www.ncbi.nlm.nih.gov": "ncbi",
    }
)
