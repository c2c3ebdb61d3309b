"""Landing-page link extraction: selectolax (lexbor) against the stdlib ``html.parser`` one.

``.venv/bin/python bench/bench_landing_parse.py [rounds]`` parses the saved PeerJ article page
(tests/fixtures/real/pages/peerj-4375.html.gz, 367 KB, origin in SOURCES.tsv beside it) and the
saved eLife page (172 KB) ``rounds`` times with each extractor and prints a Markdown table of
the median milliseconds per page. The stdlib extractor is oafetch's previous one (commit
7fe3e8c), kept here so the comparison can be re-run; it only collects links in page order.
"""

from __future__ import annotations

import gzip
import os
import re
import statistics
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

from oafetch.resolvers.landing_page import extract_links

PAGES = Path(__file__).parent.parent / "tests" / "fixtures" / "real" / "pages"
_REFRESH = re.compile(r"^\s*\d*\s*;?\s*url\s*=\s*['\"]?([^'\"]+)", re.I)
_PDFISH = re.compile(r"\.pdf(?:$|[?#])|/pdf(?:/|$|\?)|download.*pdf|pdf.*download|[?&]pdf=", re.I)


class _StdlibLinks(HTMLParser):
    """The previous extractor's parsing pass (html.parser, page order)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._anchor: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "meta" and a.get("name", "").lower() == "citation_pdf_url":
            self.found.append(a.get("content", ""))
        elif tag == "meta" and a.get("http-equiv", "").lower() == "refresh":
            match = _REFRESH.match(a.get("content", ""))
            if match:
                self.found.append(match[1])
        elif (
            tag == "link" and "alternate" in a.get("rel", "").lower() and "pdf" in a.get("type", "")
        ):
            self.found.append(a.get("href", ""))
        elif tag == "a" and a.get("href"):
            self._anchor, self._text = a["href"], []
            if _PDFISH.search(a["href"]):
                self.found.append(a["href"])
                self._anchor = None

    def handle_data(self, data: str) -> None:
        if self._anchor is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._anchor is not None:
            if re.search(r"\bpdf\b|full ?text", " ".join(self._text), re.I):
                self.found.append(self._anchor)
            self._anchor = None


def stdlib_links(html: str) -> list[str]:
    parser = _StdlibLinks()
    parser.feed(html)
    parser.close()
    return parser.found


def timed(fn: object, html: str, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn(html)  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    print(f"load {os.getloadavg()[0]:.1f}, {rounds} rounds, median ms per page\n")
    print("| page | size | html.parser (previous) | selectolax lexbor (now) | ratio |")
    print("|---|---|---|---|---|")
    for name, url in (
        ("peerj-4375.html.gz", "https://peerj.com/articles/4375/"),
        ("elife-44753.html.gz", "https://elifesciences.org/articles/44753"),
    ):
        html = gzip.decompress((PAGES / name).read_bytes()).decode("utf-8")
        old = timed(stdlib_links, html, rounds)
        new = timed(lambda h, u=url: extract_links(h, u), html, rounds)
        print(
            f"| {name.split('.')[0]} | {len(html) / 1024:.0f} KB | {old:.2f} ms | "
            f"{new:.2f} ms | {old / new:.1f}x |"
        )


if __name__ == "__main__":
    main()
