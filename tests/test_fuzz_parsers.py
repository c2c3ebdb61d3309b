"""Property tests (hypothesis) for the pure parsers that see untrusted text: identifiers, URLs,
file names, ``Retry-After``, landing-page HTML and body classification.

Each property is one promise of the module under test: never crash with anything but the
documented error, be idempotent on its own output, keep names safe and distinct.
"""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from oafetch.classify import classify
from oafetch.errors import InputError
from oafetch.http.retry import parse_retry_after
from oafetch.resolvers.landing_page import MAX_LINKS, extract_links
from oafetch.storage import safe_name
from oafetch.tokens import Kind
from oafetch.urls import canonical_url, redact_url, url_hash
from oafetch.works import IdKind, parse_work

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies ------------------------------------------------------------------------------------

printable = st.characters(codec="utf-8", exclude_categories=("Cs",))
suffix_chars = st.text(
    alphabet=st.sampled_from(string.ascii_letters + string.digits + "-._;()/:<>[]%#?&=+ü"),
    min_size=1,
    max_size=40,
)
dois = st.builds(
    lambda p, reg, suf: f"{p}10.{reg}/{suf}",
    st.sampled_from(
        ["", "doi:", "DOI: ", "https://doi.org/", "http://dx.doi.org/", "https://www.doi.org/"]
    ),
    st.integers(1000, 999999999).map(str),
    suffix_chars,
)
arxiv_ids = st.one_of(
    st.builds(
        lambda y, n, v: f"{y:04d}.{n:05d}{v}",
        st.integers(0, 9999),
        st.integers(0, 99999),
        st.sampled_from(["", "v1", "v12"]),
    ),
    st.builds(
        lambda a, n: f"{a}/{n:07d}",
        st.sampled_from(["hep-th", "math.AG", "cs", "astro-ph"]),
        st.integers(0, 9999999),
    ),
).flatmap(
    lambda i: st.sampled_from(
        [i, f"arXiv:{i}", f"https://arxiv.org/abs/{i}", f"http://export.arxiv.org/pdf/{i}.pdf"]
    )
)
numbers = st.integers(0, 999999999).map(str)
others = st.one_of(
    numbers.map(lambda n: f"PMID:{n}"),
    numbers,
    numbers.map(lambda n: f"PMC{n}"),
    numbers.map(lambda n: f"pmcid: pmc{n}"),
    st.integers(10, 10**12).map(lambda n: f"W{n}"),
    st.integers(10, 10**12).map(lambda n: f"https://openalex.org/W{n}"),
)
urls = st.builds(
    lambda scheme, host, path, query: f"{scheme}://{host}{path}{query}",
    st.sampled_from(["http", "https", "HTTP", "Https", "ftp", "file", "javascript"]),
    st.one_of(
        st.sampled_from(
            [
                "example.org",
                "EXAMPLE.org.",
                "127.0.0.1:8080",
                "[::1]",
                "[::1",
                "user:pw@h.org",
                "h.org:99999",
                "h.org:abc",
                "",
                "xn--bcher-kva.example",
                "a" * 300,
            ]
        ),
        st.text(alphabet=printable, max_size=20),
    ),
    st.text(alphabet=printable, max_size=40).map(lambda p: "/" + p),
    st.one_of(
        st.just(""),
        st.text(alphabet=printable, max_size=40).map(lambda q: "?" + q),
        st.sampled_from(
            ["?api_key=s3cr3t&b=2&a=1", "?email=a@b.org#frag", "?a=%2541", "?x=%zz&&=&a"]
        ),
    ),
)
identifier_like = st.one_of(dois, arxiv_ids, others, urls, st.text(alphabet=printable))


# -- identifiers -----------------------------------------------------------------------------------


@FUZZ
@given(st.one_of(identifier_like, st.binary().map(lambda b: b.decode("latin-1"))))
@example("http://[::1")
@example("https://[x]y/")
@example("10.1234/a%2541")
@example("url:http://example.org/a.pdf")
def test_parse_work_raises_only_input_error(text: str) -> None:
    try:
        work = parse_work(text)
    except InputError as exc:
        assert str(exc)
        return
    assert work.work_id and work.kind in IdKind
    assert len(work.artifact_id) == 12


@FUZZ
@given(identifier_like)
@example("10.1234/a%2541")
@example("https://doi.org/10.1234/a%252F")
@example("http://example.org/p?api_key=x")
def test_parse_work_is_idempotent_on_its_work_id(text: str) -> None:
    try:
        work = parse_work(text)
    except InputError:
        return
    again = parse_work(work.work_id)
    assert (again.kind, again.work_id) == (work.kind, work.work_id)
    assert parse_work(again.work_id).work_id == work.work_id


@FUZZ
@given(dois)
def test_every_doi_form_names_the_same_work(doi: str) -> None:
    bare = doi.split("10.", 1)[1]
    if "%" in bare:
        return  # a literal "%41" in a bare DOI is an escape in a doi.org URL: not the same text
    try:
        forms = {
            parse_work(prefix + "10." + bare).work_id for prefix in ("", "doi:", "https://doi.org/")
        }
    except InputError:
        return
    assert len(forms) == 1


# -- URLs ------------------------------------------------------------------------------------------


