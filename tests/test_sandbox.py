"""The sandbox web over real loopback sockets: each service's shapes, errors and behaviours,
the server-side rate check, the request log and the server's lifecycle.
"""

from __future__ import annotations

import functools
import hashlib
import json
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from oafetch.sandbox import Behaviour, Corpus, Sandbox, SandboxWork
from oafetch.sandbox.__main__ import build_parser

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV_NS = "{http://arxiv.org/schemas/atom}"
EMAIL = {"email": "tester@uni.test"}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    corpus = Corpus(11, n_works=80, pdf_size_range=(4_000, 30_000), oversized_bytes=3 * 1024**2)
    with Sandbox(corpus, rates_enforced=False, slow_seconds=0.3, host_base=40) as box:
        yield box


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


@functools.cache
def default_corpus() -> Corpus:
    """The default-sized corpus (500 works), built once for the tests that need its variety."""
    return Corpus(7, oversized_bytes=4 * 1024**2)


def pick(sb: Sandbox, pred: Callable[[SandboxWork], bool]) -> SandboxWork:
    """The first work satisfying `pred`."""
    return next(w for w in sb.works if pred(w))


def of(behaviour: Behaviour, variant: str | None = None) -> Callable[[SandboxWork], bool]:
    return lambda w: w.behaviour is behaviour and (variant is None or w.variant == variant)


def on_sandbox(sb: Sandbox, url: str | None) -> bool:
    """Whether `url` points at one of the sandbox's hosts."""
    return url is not None and sb.urls.locate(url) is not None and url.startswith("http://127.")


# ---- metadata APIs -------------------------------------------------------------------


def test_unpaywall_record_shape(sb: Sandbox, client: httpx.Client) -> None:
    """A direct-OA work: lowercase doi, best location with a sandbox PDF URL."""
    work = pick(sb, of(Behaviour.DIRECT_OA))
    r = client.get(f"{sb.base_urls['unpaywall']}/v2/{work.doi.upper()}", params=EMAIL)
    assert r.status_code == 200
    body = r.json()
    assert body["doi"] == work.doi.lower() and body["is_oa"] is True
    best = body["best_oa_location"]
    assert best["host_type"] == "publisher" and on_sandbox(sb, best["url_for_pdf"])
    assert best["url"] == best["url_for_pdf"] and on_sandbox(sb, best["url_for_landing_page"])
    assert best in body["oa_locations"]


def test_unpaywall_landing_only_has_null_pdf(sb: Sandbox, client: httpx.Client) -> None:
    """url_for_pdf is null while the landing page is set; url then equals the landing page."""
    work = pick(sb, of(Behaviour.LANDING_ONLY))
    best = client.get(f"{sb.base_urls['unpaywall']}/v2/{work.doi}", params=EMAIL).json()[
        "best_oa_location"
    ]
    assert best["url_for_pdf"] is None and best["url"] == best["url_for_landing_page"]


@pytest.mark.parametrize(
    "params", [{}, {"email": "me@example.com"}, {"email": "x@lab.example.com"}]
)
def test_unpaywall_demands_a_real_email(
    sb: Sandbox, client: httpx.Client, params: dict[str, str]
) -> None:
    """Missing or placeholder emails get 422 with Unpaywall's message."""
    work = sb.works[0]
    r = client.get(f"{sb.base_urls['unpaywall']}/v2/{work.doi}", params=params)
    assert r.status_code == 422
    assert r.json()["error"] is True and "own email" in r.json()["message"]


def test_unpaywall_and_crossref_unknown_doi(sb: Sandbox, client: httpx.Client) -> None:
    """Unknown DOIs: Unpaywall 404 JSON; Crossref 404 plain text."""
    r = client.get(f"{sb.base_urls['unpaywall']}/v2/10.9999/none", params=EMAIL)
    assert r.status_code == 404 and r.json()["error"] is True
    r = client.get(f"{sb.base_urls['crossref']}/works/10.9999/none")
    assert r.status_code == 404 and r.text == "Resource not found."
    assert r.headers["content-type"].startswith("text/plain")


def test_crossref_work_shape_and_rate_headers(sb: Sandbox, client: httpx.Client) -> None:
    """The work envelope with link[] and license[], plus x-rate-limit-* headers."""
    work = pick(sb, of(Behaviour.DIRECT_OA))
    r = client.get(f"{sb.base_urls['crossref']}/works/{work.doi}", params={"mailto": "a@b.test"})
    assert r.status_code == 200
    assert r.headers["x-rate-limit-limit"] == "10" and r.headers["x-rate-limit-interval"] == "1s"
    assert r.headers["x-api-pool"] == "polite"
    body = r.json()
    assert body["status"] == "ok" and body["message-type"] == "work"
    message = body["message"]
    assert message["DOI"] == work.doi
    kinds = {(ln["content-type"], ln["intended-application"]) for ln in message["link"]}
    assert ("application/pdf", "text-mining") in kinds
    assert all(on_sandbox(sb, ln["URL"]) for ln in message["link"])
    assert message["license"][0]["delay-in-days"] == 0


