"""One canonical form per resource for ``url_hash`` and every "fetched once" memory: w3lib's
normalisation (dot segments, IDNA, escapes, query order), then oafetch's own rules (no default
port, no userinfo, no credential)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from oafetch.resolvers.base import WorkIds
from oafetch.resolvers.common import Found
from oafetch.urls import canonical_url, url_hash

SRC = Path(__file__).parent.parent / "src" / "oafetch"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://example.org/a/./b/../c.pdf", "https://example.org/a/c.pdf"),
        ("https://example.org/a/b/../../c.pdf", "https://example.org/c.pdf"),
        ("http://bücher.de/a.pdf", "http://xn--bcher-kva.de/a.pdf"),
        ("http://BÜCHER.de./a.pdf", "http://xn--bcher-kva.de/a.pdf"),
        ("https://example.org:443/a.pdf", "https://example.org/a.pdf"),
        ("http://example.org:80/a.pdf", "http://example.org/a.pdf"),
        ("https://example.org/%7euser/a%2fb%c3%a9", "https://example.org/~user/a%2Fb%C3%A9"),
        ("https://example.org/caf\u00e9.pdf", "https://example.org/caf%C3%A9.pdf"),
        ("https://example.org/a?b=2&a=1", "https://example.org/a?a=1&b=2"),
        ("https://example.org/a#page=2", "https://example.org/a"),
        ("https://user:pw@example.org/a", "https://example.org/a"),
        ("https://example.org/a?api_key=K1&x=1", "https://example.org/a?x=1&api_key=K2"),
        (
            "https://content.openalex.org/works/W1.pdf?api_key=abc",
            "https://content.openalex.org/works/W1.pdf",
        ),
    ],
)
def test_spellings_of_one_resource_share_one_hash(a: str, b: str) -> None:
    assert canonical_url(a) == canonical_url(b)
    assert url_hash(a) == url_hash(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://example.org/a%2Fb", "https://example.org/a/b"),  # an escaped delimiter is data
        ("https://example.org:8443/a", "https://example.org/a"),
        ("http://example.org/a", "https://example.org/a"),
        ("https://example.org/A.pdf", "https://example.org/a.pdf"),
    ],
)
def test_different_resources_keep_different_hashes(a: str, b: str) -> None:
    assert url_hash(a) != url_hash(b)


def test_the_canonical_form_is_stable_and_holds_no_credential() -> None:
    url = "HTTP://User:Pw@Bücher.DE:80/x/../a%7e.pdf?token=s3cr3t&b=1&a=#frag"
    once = canonical_url(url)
    assert once == "http://xn--bcher-kva.de/a~.pdf?a=&b=1"
    assert canonical_url(once) == once
    assert canonical_url("http://é../a") == canonical_url(canonical_url("http://é../a"))


def test_candidates_and_learnt_urls_are_deduplicated_in_canonical_form() -> None:
    found = Found("x")
    found.add("https://example.org/a/./paper.pdf")
    found.add("https://EXAMPLE.org:443/a/paper.pdf")
    assert [c.url for c in found.result()] == ["https://example.org/a/./paper.pdf"]
    ids = WorkIds()
    ids.note_urls(["https://example.org/p.pdf", "https://example.org/x/../p.pdf#a"])
    assert ids.urls == ["https://example.org/p.pdf"]


def test_one_function_makes_every_url_key() -> None:
    """``canonical_url``/``url_hash`` are defined once; nothing else hashes a URL."""
    defined = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        defined += [path.name for _ in re.finditer(r"^def (canonical_url|url_hash)\b", text, re.M)]
        if path.name != "urls.py":
            assert not re.search(r"sha256\([^)]*url", text), f"{path} hashes a URL itself"
    assert sorted(defined) == ["urls.py", "urls.py"]
