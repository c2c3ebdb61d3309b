"""The sandbox keeps its promises: a minimal reference client, following each source the way a
resolver would, obtains exactly the expected bytes from exactly the sources a work lists.

The client obeys robots.txt (RFC 9309: 4xx allow, 5xx disallow), retries 429/503 a few times,
accepts only a complete body that starts with %PDF- and ends with %%EOF, and refuses files over
10 MiB (this corpus's oversized files are smaller). Every work of a small corpus is tried
through every source.
"""

from __future__ import annotations

import html
import re
import urllib.robotparser
from collections.abc import Iterator
from urllib.parse import urljoin

import httpx
import pytest

from oafetch.sandbox import Corpus, Sandbox, SandboxWork
from oafetch.sandbox.model import Behaviour

MAX_BYTES = 10 * 1024 * 1024
ALL_SOURCES = (
    "unpaywall",
    "openalex",
    "crossref",
    "semantic_scholar",
    "landing_page",
    "doaj",
    "openaire",
    "arxiv",
    "pmc",
    "europe_pmc",
    "zenodo",
    "figshare",
    "hal",
    "osf",
    "core",
    "wayback",
)
_PDF_LINK = (
    re.compile(r'<meta name="citation_pdf_url" content="([^"]+)"'),
    re.compile(r'<link rel="alternate" type="application/pdf" href="([^"]+)"'),
    re.compile(r'<meta http-equiv="refresh" content="\d+; url=([^"]+)"'),
    re.compile(r'<a class="btn" href="([^"]+)">Download PDF</a>'),
)
Candidate = tuple[str, str]  # ("pdf" | "landing", url)


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    corpus = Corpus(21, n_works=70, pdf_size_range=(3_000, 20_000), oversized_bytes=3 * 1024**2)
    with Sandbox(corpus, rates_enforced=False, slow_seconds=0.05) as box:
        yield box