def test_openalex_single_work_forms(sb: Sandbox, client: httpx.Client) -> None:
    """doi:, DOI URL, W id, pmid: and pmcid: lookups return the same work."""
    base = sb.base_urls["openalex"]
    work = pick(sb, lambda w: w.pmid is not None and w.pmcid is not None)
    keys = [
        f"doi:{work.doi}",
        f"https://doi.org/{work.doi}",
        work.openalex_id,
        f"pmid:{work.pmid}",
        f"pmcid:{work.pmcid}",
    ]
    ids = {client.get(f"{base}/works/{key}", params={"api_key": "k"}).json()["id"] for key in keys}
    assert ids == {f"https://openalex.org/{work.openalex_id}"}
    body = client.get(f"{base}/works/{work.openalex_id}").json()
    assert body["doi"] == f"https://doi.org/{work.doi.lower()}"
    assert set(body["open_access"]) >= {"is_oa", "oa_url"}
    assert body["ids"]["pmcid"].endswith(work.pmcid or "")
    assert client.get(f"{base}/works/doi:10.9999/none").status_code == 404
    assert set(client.get(f"{base}/works/{work.openalex_id}?select=id,doi").json()) == {"id", "doi"}


def test_openalex_merged_id_redirects(client: httpx.Client) -> None:
    """A merged (alias) W id answers 301 to the canonical work."""
    with Sandbox(default_corpus(), rates_enforced=False, host_base=120) as box:
        work = next(w for w in box.works if w.openalex_alias)
        r = client.get(f"{box.base_urls['openalex']}/works/{work.openalex_alias}")
        assert r.status_code == 301 and r.headers["location"].endswith(f"/works/{work.openalex_id}")


def test_openalex_cursor_pagination_walks_the_filter(sb: Sandbox, client: httpx.Client) -> None:
    """cursor=* then next_cursor until null visits each OA work once; unknown filters are 400."""
    base = sb.base_urls["openalex"]
    seen: list[str] = []
    cursor: str | None = "*"
    total = None
    while cursor is not None:
        r = client.get(
            f"{base}/works", params={"filter": "is_oa:true", "per-page": 7, "cursor": cursor}
        )
        body = r.json()
        total = body["meta"]["count"]
        assert body["meta"]["per_page"] == 7
        seen += [item["id"] for item in body["results"]]
        cursor = body["meta"]["next_cursor"]
    assert len(seen) == len(set(seen)) == total
    everything = client.get(f"{base}/works", params={"per-page": 200}).json()
    assert everything["meta"]["count"] == len(sb.works)
    assert 0 < len(seen) < len(sb.works)
    bad = client.get(f"{base}/works", params={"filter": "colour:blue"})
    assert bad.status_code == 400 and "colour" in bad.json()["message"]
    assert client.get(f"{base}/works", params={"per-page": 500}).status_code == 400


def test_semantic_scholar_paper_and_errors(sb: Sandbox, client: httpx.Client) -> None:
    """DOI:/ARXIV: lookups with fields; unknown papers 404 {"error": "Paper not found"}."""
    base = sb.base_urls["semantic_scholar"] + "/graph/v1/paper"
    work = pick(sb, lambda w: "semantic_scholar" in w.sources and w.publisher is not None)
    fields = {"fields": "externalIds,isOpenAccess,openAccessPdf"}
    body = client.get(f"{base}/DOI:{work.doi}", params=fields).json()
    assert set(body) == {"paperId", "externalIds", "isOpenAccess", "openAccessPdf"}
    assert body["externalIds"]["DOI"] == work.doi and on_sandbox(sb, body["openAccessPdf"]["url"])
    arxiv = pick(sb, lambda w: w.arxiv_id is not None)
    r = client.get(f"{base}/ARXIV:{arxiv.arxiv_id}", params={"fields": "externalIds"})
    assert r.json()["externalIds"]["ArXiv"] == arxiv.arxiv_id
    missing = client.get(f"{base}/DOI:10.9999/none")
    assert missing.status_code == 404 and missing.json() == {"error": "Paper not found"}
    empty = pick(sb, lambda w: "s2_empty_url" in w.flags and "semantic_scholar" not in w.sources)
    pdf = client.get(f"{base}/DOI:{empty.doi}", params=fields).json()["openAccessPdf"]
    assert pdf is not None and pdf["url"] == ""


# ---- arXiv ---------------------------------------------------------------------------


