"""NCBI PMC and Europe PMC imitations (scholarly-apis.md sections 5 and 6).

- ``pmc_idconv``: ``/tools/idconv/api/v1/articles/?ids=..&format=json`` (and the old
  ``/pmc/utils/idconv/v1.0/`` base); JSON or XML; up to 200 ids.
- ``pmc_oa``: ``/pmc/utils/oa/oa.fcgi?id=PMC..`` -> ``<OA>`` XML whose links are legacy
  ``ftp://`` hrefs on this same host; fetched over http they 404 (the files were withdrawn).
- ``pmc_cloud``: ``/PMC{n}.{ver}/PMC{n}.{ver}.pdf|.xml|.txt`` (S3 layout; the version is 1).
- ``pmc_site``: ``/articles/PMC{n}/`` and a bot wall at ``/articles/PMC{n}/pdf/...``.
- ``europe_pmc``: ``/europepmc/webservices/rest/search?query=DOI:"..."&resultType=core``.
- ``europe_pmc_render``: ``/articles/PMC{n}?pdf=render`` -> the PDF.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from .. import pages
from ..ids import looks_like_doi, norm_doi
from ..model import Behaviour, LinkStyle, SandboxWork
from ..wire import Request, Response, html_response, json_response, text_response, xml_response
from .base import App, SiteApp

_MAX_IDS = 200
_DATE = "2025-06-01 00:00:00"
_QUERY_TERM = re.compile(r'\b(DOI|PMCID|EXT_ID|PMID)\s*:\s*("([^"]*)"|[^\s)]+)', re.IGNORECASE)


class IdConvApp(App):
    """The PMC ID Converter."""

    def setup(self) -> None:
        self.route(r"/tools/idconv/api/v1/articles/?", self.convert)
        self.route(r"/pmc/utils/idconv/v1\.0/?", self.convert)

    def _find(self, requested: str) -> SandboxWork | None:
        text = requested.strip()
        if text.upper().startswith("PMC"):
            return self.corpus.by_pmcid(text)
        if text.isdigit():
            return self.corpus.by_pmid(text)
        doi = norm_doi(text)
        return self.corpus.by_doi(doi) if looks_like_doi(doi) else None

    def record(self, requested: str) -> dict[str, Any]:
        """One ``records[]`` entry."""
        work = self._find(requested)
        if work is None or work.pmcid is None:
            return {
                "requested-id": requested,
                "status": "error",
                "errmsg": "Identifier not found in PMC",
            }
        out: dict[str, Any] = {"requested-id": requested, "pmcid": work.pmcid}
        if work.pmid:
            out["pmid"] = work.pmid if "pmid_str" in work.flags else int(work.pmid)
        out["doi"] = work.doi
        return out

    def convert(self, req: Request, match: re.Match[str]) -> Response:
        ids = [i.strip() for i in (req.arg("ids") or "").split(",") if i.strip()]
        json_format = (req.arg("format") or "xml").lower() == "json"
        if not ids or len(ids) > _MAX_IDS:
            message = f"ids: between 1 and {_MAX_IDS} identifiers are required (got {len(ids)})"
            if json_format:
                return json_response({"status": "error", "message": message}, 400)
            return xml_response(
                f'<pmcids status="error"><message>{escape(message)}</message></pmcids>', 400
            )
        records = [self.record(i) for i in ids]
        if json_format:
            echo = f"ids={','.join(ids)};format=json"
            return json_response(
                {"status": "ok", "responseDate": _DATE, "request": echo, "records": records}
            )
        lines = []
        for rec in records:
            attrs = " ".join(f"{k}={quoteattr(str(v))}" for k, v in rec.items() if k != "errmsg")
            if "errmsg" in rec:
                lines.append(f"<record {attrs}><errmsg>{escape(rec['errmsg'])}</errmsg></record>")
            else:
                lines.append(f"<record {attrs}/>")
        body = (
            '<?xml version="1.0" ?>\n<pmcids status="ok"><request idtype="auto" dbfrom="pmc" '
            f'format="xml"><echo>ids={escape(",".join(ids))}</echo></request>'
            + "".join(lines)
            + "</pmcids>\n"
        )
        return xml_response(body)


def _shard(pmcid: str) -> str:
    digest = hashlib.md5(pmcid.encode()).hexdigest()
    return f"{digest[:2]}/{digest[2:4]}"


class PmcOaApp(App):
    """The PMC OA web service (``oa.fcgi``)."""

    def setup(self) -> None:
        self.route(r"/pmc/utils/oa/oa\.fcgi", self.oa)

    def oa(self, req: Request, match: re.Match[str]) -> Response:
        requested = (req.arg("id") or "").strip()
        head = (
            f"<OA><responseDate>{_DATE}</responseDate>"
            f"<request id={quoteattr(requested)}>{escape(req.target)}</request>"
        )
        work = self.corpus.by_pmcid(requested) if requested else None
        if not requested:
            return xml_response(head + '<error code="badArgument">id is required</error></OA>')
        if work is None:
            return xml_response(
                head + '<error code="idDoesNotExist">invalid article id</error></OA>'
            )
        copy = next((c for c in work.copies if c.host == "pmc_cloud"), None)
        if copy is None:
            message = f"identifier '{work.pmcid}' is not Open Access"
            return xml_response(
                head + f'<error code="idIsNotOpenAccess">{escape(message)}</error></OA>'
            )
        pmcid = work.pmcid or ""
        netloc = self.urls.bases[self.service].split("://", 1)[1]
        shard = _shard(pmcid)
        links = []
        if (req.arg("format") or "tgz") != "pdf":
            tgz = f"ftp://{netloc}/pub/pmc/oa_package/{shard}/{pmcid}.tar.gz"
            links.append(f'<link format="tgz" updated="{work.year}-03-09 13:55:42" href="{tgz}"/>')
        pdf = f"ftp://{netloc}/pub/pmc/oa_pdf/{shard}/sbx-{work.index:05d}.{pmcid}.pdf"
        links.append(f'<link format="pdf" updated="{work.year}-03-09 13:55:42" href="{pdf}"/>')
        citation = quoteattr(f"Sandbox J. {work.year}; {work.index % 40}:{work.index}")
        record = (
            f'<records returned-count="1" total-count="1"><record id="{pmcid}" '
            f'citation={citation} license="{_licence_label(work)}" '
            f'retracted="{"yes" if work.behaviour is Behaviour.RETRACTED else "no"}">'
            + "".join(links)
            + "</record></records>"
        )
        return xml_response(head + record + "</OA>")


class PmcCloudApp(SiteApp):
    """The PMC Open Access cloud bucket layout."""

    robots = (404, "NoSuchKey\n")

    def setup(self) -> None:
        self.route(
            r"/(?P<id>PMC\d+)\.(?P<ver>\d+)/(?P=id)\.(?P=ver)\.(?P<ext>pdf|xml|txt)", self.file
        )

    def missing(self, req: Request) -> Response:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
            f"<Message>The specified key does not exist.</Message><Key>{escape(req.path[1:])}"
            "</Key></Error>"
        )
        return xml_response(body, 404)

    def file(self, req: Request, match: re.Match[str]) -> Response:
        pmcid, version = match["id"], match["ver"]
        found = self.corpus.copy_at(self.service, f"/{pmcid}.{version}/{pmcid}.{version}.pdf")
        if found is None:
            return self.missing(req)
        work, copy = found
        if match["ext"] == "pdf":
            return self.ctx.files.serve(req, work, copy)
        if match["ext"] == "txt":
            return text_response(f"{work.title}\n\nWe study {work.title.lower()}.\n")
        return xml_response(jats(work))


def jats(work: SandboxWork) -> str:
    """A minimal JATS article (PMC cloud .xml, Europe PMC fullTextXML)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<article article-type="research-article">'
        f'<front><article-meta><article-id pub-id-type="pmcid">{work.pmcid}</article-id>'
        f'<article-id pub-id-type="doi">{escape(work.doi)}</article-id><title-group>'
        f"<article-title>{escape(work.title)}</article-title></title-group></article-meta>"
        f"</front><body><sec><title>Introduction</title><p>We study {escape(work.title.lower())}."
        "</p></sec></body></article>\n"
    )