class ReferenceClient:
    """Just enough of a polite resolver chain to check the sandbox's claims."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.base = sb.base_urls
        self.http = httpx.Client(timeout=10)
        self.robots: dict[str, urllib.robotparser.RobotFileParser | bool] = {}

    def close(self) -> None:
        self.http.close()

    def allowed(self, url: str) -> bool:
        located = self.sb.urls.locate(url)
        if located is None:
            return False
        service = located[0]
        if service not in self.robots:
            response = self.http.get(self.base[service] + "/robots.txt")
            if response.status_code >= 500:
                self.robots[service] = False
            elif response.status_code >= 400:
                self.robots[service] = True
            else:
                parser = urllib.robotparser.RobotFileParser()
                parser.parse(response.text.splitlines())
                self.robots[service] = parser
        rule = self.robots[service]
        return rule if isinstance(rule, bool) else rule.can_fetch("*", url)

    def get(self, url: str, **kwargs: object) -> httpx.Response | None:
        for _ in range(5):
            try:
                response = self.http.get(url, **kwargs)  # type: ignore[arg-type]
            except httpx.HTTPError:
                return None
            if response.status_code not in (429, 503):
                return response
        return None

    def fetch_pdf(self, url: str, depth: int = 0) -> bytes | None:
        """A verified PDF from `url` (following landing pages once), else None."""
        if not url or not self.allowed(url):
            return None
        for _ in range(5):
            try:
                with self.http.stream("GET", url) as response:
                    if response.status_code in (429, 503):
                        continue
                    if response.status_code in (301, 302):
                        return self.fetch_pdf(urljoin(url, response.headers["location"]), depth)
                    size = int(response.headers.get("content-length", "0"))
                    if response.status_code != 200 or size > MAX_BYTES:
                        return None
                    data = response.read()
            except httpx.HTTPError:
                return None
            # whole: %%EOF after the last startxref (a padded file has bytes after it)
            last = data.rfind(b"startxref")
            if data.startswith(b"%PDF-") and b"%%EOF" in data[last if last >= 0 else -1024 :]:
                return data
            if depth == 0 and b"<html" in data[:200].lower():
                return self.from_landing(url, data.decode("utf-8", "replace"))
            return None
        return None

    def from_landing(self, url: str, text: str) -> bytes | None:
        for pattern in _PDF_LINK:
            match = pattern.search(text)
            if match:
                return self.fetch_pdf(urljoin(url, html.unescape(match.group(1))), depth=1)
        return None

    def candidates(self, work: SandboxWork, source: str) -> list[str]:
        """URLs the source offers for the work (PDF or landing page)."""
        b, doi = self.base, work.doi
        out: list[str] = []
        if source == "unpaywall":
            r = self.get(f"{b['unpaywall']}/v2/{doi}", params={"email": "t@uni.test"})
            if r is not None and r.status_code == 200:
                for loc in r.json()["oa_locations"]:
                    out += [loc["url_for_pdf"] or "", loc["url_for_landing_page"]]
        elif source == "openalex":
            r = self.get(f"{b['openalex']}/works/doi:{doi}")
            if r is not None and r.status_code == 200:
                for loc in r.json()["locations"]:
                    if loc["is_oa"]:
                        out += [loc["pdf_url"] or "", loc["landing_page_url"]]
        elif source == "crossref":
            r = self.get(f"{b['crossref']}/works/{doi}")
            if r is not None and r.status_code == 200:
                out += [link["URL"] for link in r.json()["message"].get("link", [])]
        elif source == "semantic_scholar":
            r = self.get(
                f"{b['semantic_scholar']}/graph/v1/paper/DOI:{doi}",
                params={"fields": "openAccessPdf"},
            )
            if r is not None and r.status_code == 200 and r.json()["openAccessPdf"]:
                out.append(r.json()["openAccessPdf"]["url"])
        elif source == "landing_page":
            out.append(f"{b['doi']}/{doi}")
        elif source == "doaj":
            r = self.get(f"{b['doaj']}/api/search/articles/doi:{doi}")
            if r is not None and r.status_code == 200:
                for res in r.json()["results"]:
                    out += [link["url"] for link in res["bibjson"]["link"]]
        elif source == "openaire":
            r = self.get(f"{b['openaire']}/graph/v1/researchProducts", params={"pid": doi})
            if r is not None and r.status_code == 200 and r.json()["results"]:
                result = r.json()["results"][0]
                if result["bestAccessRight"]["label"] == "OPEN":
                    out += [u for inst in result["instances"] for u in inst["urls"]]
        elif source == "wayback":
            for original in self.candidates(work, "crossref") + self.candidates(work, "unpaywall"):
                r = self.get(f"{b['wayback']}/wayback/available", params={"url": original})
                closest = r.json()["archived_snapshots"].get("closest") if r is not None else None
                if closest:
                    ts = closest["timestamp"]
                    out.append(closest["url"].replace(f"/web/{ts}/", f"/web/{ts}id_/", 1))
        else:
            out += self.repository_candidates(work, source)
        return [u for u in out if u]

    def repository_candidates(self, work: SandboxWork, source: str) -> list[str]:
        b, doi = self.base, work.doi
        out: list[str] = []
        if source == "arxiv" and work.arxiv_id:
            r = self.get(f"{b['arxiv_api']}/api/query", params={"id_list": work.arxiv_id})
            if r is not None:
                out += re.findall(r'<link title="pdf" href="([^"]+)"', r.text)
        elif source == "pmc":
            r = self.get(
                f"{b['pmc_idconv']}/tools/idconv/api/v1/articles/",
                params={"ids": doi, "format": "json"},
            )
            pmcid = r.json()["records"][0].get("pmcid") if r is not None else None
            if pmcid:
                oa = self.get(f"{b['pmc_oa']}/pmc/utils/oa/oa.fcgi", params={"id": pmcid})
                if oa is not None and 'format="pdf"' in oa.text:
                    out.append(f"{b['pmc_cloud']}/{pmcid}.1/{pmcid}.1.pdf")
        elif source == "europe_pmc":
            r = self.get(
                f"{b['europe_pmc']}/europepmc/webservices/rest/search",
                params={"query": f'DOI:"{doi}"', "resultType": "core"},
            )
            for res in r.json()["resultList"]["result"] if r is not None else []:
                for ft in res.get("fullTextUrlList", {}).get("fullTextUrl", []):
                    if ft["documentStyle"] == "pdf":
                        out.append(ft["url"])
        elif source == "zenodo" and doi.startswith("10.5281/zenodo."):
            r = self.get(f"{b['zenodo']}/api/records/{doi.rsplit('.', 1)[1]}")
            if r is not None and r.status_code == 200:
                out += [f["links"]["self"] for f in r.json()["files"] if f["key"].endswith(".pdf")]
        elif source == "figshare" and doi.startswith("10.6084/"):
            r = self.get(f"{b['figshare']}/v2/articles/{doi.split('.')[-2]}")
            if r is not None and r.status_code == 200:
                out += [f["download_url"] for f in r.json()["files"]]
        elif source == "hal":
            r = self.get(
                f"{b['hal']}/search/",
                params={"q": f'doiId_s:"{doi}"', "fl": "fileMain_s", "wt": "json"},
            )
            for doc in r.json()["response"]["docs"] if r is not None else []:
                out.append(doc.get("fileMain_s", ""))
        elif source == "osf" and doi.startswith("10.31234/"):
            r = self.get(f"{b['osf']}/v2/preprints/{doi.rsplit('/', 1)[1]}/")
            primary = r.json()["data"]["relationships"]["primary_file"] if r is not None else None
            if primary:
                f = self.get(primary["links"]["related"]["href"])
                if f is not None:
                    out.append(f.json()["data"]["links"]["download"])
        elif source == "core":
            r = self.http.post(
                f"{b['core']}/v3/discover", json={"doi": doi}, headers={"Authorization": "Bearer k"}
            )
            out.append(r.json()["fullTextLink"] or "")
        return out

    def obtain(self, work: SandboxWork, source: str) -> bytes | None:
        for url in self.candidates(work, source):
            data = self.fetch_pdf(url)
            if data is not None:
                return data
        return None


def test_every_source_keeps_its_promise(sb: Sandbox) -> None:
    """Listed sources give the expected bytes; unlisted ones give no PDF at all."""
    client = ReferenceClient(sb)
    try:
        problems = []
        for work in sb.works:
            expected = sb.file_bytes(work.identifier)
            for source in ALL_SOURCES:
                got = client.obtain(work, source)
                listed = source in work.sources
                if listed and (got is None or got != expected):
                    problems.append(f"{work.identifier} {work.behaviour}: {source} failed")
                # A wrong-PDF work's publisher link serves a PDF that is not the work.
                wrong_pdf = work.behaviour is Behaviour.WRONG_PDF and got != expected
                if not listed and got is not None and not wrong_pdf:
                    problems.append(f"{work.identifier} {work.behaviour}: {source} unexpected")
        assert problems == [], "\n".join(problems)
    finally:
        client.close()


def test_expected_hash_matches_served_bytes(sb: Sandbox) -> None:
    """expected_sha256 is the hash of the bytes the good copies serve."""
    import hashlib

    client = ReferenceClient(sb)
    try:
        for work in sb.works:
            if work.expected_obtainable:
                data = client.obtain(work, work.sources[0])
                assert data is not None
                assert hashlib.sha256(data).hexdigest() == work.expected_sha256
    finally:
        client.close()