def test_arxiv_feed_and_pdf(sb: Sandbox, client: httpx.Client) -> None:
    """The Atom entry carries id, the pdf link on the arxiv host, and the file matches."""
    work = pick(sb, lambda w: w.arxiv_id is not None and w.behaviour is Behaviour.REPOSITORY_ONLY)
    r = client.get(f"{sb.base_urls['arxiv_api']}/api/query", params={"id_list": work.arxiv_id})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(r.content)
    entry = feed.find(f"{ATOM}entry")
    assert entry is not None
    assert (entry.findtext(f"{ATOM}id") or "").endswith(f"{work.arxiv_id}v{work.arxiv_version}")
    pdf = next(ln.get("href") for ln in entry.findall(f"{ATOM}link") if ln.get("title") == "pdf")
    assert pdf is not None and urlsplit(pdf).netloc == urlsplit(sb.base_urls["arxiv"]).netloc
    assert client.get(pdf).content == sb.file_bytes(work.identifier)
    if not work.doi.startswith("10.48550/"):
        assert entry.findtext(f"{ARXIV_NS}doi") == work.doi
    older = client.get(f"{sb.base_urls['arxiv']}/pdf/{work.arxiv_id}v1")
    if work.arxiv_version > 1:
        assert older.status_code == 200 and older.content != sb.file_bytes(work.identifier)


def test_arxiv_error_feed_and_robots(sb: Sandbox, client: httpx.Client) -> None:
    """A malformed id yields the one-entry "Error" feed; robots.txt has Crawl-delay."""
    r = client.get(f"{sb.base_urls['arxiv_api']}/api/query", params={"id_list": "1234.123456"})
    assert r.status_code == 400
    entries = ET.fromstring(r.content).findall(f"{ATOM}entry")
    assert len(entries) == 1 and entries[0].findtext(f"{ATOM}title") == "Error"
    empty = client.get(f"{sb.base_urls['arxiv_api']}/api/query", params={"id_list": "0801.0001"})
    assert ET.fromstring(empty.content).find(f"{ATOM}entry") is None
    robots = client.get(f"{sb.base_urls['arxiv']}/robots.txt").text
    assert "Crawl-delay: 1" in robots and "Disallow: /e-print" in robots
    assert "Disallow: /api" in robots and "Disallow: /search" in robots


def test_arxiv_old_style_ids() -> None:
    """Old-style ids (archive/YYMMNNN) resolve in the API and on /pdf/."""
    with Sandbox(default_corpus(), rates_enforced=False, host_base=160) as box, httpx.Client() as c:
        work = next(
            w for w in box.works if w.arxiv_id and "/" in w.arxiv_id and w.expected_obtainable
        )
        feed = c.get(f"{box.base_urls['arxiv_api']}/api/query", params={"id_list": work.arxiv_id})
        assert ET.fromstring(feed.content).find(f"{ATOM}entry") is not None
        pdf = c.get(f"{box.base_urls['arxiv']}/pdf/{work.arxiv_id}")
        assert pdf.content == box.file_bytes(work.identifier)


# ---- PMC and Europe PMC --------------------------------------------------------------


def test_idconv_records_and_errors(sb: Sandbox, client: httpx.Client) -> None:
    """Found records carry pmcid/pmid/doi (pmid int or string); others an error record."""
    url = f"{sb.base_urls['pmc_idconv']}/tools/idconv/api/v1/articles/"
    in_pmc = [w for w in sb.works if w.pmcid and w.pmid]
    ids = ",".join([w.doi for w in in_pmc] + ["99999999"])
    body = client.get(url, params={"ids": ids, "format": "json"}).json()
    assert body["status"] == "ok"
    records = body["records"]
    assert [r["pmcid"] for r in records[:-1]] == [w.pmcid for w in in_pmc]
    assert {type(r["pmid"]) for r in records[:-1]} == {int, str}
    assert records[-1] == {
        "requested-id": "99999999",
        "status": "error",
        "errmsg": "Identifier not found in PMC",
    }
    too_many = ",".join(str(n) for n in range(201))
    assert client.get(url, params={"ids": too_many, "format": "json"}).status_code == 400


def test_pmc_oa_service_and_cloud(sb: Sandbox, client: httpx.Client) -> None:
    """oa.fcgi gives a legacy ftp:// pdf href (404 over http); the cloud layout has the file."""
    work = pick(sb, of(Behaviour.REPOSITORY_ONLY, "pmc"))
    r = client.get(f"{sb.base_urls['pmc_oa']}/pmc/utils/oa/oa.fcgi", params={"id": work.pmcid})
    root = ET.fromstring(r.content)
    link = root.find(".//record/link[@format='pdf']")
    assert root.tag == "OA" and link is not None
    href = link.get("href") or ""
    assert href.startswith("ftp://")
    assert client.get("http://" + href.removeprefix("ftp://")).status_code == 404
    cloud = f"{sb.base_urls['pmc_cloud']}/{work.pmcid}.1/{work.pmcid}.1"
    assert client.get(cloud + ".pdf").content == sb.file_bytes(work.identifier)
    assert client.get(cloud + ".xml").text.startswith("<?xml")
    assert client.get(f"{sb.base_urls['pmc_cloud']}/PMC1.1/PMC1.1.pdf").status_code == 404
    closed = pick(sb, of(Behaviour.NO_OA, "pmc_not_oa"))
    r = client.get(f"{sb.base_urls['pmc_oa']}/pmc/utils/oa/oa.fcgi", params={"id": closed.pmcid})
    error = ET.fromstring(r.content).find("error")
    assert error is not None and error.get("code") == "idIsNotOpenAccess"