class PmcSiteApp(SiteApp):
    """pmc.ncbi.nlm.nih.gov: article pages and the PDF bot wall."""

    site_name = "PMC"

    def setup(self) -> None:
        self.route(r"/articles/(?P<id>PMC\d+)/pdf(?:/.*)?", self.wall)
        self.route(r"/articles/(?P<id>PMC\d+)/?", self.article)

    def wall(self, req: Request, match: re.Match[str]) -> Response:
        if self.corpus.by_pmcid(match["id"]) is None:
            return self.missing(req)
        return html_response(pages.pmc_bot_wall(match["id"]))

    def article(self, req: Request, match: re.Match[str]) -> Response:
        work = self.corpus.by_pmcid(match["id"])
        if work is None:
            return self.missing(req)
        pdf = self.urls.url(self.service, f"/articles/{work.pmcid}/pdf/sbx-{work.index:05d}.pdf")
        html = pages.landing(
            site="PMC",
            title=work.title,
            doi=work.doi,
            year=work.year,
            style=LinkStyle.META,
            pdf_url=pdf,
            pdf_relative=None,
        )
        return html_response(html)


class EuropePmcApp(App):
    """Europe PMC REST search and fullTextXML."""

    def setup(self) -> None:
        self.route(r"/europepmc/webservices/rest/search/?", self.search)
        self.route(r"/europepmc/webservices/rest/(?P<id>PMC\d+)/fullTextXML", self.full_text)

    def _find(self, query: str) -> SandboxWork | None:
        for match in _QUERY_TERM.finditer(query):
            field, value = match.group(1).upper(), match.group(3) or match.group(2)
            if field == "DOI":
                return self.corpus.by_doi(value)
            if field == "PMCID":
                return self.corpus.by_pmcid(value)
            return self.corpus.by_pmid(value)
        return None

    def result(self, work: SandboxWork, core: bool) -> dict[str, Any]:
        """One ``resultList.result[]`` entry."""
        render = next((c for c in work.copies if c.host == "europe_pmc_render"), None)
        in_pmc = any(c.host == "pmc_cloud" for c in work.copies)
        out: dict[str, Any] = {
            "id": work.pmid or work.pmcid,
            "source": "MED" if work.pmid else "PMC",
            "pmid": work.pmid,
            "pmcid": work.pmcid,
            "doi": work.doi,
            "title": work.title,
            "authorString": f"Sandbox{work.index} A.",
            "journalTitle": "Sandbox J",
            "pubYear": str(work.year),
            "isOpenAccess": "Y" if render or in_pmc else "N",
            "inEPMC": "Y" if render else "N",
            "inPMC": "Y" if work.pmcid else "N",
            "hasPDF": "Y" if render else "N",
        }
        out = {k: v for k, v in out.items() if v is not None}
        if core:
            urls = [
                {
                    "availability": "Subscription required",
                    "availabilityCode": "S",
                    "documentStyle": "doi",
                    "site": "DOI",
                    "url": self.urls.doi_url(work.doi),
                }
            ]
            if render is not None:
                urls.append(
                    {
                        "availability": "Open access",
                        "availabilityCode": "OA",
                        "documentStyle": "pdf",
                        "site": "Europe_PMC",
                        "url": self.copy_url(render),
                    }
                )
                urls.append(
                    {
                        "availability": "Open access",
                        "availabilityCode": "OA",
                        "documentStyle": "html",
                        "site": "Europe_PMC",
                        "url": self.urls.url("europe_pmc_render", f"/articles/{work.pmcid}"),
                    }
                )
            out["fullTextUrlList"] = {"fullTextUrl": urls}
        return out

    def search(self, req: Request, match: re.Match[str]) -> Response:
        query = req.arg("query") or ""
        if not query:
            return json_response({"errCode": 400, "errMsg": "query is required"}, 400)
        work = self._find(query)
        if work is not None and not (work.pmid or work.pmcid):
            work = None
        core = (req.arg("resultType") or "lite").lower() == "core"
        results = [self.result(work, core)] if work is not None else []
        return json_response(
            {
                "version": "6.9",
                "hitCount": len(results),
                "nextCursorMark": "*",
                "request": {
                    "queryString": query,
                    "resultType": "core" if core else "lite",
                    "cursorMark": "*",
                    "pageSize": 25,
                    "sort": "",
                    "synonym": False,
                },
                "resultList": {"result": results},
            }
        )

    def full_text(self, req: Request, match: re.Match[str]) -> Response:
        work = self.corpus.by_pmcid(match["id"])
        if work is None or not any(c.host == "europe_pmc_render" for c in work.copies):
            return xml_response("<error>The requested full text is not available</error>", 404)
        return xml_response(jats(work))


class EuropePmcRenderApp(SiteApp):
    """europepmc.org: ``/articles/PMC..?pdf=render``."""

    site_name = "Europe PMC"

    def setup(self) -> None:
        self.route(r"/articles/(?P<id>PMC\d+)/?", self.article)

    def article(self, req: Request, match: re.Match[str]) -> Response:
        pmcid = match["id"]
        if req.arg("pdf") == "render":
            found = self.corpus.copy_at(self.service, f"/articles/{pmcid}?pdf=render")
            if found is None:
                return html_response(pages.simple("Not Found", "No PDF for this article."), 404)
            return self.ctx.files.serve(req, *found)
        if self.corpus.by_pmcid(pmcid) is None:
            return self.missing(req)
        return html_response(pages.simple(f"Europe PMC {pmcid}", "Loading article ..."))


def _licence_label(work: SandboxWork) -> str:
    """The OA service's spelling of the PMC copy's licence (``cc-by-nc-nd`` → ``CC BY-NC-ND``)."""
    licence = next((c.license for c in work.copies if c.source == "pmc" and c.license), "cc-by")
    return licence.upper().replace("CC-", "CC ", 1)
