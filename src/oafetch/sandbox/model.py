"""The sandbox's data model: behaviours, serving modes, copies, pages, snapshots and works.

A *work* is what an oafetch user asks for. What the simulated web knows about it is a set of
*copies* (URLs that serve bytes: a publisher PDF, an arXiv PDF, a Zenodo file ...), *pages*
(landing pages that may link to a copy) and Wayback *snapshots*. Each copy and page records which
resolvers advertise it (`listed_by`), so the API imitations can render their answers from the
same facts the expectations are computed from. Everything here is immutable and free of I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Behaviour(enum.StrEnum):
    """What a work does to a client: the label a test or benchmark scores against."""

    DIRECT_OA = "direct_oa"
    LANDING_ONLY = "landing_only"
    REPOSITORY_ONLY = "repository_only"
    ARCHIVE_ONLY = "archive_only"
    NO_OA = "no_oa"
    HTML_AS_PDF = "html_as_pdf"
    CHALLENGE = "challenge"
    RATE_LIMITED = "rate_limited"
    FLAPPING = "flapping"
    SLOW_BODY = "slow_body"
    TRUNCATED = "truncated"
    OVERSIZED = "oversized"
    ROBOTS_DISALLOWED = "robots_disallowed"
    WRONG_PDF = "wrong_pdf"  # the publisher's PDF link serves another document
    # Not in the default mix (its outcome depends on ``tdm``): the publisher reserves TDM
    # rights on the work's PDF (header, its tdmrep.json) or landing page (meta).
    TDM_RESERVED = "tdm_reserved"
    # Not in the default mix: the submitted (arXiv, no licence), accepted (HAL, cc-by) and
    # published (PMC, Europe PMC: cc-by-nc-nd) versions, found by sources of different tiers.
    VERSIONS = "versions"
    # Not in the default mix: a direct-OA work OpenAlex, Crossref (and PMC) say is retracted.
    RETRACTED = "retracted"


class Mode(enum.StrEnum):
    """How one URL answers (a copy or a landing page)."""

    OK = "ok"
    GONE = "gone"  # 404: the publisher moved or dropped the file
    FORBIDDEN = "forbidden"  # 403 HTML: IP-restricted or paywalled link
    CHALLENGE = "challenge"  # Cloudflare 403, cf-mitigated: challenge, "Just a moment..."
    CAPTCHA_PDF = "captcha_pdf"  # 200 application/pdf whose body is a captcha HTML page
    HTML_AS_PDF = "html_as_pdf"  # 200 application/pdf whose body is an HTML article page
    BOT_WALL = "bot_wall"  # 200 HTML "Preparing to download" proof-of-work page (PMC)
    WAF = "waf"  # 202 with an AWS WAF challenge page (figshare portals)
    CF_SCRIPT = "cf_script"  # 200 landing page carrying the script Cloudflare injects into pages
    RATE_LIMITED = "rate_limited"  # 429 + Retry-After: 1 on the first request, then 200
    FLAPPING = "flapping"  # 503 for the first few requests, then 200
    SLOW = "slow"  # 200, body dripped over about a second and a half
    TRUNCATED = "truncated"  # Content-Length larger than the bytes sent, then close
    OVERSIZED = "oversized"  # a very large, honest file
    WRONG_WORK = "wrong_work"  # 200, a valid PDF of another article (its title and DOI)
    SUPPLEMENT_PDF = "supplement_pdf"  # 200, the work's supplementary checklist, not the work
    NOTICE_PDF = "notice_pdf"  # 200, a one-page PDF "purchase this article" notice


#: Modes under which a correct client ends up storing the expected bytes.
GOOD_MODES = frozenset({Mode.OK, Mode.RATE_LIMITED, Mode.FLAPPING, Mode.SLOW, Mode.OVERSIZED})
#: Modes under which a landing page is served and its PDF link can be followed.
PAGE_GOOD_MODES = frozenset({Mode.OK, Mode.CF_SCRIPT})


class LinkStyle(enum.StrEnum):
    """How a landing page points at its PDF."""

    META = "meta"  # <meta name="citation_pdf_url" content="...">
    LINK = "link"  # <link rel="alternate" type="application/pdf" href="...">
    ANCHOR = "anchor"  # <a href="relative/path">Download PDF</a>
    REFRESH = "refresh"  # <meta http-equiv="refresh" content="0; url=...">
    NONE = "none"  # no PDF link (paywall, JS shell ...)


@dataclass(frozen=True)
class Copy:
    """A URL that serves (or claims to serve) the work's file.

    Attributes:
        source: where it lives: "publisher", "arxiv", "pmc", "europe_pmc", "pmc_site",
            "zenodo", "figshare", "hal", "osf", "core".
        host: the sandbox service that serves it.
        path: the path on that host, unquoted (query included for Europe PMC's render URL).
        mode: how the URL answers.
        listed_by: resolvers whose answer carries this URL as a file/PDF link.
        version: the OA version label the metadata sources report.
        license: licence short name, or None.
        flaps: for FLAPPING, how many 503s come before the 200.
    """

    source: str
    host: str
    path: str
    mode: Mode
    listed_by: frozenset[str]
    version: str = "publishedVersion"
    license: str | None = "cc-by"
    flaps: int = 0


@dataclass(frozen=True)
class Page:
    """A landing page.

    Attributes:
        host, path: where it is served.
        mode: OK, CF_SCRIPT (OK, fronted by Cloudflare's injected bot-detection script),
            GONE (404), CHALLENGE (Cloudflare 403) or WAF (202).
        style: how it links the PDF.
        links: index into the work's `copies` of the copy it links, or None.
        listed_by: resolvers whose answer carries this page's URL as a landing page
            ("landing_page" means doi.org redirects here).
    """

    host: str
    path: str
    mode: Mode
    style: LinkStyle
    links: int | None
    listed_by: frozenset[str]


@dataclass(frozen=True)
class Snapshot:
    """A Wayback capture of a sandbox URL (host service + path at capture time)."""

    host: str
    path: str
    timestamp: str
    kind: str  # "pdf" (the work's file) or "html" (its landing page)


@dataclass(frozen=True)
class SandboxWork:
    """One work of the corpus, with what a correct client should end up with.

    `identifier` is the form a user would type (a DOI, `arXiv:...`, `PMC...`, `PMID:...`,
    `W...`). `sources` names the resolvers whose answers lead (directly or through a landing
    page) to a good copy; `expected_obtainable` is true exactly when it is non-empty.
    `expected_reason` is the oafetch reason token for the expected outcome ("ok" when
    obtainable).
    """

    index: int
    identifier: str
    behaviour: Behaviour
    variant: str
    doi: str
    title: str
    year: int
    size: int
    publisher: str | None
    arxiv_id: str | None
    arxiv_version: int
    pmcid: str | None
    pmid: str | None
    openalex_id: str
    openalex_alias: str | None
    s2_id: str
    corpus_id: int
    repo_ids: Mapping[str, str]
    copies: tuple[Copy, ...]
    pages: tuple[Page, ...]
    snapshots: tuple[Snapshot, ...]
    flags: frozenset[str]
    expected_obtainable: bool
    expected_sha256: str | None
    expected_reason: str
    sources: tuple[str, ...]
    expected_kind: str = "pdf"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def copies_listed_by(self, resolver: str) -> list[Copy]:
        """The copies whose URL `resolver` advertises as a file link, in order."""
        return [c for c in self.copies if resolver in c.listed_by]

    def pages_listed_by(self, resolver: str) -> list[Page]:
        """The landing pages `resolver` advertises, in order."""
        return [p for p in self.pages if resolver in p.listed_by]

    def page_for(self, copy: Copy) -> Page | None:
        """The landing page that links `copy`, if any."""
        for page in self.pages:
            if page.links is not None and self.copies[page.links] is copy:
                return page
        return None

    def obtainable_within(self, max_bytes: int) -> bool:
        """Whether a client refusing files over `max_bytes` can obtain this work.

        Only `oversized` works depend on the cap; with a smaller cap their expected reason
        becomes "policy-size".
        """
        return self.expected_obtainable and self.size <= max_bytes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (expectations and identifiers, not the serving plan)."""
        return {
            "identifier": self.identifier,
            "behaviour": str(self.behaviour),
            "variant": self.variant,
            "doi": self.doi,
            "arxiv_id": self.arxiv_id,
            "pmcid": self.pmcid,
            "pmid": self.pmid,
            "openalex_id": self.openalex_id,
            "publisher": self.publisher,
            "size": self.size,
            "expected_obtainable": self.expected_obtainable,
            "expected_sha256": self.expected_sha256,
            "expected_kind": self.expected_kind,
            "expected_reason": self.expected_reason,
            "sources": list(self.sources),
        }