def test_pmc_site_pdf_is_a_bot_wall(sb: Sandbox, client: httpx.Client) -> None:
    """/articles/PMC…/pdf/ answers 200 HTML "Preparing to download", never a PDF."""
    work = pick(sb, lambda w: w.pmcid is not None)
    r = client.get(f"{sb.base_urls['pmc_site']}/articles/{work.pmcid}/pdf/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "Preparing to download" in r.text and not r.content.startswith(b"%PDF")


def test_europe_pmc_search_and_render(sb: Sandbox, client: httpx.Client) -> None:
    """Core results say isOpenAccess/hasPDF "Y" and link the render URL, which is the PDF."""
    work = pick(sb, of(Behaviour.REPOSITORY_ONLY, "europe_pmc"))
    url = f"{sb.base_urls['europe_pmc']}/europepmc/webservices/rest/search"
    for query in (f'DOI:"{work.doi}"', f"PMCID:{work.pmcid}"):
        params = {"query": query, "resultType": "core", "format": "json"}
        result = client.get(url, params=params).json()["resultList"]["result"][0]
        assert result["isOpenAccess"] == "Y" and result["hasPDF"] == "Y"
        pdf = [u for u in result["fullTextUrlList"]["fullTextUrl"] if u["documentStyle"] == "pdf"]
        assert client.get(pdf[0]["url"]).content == sb.file_bytes(work.identifier)
    none = client.get(url, params={"query": 'DOI:"10.9999/x"', "format": "json"}).json()
    assert none["hitCount"] == 0 and none["resultList"]["result"] == []


# ---- repositories and aggregators ----------------------------------------------------


def test_core_needs_a_bearer_and_redirects(sb: Sandbox, client: httpx.Client) -> None:
    """401 without a token; discover gives fullTextLink on core_site; no-slash search is 301."""
    base = sb.base_urls["core"]
    work = pick(sb, of(Behaviour.REPOSITORY_ONLY, "core"))
    assert client.post(f"{base}/v3/discover", json={"doi": work.doi}).status_code == 401
    auth = {"Authorization": "Bearer secret"}
    found = client.post(f"{base}/v3/discover", json={"doi": work.doi}, headers=auth).json()
    assert urlsplit(found["fullTextLink"]).netloc == urlsplit(sb.base_urls["core_site"]).netloc
    assert client.get(found["fullTextLink"]).content == sb.file_bytes(work.identifier)
    search = client.get(f"{base}/v3/search/works", params={"q": f'doi:"{work.doi}"'}, headers=auth)
    assert search.status_code == 301
    hits = client.get(search.headers["location"], headers=auth).json()
    assert hits["totalHits"] == 1 and hits["results"][0]["doi"] == work.doi
    core_id = hits["results"][0]["id"]
    download = client.get(f"{base}/v3/works/{core_id}/download")
    assert download.status_code == 302 and "core_site" not in download.headers["location"]
    assert sb.urls.locate(download.headers["location"]) == ("core_site", f"/download/{core_id}.pdf")


def test_doaj_links_landing_pages(sb: Sandbox, client: httpx.Client) -> None:
    """DOAJ answers the path-encoded doi: query with fulltext links to landing pages."""
    work = pick(sb, lambda w: "doaj" in w.sources)
    r = client.get(f"{sb.base_urls['doaj']}/api/search/articles/doi%3A{work.doi}")
    body = r.json()
    assert body["total"] == 1
    link = body["results"][0]["bibjson"]["link"][0]
    assert link["type"] == "fulltext" and link["content_type"] == "HTML"
    assert client.get(link["url"]).headers["content-type"].startswith("text/html")
    assert client.get(f"{sb.base_urls['doaj']}/search").status_code == 403


def test_zenodo_record_search_and_file(sb: Sandbox, client: httpx.Client) -> None:
    """Record JSON with files[].links.self on the zenodo host; search by doi finds it."""
    work = pick(sb, of(Behaviour.REPOSITORY_ONLY, "zenodo"))
    base, recid = sb.base_urls["zenodo"], work.repo_ids["zenodo"]
    record = client.get(f"{base}/api/records/{recid}").json()
    assert record["metadata"]["access_right"] == "open" and record["doi"] == work.doi
    pdf = next(f for f in record["files"] if f["key"].endswith(".pdf"))
    assert pdf["links"]["self"].endswith(f"/api/records/{recid}/files/{pdf['key']}/content")
    data = client.get(pdf["links"]["self"]).content
    assert data == sb.file_bytes(work.identifier)
    assert pdf["checksum"] == "md5:" + hashlib.md5(data).hexdigest()
    hits = client.get(f"{base}/api/records", params={"q": f'doi:"{work.doi}"'}).json()["hits"]
    assert hits["total"] == 1 and hits["hits"][0]["id"] == int(recid)


def test_figshare_article_search_and_download(sb: Sandbox, client: httpx.Client) -> None:
    """Article files point at figshare_files; search by doi; the public page is a 202 WAF."""
    work = pick(sb, of(Behaviour.REPOSITORY_ONLY, "figshare"))
    base, aid = sb.base_urls["figshare"], work.repo_ids["figshare"]
    article = client.get(f"{base}/v2/articles/{aid}").json()
    url = article["files"][0]["download_url"]
    assert sb.urls.locate(url) is not None and sb.urls.locate(url)[0] == "figshare_files"  # type: ignore[index]
    assert client.get(url).content == sb.file_bytes(work.identifier)
    found = client.post(f"{base}/v2/articles/search", json={"doi": work.doi}).json()
    assert [a["id"] for a in found] == [int(aid)]
    assert client.get(article["url_public_html"]).status_code == 202


def test_hal_files_s_is_array_or_scalar(client: httpx.Client) -> None:
    """fileMain_s points at hal_site's document; files_s is sometimes a list, sometimes a str."""
    with Sandbox(default_corpus(), rates_enforced=False, host_base=200) as box:
        kinds = set()
        for work in (w for w in box.works if w.variant == "hal"):
            r = client.get(
                f"{box.base_urls['hal']}/search/",
                params={
                    "q": f'doiId_s:"{work.doi}"',
                    "wt": "json",
                    "fl": "halId_s,fileMain_s,files_s",
                },
            )
            doc = r.json()["response"]["docs"][0]
            kinds.add(type(doc["files_s"]))
            assert doc["fileMain_s"].endswith(f"/{work.repo_ids['hal']}/document")
        assert kinds == {list, str}
        notice = next(w for w in box.works if w.variant == "hal_notice")
        r = client.get(
            f"{box.base_urls['hal']}/search/", params={"q": f'doiId_s:"{notice.doi}"', "fl": "*"}
        )
        doc = r.json()["response"]["docs"][0]
        assert doc["submitType_s"] == "notice" and "fileMain_s" not in doc


def test_osf_chain_and_withdrawn(sb: Sandbox, client: httpx.Client) -> None:
    """preprint -> primary_file -> file -> download on osf_site; withdrawn: primary_file null."""
    base = sb.base_urls["osf"]
    work = pick(sb, of(Behaviour.REPOSITORY_ONLY, "osf"))
    guid = work.repo_ids["osf"]
    assert client.get(f"{base}/v2/preprints/{guid}").status_code == 301
    pre = client.get(f"{base}/v2/preprints/{guid}/").json()
    href = pre["data"]["relationships"]["primary_file"]["links"]["related"]["href"]
    download = client.get(href).json()["data"]["links"]["download"]
    assert client.get(download).content == sb.file_bytes(work.identifier)
    gone = pick(sb, of(Behaviour.NO_OA, "osf_withdrawn"))
    data = client.get(f"{base}/v2/preprints/{gone.repo_ids['osf']}/").json()["data"]
    assert data["relationships"]["primary_file"] is None
    assert data["attributes"]["reviews_state"] == "withdrawn"


def test_openaire_research_products(sb: Sandbox, client: httpx.Client) -> None:
    """header.numFound, pids, bestAccessRight and landing-page instance URLs."""
    work = pick(sb, of(Behaviour.LANDING_ONLY))
    r = client.get(
        f"{sb.base_urls['openaire']}/graph/v1/researchProducts", params={"pid": work.doi}
    )
    body = r.json()
    assert body["header"]["numFound"] == 1
    result = body["results"][0]
    assert {"scheme": "doi", "value": work.doi} in result["pids"]
    assert result["bestAccessRight"]["label"] == "OPEN"
    assert all(on_sandbox(sb, u) for inst in result["instances"] for u in inst["urls"])


# ---- doi.org, Wayback, publishers ----------------------------------------------------


def test_doi_redirects_to_the_landing_page(sb: Sandbox, client: httpx.Client) -> None:
    """302 to the publisher's landing page; unknown DOIs 404."""
    work = pick(sb, of(Behaviour.LANDING_ONLY))
    r = client.get(f"{sb.base_urls['doi']}/{work.doi}")
    assert r.status_code == 302
    assert sb.urls.locate(r.headers["location"])[0] == work.publisher  # type: ignore[index]
    assert client.get(f"{sb.base_urls['doi']}/10.9999/none").status_code == 404


@pytest.mark.parametrize("variant", ["meta", "link", "anchor", "refresh"])
def test_landing_page_styles(sb: Sandbox, client: httpx.Client, variant: str) -> None:
    """Each landing-only variant links its PDF the way its name says."""
    work = pick(sb, of(Behaviour.LANDING_ONLY, variant))
    page = client.get(f"{sb.base_urls['doi']}/{work.doi}", follow_redirects=True).text
    marker = {
        "meta": '<meta name="citation_pdf_url"',
        "link": '<link rel="alternate" type="application/pdf"',
        "anchor": ">Download PDF</a>",
        "refresh": '<meta http-equiv="refresh" content="0; url=',
    }[variant]
    assert marker in page
    others = {"meta", "link", "anchor", "refresh"} - {variant}
    assert not any(
        {
            "meta": "citation_pdf_url",
            "link": 'type="application/pdf"',
            "anchor": "Download PDF",
            "refresh": "http-equiv",
        }[o]
        in page
        for o in others
    )


def test_wayback_availability_cdx_and_playback(sb: Sandbox, client: httpx.Client) -> None:
    """An archive-only work: available -> closest; CDX rows; id_ gives the raw PDF."""
    work = pick(sb, of(Behaviour.ARCHIVE_ONLY))
    base = sb.base_urls["wayback"]
    pdf_url = sb.url(work.copies[0].host, work.copies[0].path)
    assert client.get(pdf_url).status_code == 404
    closest = client.get(f"{base}/wayback/available", params={"url": pdf_url}).json()[
        "archived_snapshots"
    ]["closest"]
    assert closest["available"] is True and closest["status"] == "200"
    ts = closest["timestamp"]
    rows = client.get(
        f"{base}/cdx/search/cdx",
        params=[
            ("url", pdf_url),
            ("output", "json"),
            ("filter", "statuscode:200"),
            ("filter", "mimetype:application/pdf"),
        ],
    ).json()
    assert rows[0] == [
        "urlkey",
        "timestamp",
        "original",
        "mimetype",
        "statuscode",
        "digest",
        "length",
    ]
    assert rows[1][1] == ts and rows[1][2] == pdf_url
    raw = client.get(f"{base}/web/{ts}id_/{pdf_url}")
    assert raw.content == sb.file_bytes(work.identifier)
    framed = client.get(closest["url"])
    assert framed.headers["content-type"].startswith("text/html") and "iframe" in framed.text
    moved = client.get(f"{base}/web/20000101000000id_/{pdf_url}")
    assert moved.status_code == 302 and f"/web/{ts}id_/" in moved.headers["location"]
    none = client.get(f"{base}/wayback/available", params={"url": "http://example.org/x"}).json()
    assert none["archived_snapshots"] == {}
    html = client.get(f"{base}/wayback/available", params={"url": f"https://doi.org/{work.doi}"})
    assert html.json()["archived_snapshots"]["closest"]["available"] is True


def test_publisher_robots_roles(sb: Sandbox, client: httpx.Client) -> None:
    """publisher2 disallows /restricted/, publisher3 answers 500, publisher4 404."""
    assert "Disallow: /restricted/" in client.get(f"{sb.base_urls['publisher2']}/robots.txt").text
    assert client.get(f"{sb.base_urls['publisher3']}/robots.txt").status_code == 500
    assert client.get(f"{sb.base_urls['publisher4']}/robots.txt").status_code == 404
    work = pick(sb, of(Behaviour.ROBOTS_DISALLOWED))
    assert all(
        urlsplit(loc).path.startswith("/restricted/")
        for loc in [sb.url(c.host, c.path) for c in work.copies]
    )


# ---- behaviours ----------------------------------------------------------------------


def test_truncated_body_is_really_short(sb: Sandbox, client: httpx.Client) -> None:
    """Content-Length promises more than is sent; the connection then closes."""
    work = pick(sb, of(Behaviour.TRUNCATED))
    url = sb.url(work.copies[0].host, work.copies[0].path)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(url)
    host, port = urlsplit(url).hostname, urlsplit(url).port
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(f"GET {urlsplit(url).path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while chunk := raw.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    announced = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert announced == work.size and 0 < len(body) < announced


def test_challenge_and_captcha(sb: Sandbox, client: httpx.Client) -> None:
    """cf403: 403 + cf-mitigated: challenge + "Just a moment..."; captcha: 200 'PDF' of HTML."""
    cf = pick(sb, lambda w: w.behaviour is Behaviour.CHALLENGE and w.variant.startswith("cf403"))
    r = client.get(sb.url(cf.copies[0].host, cf.copies[0].path))
    assert r.status_code == 403 and r.headers["cf-mitigated"] == "challenge"
    assert "Just a moment..." in r.text
    captcha = pick(sb, lambda w: w.behaviour is Behaviour.CHALLENGE and "captcha" in w.variant)
    r = client.get(sb.url(captcha.copies[0].host, captcha.copies[0].path))
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert not r.content.startswith(b"%PDF") and b"captcha" in r.content.lower()


def test_html_served_as_pdf(sb: Sandbox, client: httpx.Client) -> None:
    """Content-Type says PDF, the body is an HTML page."""
    work = pick(sb, of(Behaviour.HTML_AS_PDF))
    r = client.get(sb.url(work.copies[0].host, work.copies[0].path))
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.lstrip().lower().startswith(b"<!doctype html")


def test_rate_limited_then_ok(sb: Sandbox, client: httpx.Client) -> None:
    """The first request gets 429 + Retry-After: 1; the next the file."""
    work = pick(sb, of(Behaviour.RATE_LIMITED))
    sb.reset_state()
    url = sb.url(work.copies[0].host, work.copies[0].path)
    first = client.get(url)
    assert first.status_code == 429 and first.headers["retry-after"] == "1"
    assert client.get(url).content == sb.file_bytes(work.identifier)


def test_flapping_recovers(sb: Sandbox, client: httpx.Client) -> None:
    """A flapping URL answers 503 `flaps` times, then 200."""
    sb.reset_state()
    for work in (w for w in sb.works if w.behaviour is Behaviour.FLAPPING):
        url = sb.url(work.copies[0].host, work.copies[0].path)
        statuses = [client.get(url).status_code for _ in range(work.copies[0].flaps + 1)]
        assert statuses == [503] * work.copies[0].flaps + [200]


def test_slow_body_drips_but_completes(sb: Sandbox, client: httpx.Client) -> None:
    """The body arrives in paced chunks and is complete."""
    work = pick(sb, of(Behaviour.SLOW_BODY))
    started = time.perf_counter()
    r = client.get(sb.url(work.copies[0].host, work.copies[0].path))
    elapsed = time.perf_counter() - started
    assert r.content == sb.file_bytes(work.identifier)
    assert 0.25 <= elapsed < 30.0  # paced (never instant), and it does end
    assert Sandbox(sb.corpus).slow_seconds < 2.0


def test_oversized_is_streamed_with_honest_length(sb: Sandbox, client: httpx.Client) -> None:
    """The announced length is the configured size; that many bytes arrive, hashing as expected."""
    work = pick(sb, of(Behaviour.OVERSIZED))
    url = sb.url(work.copies[0].host, work.copies[0].path)
    head = client.head(url)
    assert int(head.headers["content-length"]) == sb.corpus.oversized_bytes
    digest, total = hashlib.sha256(), 0
    with client.stream("GET", url) as r:
        for chunk in r.iter_raw():
            digest.update(chunk)
            total += len(chunk)
    assert total == sb.corpus.oversized_bytes and digest.hexdigest() == work.expected_sha256
    assert work.obtainable_within(512 * 1024**2) and not work.obtainable_within(1024**2)


def test_conditional_and_range_requests(sb: Sandbox, client: httpx.Client) -> None:
    """Good files honour If-None-Match / If-Modified-Since (304) and Range (206)."""
    work = pick(sb, of(Behaviour.DIRECT_OA))
    url = sb.url(work.copies[0].host, work.copies[0].path)
    first = client.get(url)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    part = client.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == first.content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(first.content)}"
    assert client.get(url, headers={"Range": f"bytes={10**9}-"}).status_code == 416


# ---- politeness checks and the log ---------------------------------------------------


def test_rate_enforcement_throttles_and_logs(tmp_path: Path) -> None:
    """Above the host's rate: 429 + Retry-After, logged throttled; the JSONL has it too."""
    log = tmp_path / "requests.jsonl"
    corpus = Corpus(3, n_works=20, pdf_size_range=(2_000, 5_000), oversized_bytes=10_000)
    with Sandbox(corpus, log_path=log, rates={"unpaywall": "2/10s"}, host_base=80) as box:
        policies = box.rate_policies()
        assert policies[box.host_of("unpaywall")] == "2/10s"
        assert policies[box.host_of("arxiv")] == "1/s"
        assert policies[box.host_of("publisher1")] == "5/s"
        url = f"{box.base_urls['unpaywall']}/v2/{box.works[0].doi}"
        with httpx.Client() as c:
            statuses = [c.get(url, params=EMAIL) for _ in range(3)]
        assert all(r.status_code != 429 for r in statuses[:2])
        assert statuses[2].status_code == 429 and int(statuses[2].headers["retry-after"]) >= 9
        entries = box.requests()
        assert [e["throttled"] for e in entries] == [False, False, True]
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["throttled"] for e in lines] == [False, False, True]


