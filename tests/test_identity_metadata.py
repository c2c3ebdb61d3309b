"""What the sources say a work is (title, first author), learnt for the identity check from real
recorded answers (tests/fixtures/real, origins in the SOURCES.tsv files)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from pytest_httpserver import HTTPServer

from oafetch.resolvers.base import WorkIds
from oafetch.resolvers.crossref import CrossrefResolver
from oafetch.resolvers.landing_page import followable_links
from test_openalex_real import ask as ask_openalex
from test_resolvers_direct import make
from test_resolvers_real import ask, real

REAL = Path(__file__).parent / "fixtures" / "real"


def test_crossref_record_teaches_title_and_first_author(httpserver: HTTPServer) -> None:
    """The recorded record (authors trimmed) teaches its title; with Crossref's ``author``
    list, the first author's family name."""
    record = real("crossref", "pone.0033693.json")
    httpserver.expect_request("/works/10.1371/journal.pone.0033693").respond_with_json(record)
    resolver, http = make(CrossrefResolver, httpserver)
    _, ids = ask(resolver, http, "10.1371/journal.pone.0033693")
    assert ids.title and ids.title == " ".join(record["message"]["title"][0].split())
    assert ids.author is None
    record["message"]["author"] = [
        {"given": "Ada", "family": "Lovelace", "sequence": "first"},
        {"given": "C.", "family": "Babbage", "sequence": "additional"},
    ]
    httpserver.clear()
    httpserver.expect_request("/works/10.1371/journal.pone.0033693").respond_with_json(record)
    resolver, http = make(CrossrefResolver, httpserver)
    _, ids = ask(resolver, http, "10.1371/journal.pone.0033693")
    assert ids.author == "Lovelace"


def test_openalex_record_teaches_the_title(httpserver: HTTPServer) -> None:
    """The recorded record was selected without ``title``: nothing learnt; with the field
    (now in oafetch's ``select``), the title."""
    record = json.loads((REAL / "api" / "openalex" / "W2741809807.json").read_text())
    httpserver.expect_request("/works/W2741809807").respond_with_json(record)
    _, ids = ask_openalex(httpserver, "W2741809807")
    assert ids.title is None
    httpserver.clear()
    record["title"] = "The state of OA:  a large-scale analysis"
    httpserver.expect_request("/works/W2741809807").respond_with_json(record)
    _, ids = ask_openalex(httpserver, "W2741809807")
    assert ids.title == "The state of OA: a large-scale analysis"


def test_landing_page_citation_title_is_learnt_when_no_source_told_it() -> None:
    html = gzip.decompress((REAL / "pages" / "peerj-4375.html.gz").read_bytes()).decode()
    ids = WorkIds(doi="10.7717/peerj.4375")
    followable_links(html, "https://peerj.com/articles/4375/", ids)
    assert ids.title and ids.title.startswith("The state of OA")
    assert ids.author == "Piwowar"
    told = WorkIds(doi="10.7717/peerj.4375", title="What the API said")
    followable_links(html, "https://peerj.com/articles/4375/", told)
    assert told.title == "What the API said"  # the first source to tell wins