@FUZZ
@given(st.one_of(urls, st.text(alphabet=printable)))
@example("http://[::1")
@example("HTTP://Example.org:80/a%2541?b=%252F")
@example("http://h/%")
def test_canonical_url_is_idempotent_and_never_raises(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once
    assert re.fullmatch(r"[0-9a-f]{16}", url_hash(url))
    assert url_hash(once) == url_hash(url)
    assert "s3cr3t" not in once and "a@b.org" not in once


@FUZZ
@given(urls)
@example("http://@//@")
@example("http://?/=?=")
def test_redact_url_never_raises_and_hides_credentials(url: str) -> None:
    shown = redact_url(url)
    assert "s3cr3t" not in shown and "a@b.org" not in shown
    assert redact_url(shown) == shown


# -- file names ------------------------------------------------------------------------------------


@FUZZ
@given(st.text(alphabet=printable, max_size=600) | st.text(max_size=50))
@example("..")
@example("CON")
@example("../../etc/passwd")
@example("\ud800")
def test_safe_name_is_safe_and_bounded(work_id: str) -> None:
    name = safe_name(work_id)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", name)
    assert len(name) <= 80 + 11
    assert not name.startswith((".", "-")) and name not in (".", "..")


@FUZZ
@given(st.lists(st.text(alphabet=printable, max_size=30), min_size=2, max_size=30, unique=True))
def test_distinct_ids_get_distinct_names_even_case_folded(work_ids: list[str]) -> None:
    names = [safe_name(w).lower() for w in work_ids]
    assert len(set(names)) == len(work_ids)


# -- Retry-After -----------------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@FUZZ
@given(
    st.one_of(
        st.none(),
        st.text(alphabet=printable),
        st.integers(-(10**30), 10**400).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
        st.sampled_from(
            [
                "²",
                "١٢",
                "1e309",
                "-0",
                " 120 ",
                "Wed, 21 Oct 2015 07:28:00",
                "inf",
                "Mon, 99 Foo 99999 99:99:99 GMT",
                "0x10",
                "1_000",
            ]
        ),
    )
)
def test_retry_after_is_never_negative_and_never_raises(value: str | None) -> None:
    seconds = parse_retry_after(value, now=NOW)
    assert seconds is None or (0.0 <= seconds < float("inf"))


# -- landing pages ---------------------------------------------------------------------------------

hrefs = st.one_of(
    st.sampled_from(
        [
            "/a.pdf",
            "b.pdf",
            "//cdn.example.org/x.pdf",
            "javascript:alert(1)",
            "data:application/pdf;base64,AA",
            "mailto:x@y.org",
            "ftp://h/x.pdf",
            "http://[::1/x.pdf",
            "http:x.pdf",
            "https://h.org/download?pdf=1",
            "file:///etc/passwd.pdf",
            " ",
            "#",
            "\x00.pdf",
            "?pdf=render",
        ]
    ),
    st.text(alphabet=printable, max_size=30),
)
tags = st.builds(
    lambda tag, attr, href, text: (
        f"<{tag} {attr}=\"{href}\" content='{href}' "
        f"name=citation_pdf_url rel=alternate type=application/pdf "
        f"http-equiv=refresh>{text}</{tag}>"
    ),
    st.sampled_from(["a", "meta", "link", "base", "div", "A", "META"]),
    st.sampled_from(["href", "HREF", "content", "src"]),
    hrefs,
    st.sampled_from(["PDF", "Full text", "", "download"]),
)
pages = st.lists(
    st.one_of(
        tags,
        st.text(alphabet=printable, max_size=30),
        st.sampled_from(
            [
                "<",
                "<!--",
                "<![CDATA[",
                "</a>",
                "<a href=",
                "<meta http-equiv=refresh content='0;url=/r.pdf'>",
            ]
        ),
    ),
    max_size=25,
).map("".join)


@FUZZ
@given(
    pages,
    st.sampled_from(
        [
            "https://pub.example.org/article/1",
            "http://[::1",
            "not a url",
            "",
            "https://h.org/a/b/?q=1",
        ]
    ),
)
def test_extract_links_never_crashes_and_returns_only_absolute_http_urls(
    html: str, page_url: str
) -> None:
    links = extract_links(html, page_url)
    assert len(links) <= MAX_LINKS and len(set(links)) == len(links)
    for link in links:
        assert re.match(r"^https?://[^/?#\s]+", link, re.I), link
        assert link != page_url


# -- classification --------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=3000), st.binary(max_size=300))
def test_classify_never_raises(head: bytes, tail: bytes) -> None:
    found = classify(head, tail)
    assert found.kind in Kind


@FUZZ
@given(
    st.sampled_from(
        [
            b"<!DOCTYPE html>",
            b"<html>",
            b"  <HTML lang=en>",
            b"<head>",
            b"\xef\xbb\xbf<html>",
            b"<!-- x --><body>",
        ]
    ),
    st.binary(max_size=500),
)
def test_a_page_that_starts_as_html_is_never_a_pdf(start: bytes, rest: bytes) -> None:
    body = start + rest + b"%PDF-1.7 ... %%EOF"
    assert classify(body[:8192], body[-4096:]).kind is not Kind.PDF