def test_paced_client_is_never_throttled() -> None:
    """A client spacing its requests one period/count apart stays clean past a full window."""
    corpus = Corpus(3, n_works=20, pdf_size_range=(2_000, 5_000), oversized_bytes=10_000)
    with Sandbox(corpus, rates={"crossref": "10/s"}, host_base=100) as box, httpx.Client() as c:
        url = f"{box.base_urls['crossref']}/works/{box.works[0].doi}"
        for _ in range(14):
            assert c.get(url).status_code == 200
            time.sleep(0.1)
        assert len(box.requests()) == 14 and not any(e["throttled"] for e in box.requests())


def test_log_records_every_field_without_secrets(sb: Sandbox, client: httpx.Client) -> None:
    """Each entry has the documented fields; Authorization is a bool only."""
    sb.clear_log()
    work = pick(sb, of(Behaviour.DIRECT_OA))
    headers = {
        "User-Agent": "oafetch-test/1",
        "Authorization": "Bearer hunter2",
        "If-None-Match": '"x"',
        "Range": "bytes=0-9",
    }
    url = sb.url(work.copies[0].host, work.copies[0].path)
    client.get(url, headers={**headers, "X-Probe": "log-test"})
    target = urlsplit(url).path
    # A previous test's last request may be logged late (after its bytes went out): filter.
    (entry,) = [e for e in sb.requests() if e["path"] == target and e["range"] == "bytes=0-9"]
    assert set(entry) == {
        "ts",
        "service",
        "host",
        "port",
        "method",
        "path",
        "status",
        "bytes_sent",
        "throttled",
        "user_agent",
        "if_none_match",
        "if_modified_since",
        "has_authorization",
        "range",
    }
    assert entry["service"] == work.publisher and entry["host"] == sb.host_of(entry["service"])
    assert entry["status"] == 206 and entry["bytes_sent"] == 10 and entry["range"] == "bytes=0-9"
    assert entry["has_authorization"] is True and "hunter2" not in json.dumps(entry)
    assert entry["user_agent"] == "oafetch-test/1" and entry["if_none_match"] == '"x"'


