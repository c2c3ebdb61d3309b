"""End to end on loopback: a real landing page that loads a bot vendor's script is followed.

The pages are real recordings (tests/fixtures/real/pages, origins in SOURCES.tsv): APS and
USENIX pages ending with the ``/cdn-cgi/challenge-platform/scripts/jsd/main.js`` script Cloudflare
injects into every page it fronts, and a Project Euclid page carrying Imperva's injected
``/_Incapsula_Resource`` script. Only their publisher's origin is replaced by the loopback
server's, so that the ``citation_pdf_url`` they announce leads here, never to the internet.
A DOI goes through the landing-page tier (doi.org imitated by the loopback server); the PDF the
page links is a real one padded after ``%%EOF``, and it is stored byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loopback import Loopback
from oafetch import Downloader, Outcome, Reason

REAL = Path(__file__).parent / "fixtures" / "real"
PDF = (REAL / "pdf" / "pdfjs-scan-bad-junk-padded.pdf").read_bytes()

#: page file → (the origin its PDF link names, the path of that link)
LANDINGS = {
    "aps-landing-cloudflare-jsd.html": (
        b"http://link.aps.org",
        "/pdf/10.1103/PhysRevX.12.041027",
    ),
    "usenix-landing-cloudflare-jsd.html": (
        b"https://www.usenix.org",
        "/system/files/nsdi22-paper-goyal.pdf",
    ),
    "projecteuclid-landing-incapsula.html": (
        b"https://projecteuclid.org",
        "/journals/advances-in-differential-equations/volume-19/issue-3_2f_4/"
        "An-analysis-of-the-renormalization-group-method-for-asymptotic-expansions/"
        "ade/1391109086.pdf",
    ),
}
DOI = "10.5555/real-landing"


def landing_config(make_config: Any, server: Loopback) -> Any:
    return make_config(
        resolvers={"landing_page": {"enabled": True, "base_url": server.base}},
        fallback={"tiers": [{"name": "landing", "sources": ["landing_page"]}]},
    )


@pytest.mark.parametrize("name", sorted(LANDINGS))
def test_the_pdf_a_real_landing_page_announces_is_fetched_and_stored(
    name: str, server: Loopback, make_config: Any
) -> None:
    """The vendor's injected script does not make the page a wall: its PDF link is followed."""
    origin, pdf_path = LANDINGS[name]
    page = (REAL / "pages" / name).read_bytes()
    assert origin + pdf_path.encode() in page
    page = page.replace(origin, server.base.encode())
    server.routes[f"/{DOI}"] = lambda h: h.reply(302, b"", "text/html", {"Location": "/article"})
    server.routes["/article"] = lambda h: h.reply(200, page, "text/html; charset=utf-8")
    server.routes[pdf_path] = lambda h: h.reply(200, PDF, "application/pdf")
    with Downloader(landing_config(make_config, server), resume=False) as dl:
        result = dl.fetch(DOI)
    assert result.outcome is Outcome.SUCCESS and result.reason is Reason.OK, result
    assert result.path is not None and result.path.read_bytes() == PDF
    assert len(server.hits(pdf_path)) == 1


def test_a_real_challenge_in_the_landing_tier_is_a_bot_challenge_and_its_links_unfollowed(
    server: Loopback, make_config: Any
) -> None:
    """A real Cloudflare interstitial on the landing page ends the work as bot-challenge."""
    wall = (REAL / "pages" / "cloudflare-managed-challenge-acs-2023.html").read_bytes()
    server.routes[f"/{DOI}"] = lambda h: h.reply(302, b"", "text/html", {"Location": "/article"})
    server.routes["/article"] = lambda h: h.reply(200, wall, "text/html; charset=utf-8")
    with Downloader(landing_config(make_config, server), resume=False) as dl:
        result = dl.fetch(DOI)
    assert result.outcome is Outcome.ERROR and result.reason is Reason.BOT_CHALLENGE
    asked = [s.path for s in server.log if s.path != "/robots.txt"]
    assert asked == [f"/{DOI}", "/article"]
