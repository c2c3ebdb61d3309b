"""Simulated publisher hosts: URL layouts, robots.txt policies and DOAJ membership.

Publisher *k* is the sandbox service ``publisher{k}``. Their roles are fixed by number so tests
can rely on them:

- publisher1: ordinary robots.txt (``Disallow: /admin/``), DOAJ-indexed.
- publisher2: robots.txt disallows ``/restricted/`` -- where the robots_disallowed works' PDFs are.
- publisher3: robots.txt answers 500 (RFC 9309: assume complete disallow). Only works whose
  file is also available elsewhere, or not at all, are placed here.
- publisher4: no robots.txt (404: allow all), DOAJ-indexed.
- publisher5 and later: allow-all robots.txt with a Sitemap line; every third is DOAJ-indexed.
"""

from __future__ import annotations

from dataclasses import dataclass

RESTRICTED_PREFIX = "/restricted/"
#: Path prefixes arxiv.org's robots.txt disallows (the sandbox's `arxiv` host mirrors them).
ARXIV_DISALLOWED = ("/e-print", "/api", "/search")
MIN_PUBLISHERS = 4


@dataclass(frozen=True)
class Publisher:
    """One publisher host: its URL layout and robots policy."""

    number: int

    @property
    def name(self) -> str:
        """The sandbox service name (``publisherN``)."""
        return f"publisher{self.number}"

    @property
    def style(self) -> int:
        """Which of three URL layouts the host uses."""
        return (self.number - 1) % 3

    @property
    def robots(self) -> str:
        """The robots role: normal, restricted, error, missing or open."""
        return {1: "normal", 2: "restricted", 3: "error", 4: "missing"}.get(self.number, "open")

    @property
    def doaj(self) -> bool:
        """Whether DOAJ indexes this publisher's journals."""
        return self.number % 3 == 1

    def robots_txt(self) -> tuple[int, str]:
        """The status and body this host answers for ``/robots.txt``."""
        role = self.robots
        if role == "error":
            return 500, "Internal Server Error\n"
        if role == "missing":
            return 404, "Not Found\n"
        if role == "restricted":
            return 200, f"User-agent: *\nDisallow: {RESTRICTED_PREFIX}\nDisallow: /admin/\n"
        if role == "normal":
            return 200, "User-agent: *\nDisallow: /admin/\nDisallow: /search\n"
        return 200, "User-agent: *\nAllow: /\n\nSitemap: /sitemap.xml\n"

    def allows(self, path: str) -> bool:
        """Whether a client obeying RFC 9309 may fetch `path` from this host."""
        role = self.robots
        if role == "error":
            return False
        if role == "restricted" and path.startswith(RESTRICTED_PREFIX):
            return False
        return not path.startswith(("/admin/", "/search"))

    def paths(self, doi: str, slug: str) -> tuple[str, str]:
        """(landing page path, PDF path) of a work on this host (unquoted)."""
        if self.style == 0:
            return f"/doi/{doi}", f"/doi/pdf/{doi}"
        if self.style == 1:
            return f"/article/{slug}", f"/article/{slug}/pdf"
        return f"/content/{slug}", f"/content/{slug}.full.pdf"

    def forbidden_path(self, slug: str) -> str:
        """An IP-restricted full-text path (Crossref similarity-checking links point here)."""
        return f"/tdm/{slug}/fulltext.pdf"


def make_publishers(count: int) -> list[Publisher]:
    """The publisher hosts of a corpus.

    Raises:
        ValueError: `count` is below `MIN_PUBLISHERS` (their robots roles need four hosts).
    """
    if count < MIN_PUBLISHERS:
        raise ValueError(
            f"n_publishers: must be >= {MIN_PUBLISHERS} (robots roles need four hosts)"
            f" (got {count})"
        )
    return [Publisher(number) for number in range(1, count + 1)]