def test_hosts_are_distinct_addresses(sb: Sandbox) -> None:
    """Every service has its own loopback address, in a stable order from host_base."""
    hosts = [urlsplit(url).hostname for url in sb.base_urls.values()]
    assert len(set(hosts)) == len(hosts) == len(sb.services)
    assert sb.base_urls["unpaywall"].startswith("http://127.0.0.40:")
    assert set(sb.base_urls) >= {
        "unpaywall",
        "crossref",
        "openalex",
        "arxiv_api",
        "arxiv",
        "pmc_idconv",
        "pmc_oa",
        "pmc_cloud",
        "pmc_site",
        "europe_pmc",
        "europe_pmc_render",
        "semantic_scholar",
        "core",
        "doaj",
        "zenodo",
        "figshare",
        "figshare_files",
        "hal",
        "hal_site",
        "osf",
        "osf_site",
        "openaire",
        "doi",
        "wayback",
        "publisher1",
        "publisher6",
    }


def test_concurrent_clients(sb: Sandbox) -> None:
    """Sixteen keep-alive clients hammering several hosts all get complete answers."""
    works = [w for w in sb.works if w.behaviour is Behaviour.DIRECT_OA][:8]
    errors: list[str] = []

    def worker(n: int) -> None:
        with httpx.Client(timeout=10) as c:
            for i in range(30):
                work = works[(n + i) % len(works)]
                r = c.get(sb.url(work.copies[0].host, work.copies[0].path))
                if r.content != sb.file_bytes(work.identifier):
                    errors.append(f"{n}/{i}")
                if c.get(f"{sb.base_urls['crossref']}/works/{work.doi}").status_code != 200:
                    errors.append(f"{n}/{i} crossref")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_stop_is_prompt_with_idle_keepalive_connections() -> None:
    """stop() closes idle client connections and returns quickly; start/stop are idempotent."""
    box = Sandbox(
        Corpus(3, n_works=10, pdf_size_range=(2_000, 3_000), oversized_bytes=5_000), host_base=140
    )
    box.start()
    assert box.start() is box
    with httpx.Client() as c:
        assert c.get(f"{box.base_urls['doi']}/robots.txt").status_code == 200
        started = time.perf_counter()
        box.stop()
        assert time.perf_counter() - started < 2.0
    box.stop()
    with pytest.raises(RuntimeError):
        _ = box.base_urls
    with box, httpx.Client() as c:  # a stopped sandbox starts again
        assert c.get(f"{box.base_urls['doi']}/robots.txt").status_code == 200


def test_bad_configuration_is_named() -> None:
    """Unknown services and bad rates are rejected with the offending name."""
    with pytest.raises(ValueError, match="nosuch"):
        Sandbox(Corpus(3, n_works=5), rates={"nosuch": "1/s"})
    with pytest.raises(ValueError, match="crossref"):
        Sandbox(Corpus(3, n_works=5), rates={"crossref": "lots"})
    assert build_parser().parse_args(["--rate", "unpaywall=3/s"]).rate == [("unpaywall", "3/s")]
