"""Unpaywall, Crossref and Semantic Scholar imitations (shapes from scholarly-apis.md 1, 2, 7).

All three render from the same facts: the copies and landing pages a work's plan lists for
the resolver of the same name. Unpaywall and Crossref only know Crossref-registered DOIs
(DataCite DOIs -- Zenodo, figshare, arXiv's 10.48550 -- answer 404, as in reality).
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

from ..behaviours import S2, UNPAYWALL
from ..ids import DATACITE_PREFIXES, norm_doi
from ..model import Behaviour, Copy, Mode, Page, SandboxWork
from ..wire import Request, Response, json_response, raw_json, text_response
from .base import App

_PMH = {
    "arxiv": "oai:arXiv.org:{arxiv}",
    "pmc": "oai:pubmedcentral.nih.gov:{pmc}",
    "hal": "oai:HAL:{hal}v1",
}
_CC_URL = "https://creativecommons.org/licenses/by/4.0/"
_S2_PREFIXES = ("DOI", "ARXIV", "PMID", "PMCID", "CORPUSID")


def crossref_registered(work: SandboxWork) -> bool:
    """Whether the work's DOI is registered with Crossref (not DataCite)."""
    return not work.doi.lower().startswith(tuple(p + "/" for p in DATACITE_PREFIXES))


def publisher_label(work: SandboxWork) -> str:
    """The publisher's display name."""
    if work.publisher is None:
        return "Center for Open Science" if work.doi.startswith("10.31234/") else "Repository"
    return "Sandbox Publisher " + work.publisher.removeprefix("publisher")


def journal_label(work: SandboxWork) -> str:
    """The journal's display name."""
    if work.publisher is None:
        return "Preprint server"
    return "Journal of Sandbox Studies " + work.publisher.removeprefix("publisher")


def is_publisher_host(host: str) -> bool:
    """Whether a sandbox service is a publisher host."""
    return host.startswith("publisher")


def oa_status(work: SandboxWork, publisher_oa: bool, repo_oa: bool, licensed: bool) -> str:
    """Unpaywall/OpenAlex oa_status from where the OA copies are."""
    if publisher_oa:
        doaj = work.publisher is not None and int(work.publisher.removeprefix("publisher")) % 3 == 1
        if doaj:
            return "gold"
        return "hybrid" if licensed else "bronze"
    return "green" if repo_oa else "closed"


class UnpaywallApp(App):
    """``GET /v2/{doi}?email=`` -> the Unpaywall record."""

    def setup(self) -> None:
        self.route(r"/v2/(?P<doi>.+)", self.record)

    def record(self, req: Request, match: re.Match[str]) -> Response:
        email = (req.arg("email") or "").strip().lower()
        domain = email.rpartition("@")[2]
        if "@" not in email or domain == "example.com" or domain.endswith(".example.com"):
            message = (
                "Please use your own email address in API calls. "
                "See https://unpaywall.org/products/api"
            )
            return json_response({"error": True, "message": message}, 422)
        doi = norm_doi(match["doi"])
        work = self.corpus.by_doi(doi)
        if work is None or not crossref_registered(work):
            message = f"'{doi}' is not in Unpaywall. See https://support.unpaywall.org/a/solutions/articles/44000701576"
            return json_response({"HTTP_status_code": 404, "error": True, "message": message}, 404)
        return raw_json(self.memo(work.index, lambda: json.dumps(self.render(work)).encode()))

    def _location(
        self, work: SandboxWork, copy: Copy | None, page: Page | None, host: str
    ) -> dict[str, Any]:
        publisher = is_publisher_host(host)
        pdf = self.copy_url(copy) if copy is not None else None
        landing: str | None
        if publisher and (page is None or "unpaywall_landing_direct" not in work.flags):
            landing = self.urls.doi_url(work.doi)
        else:
            landing = self.page_url(page) if page is not None else pdf
        source = copy.source if copy is not None else ("osf" if host == "osf_site" else host)
        pmh = _PMH.get(source)
        if pmh is not None:
            pmc = (work.pmcid or "").removeprefix("PMC")
            pmh = pmh.format(arxiv=work.arxiv_id, pmc=pmc, hal=work.repo_ids.get("hal"))
        if publisher:
            evidence = "open (via free pdf)" if pdf else "open (via page says license)"
        else:
            evidence = "oa repository (via OAI-PMH doi match)"
        return {
            "url": pdf or landing,
            "url_for_pdf": pdf,
            "url_for_landing_page": landing,
            "evidence": evidence,
            "license": copy.license if copy is not None else None,
            "version": copy.version if copy is not None else "publishedVersion",
            "host_type": "publisher" if publisher else "repository",
            "is_best": False,
            "pmh_id": pmh,
            "endpoint_id": None if publisher else f"sbx{zlib.crc32(source.encode()) % 10**6:06d}",
            "repository_institution": None,
            "oa_date": f"{work.year}-01-15",
            "updated": "2025-06-01T00:00:00.000000",
        }

    def render(self, work: SandboxWork) -> dict[str, Any]:
        """The Unpaywall record of `work`."""
        locations: list[dict[str, Any]] = []
        for copy in work.copies_listed_by(UNPAYWALL):
            locations.append(self._location(work, copy, work.page_for(copy), copy.host))
        for page in work.pages_listed_by(UNPAYWALL):
            locations.append(self._location(work, None, page, page.host))
        best = locations[0] if locations else None
        if best is not None:
            best["is_best"] = True
        publisher_oa = any(loc["host_type"] == "publisher" for loc in locations)
        repo_oa = any(loc["host_type"] == "repository" for loc in locations)
        licensed = any(loc["license"] for loc in locations)
        return {
            "doi": work.doi.lower(),
            "doi_url": self.urls.doi_url(work.doi.lower()),
            "title": work.title,
            "genre": "posted-content" if work.publisher is None else "journal-article",
            "is_paratext": False,
            "is_oa": bool(locations),
            "oa_status": oa_status(work, publisher_oa, repo_oa, licensed),
            "has_repository_copy": repo_oa,
            "journal_name": journal_label(work),
            "journal_issns": None,
            "journal_is_oa": False,
            "journal_is_in_doaj": oa_status(work, True, False, True) == "gold",
            "publisher": publisher_label(work),
            "published_date": f"{work.year}-01-15",
            "year": work.year,
            "z_authors": [{"given": "Ada", "family": f"Sandbox{work.index}"}],
            "best_oa_location": best,
            "first_oa_location": best,
            "oa_locations": locations,
            "oa_locations_embargoed": [],
            "updated": "2025-06-01T00:00:00.000000",
            "data_standard": 2,
        }


class CrossrefApp(App):
    """``GET /works/{doi}`` -> the Crossref work message, with rate-limit headers."""

    def setup(self) -> None:
        self.route(r"/works/(?P<doi>.+)", self.work)

    def _headers(self, req: Request) -> list[tuple[str, str]]:
        spec = self.ctx.rates.get("crossref")
        headers = [("Access-Control-Allow-Origin", "*")]
        if spec is not None:
            headers += [
                ("x-rate-limit-limit", str(spec.count)),
                ("x-rate-limit-interval", f"{spec.period:g}s"),
            ]
        agent = req.header("User-Agent") or ""
        polite = bool(req.arg("mailto")) or "mailto:" in agent
        headers.append(("x-api-pool", "polite" if polite else "public"))
        return headers

    def work(self, req: Request, match: re.Match[str]) -> Response:
        work = self.corpus.by_doi(match["doi"])
        if work is None or not crossref_registered(work):
            return text_response("Resource not found.", 404, self._headers(req))
        body = self.memo(work.index, lambda: json.dumps(self.render(work)).encode())
        return raw_json(body, headers=self._headers(req))

    def render(self, work: SandboxWork) -> dict[str, Any]:
        """The Crossref ``message-type: work`` envelope of `work`."""
        links: list[dict[str, Any]] = []
        for copy in work.copies_listed_by("crossref"):
            url = self.copy_url(copy)
            if copy.mode is not Mode.FORBIDDEN:
                links.append(
                    {
                        "URL": url,
                        "content-type": "application/pdf",
                        "content-version": "vor",
                        "intended-application": "text-mining",
                    }
                )
            links.append(
                {
                    "URL": url,
                    "content-type": "unspecified",
                    "content-version": "vor",
                    "intended-application": "similarity-checking",
                }
            )
        for page in work.pages_listed_by("crossref"):
            # Springer Nature deposits the article page as ``text/html`` (not a PDF, whatever
            # the URL); other publishers as ``unspecified`` (HTML served where a file may be).
            links.append(
                {
                    "URL": self.page_url(page),
                    "content-type": "text/html" if work.index % 2 == 0 else "unspecified",
                    "content-version": "vor",
                    "intended-application": "text-mining",
                }
            )
        licensed = work.behaviour is not Behaviour.NO_OA and (links or work.copies)
        date = {"date-parts": [[work.year, 1, 15]]}
        landing = next((p for p in work.pages if is_publisher_host(p.host)), None)
        message: dict[str, Any] = {
            "DOI": work.doi,
            "URL": self.urls.doi_url(work.doi),
            "type": "posted-content" if work.publisher is None else "journal-article",
            "title": [work.title],
            "prefix": work.doi.split("/", 1)[0],
            "member": str(9000 + int((work.publisher or "publisher0").removeprefix("publisher"))),
            "publisher": publisher_label(work),
            "container-title": [journal_label(work)],
            "issued": date,
            "published": date,
            "author": [{"given": "Ada", "family": f"Sandbox{work.index}", "sequence": "first"}],
            "reference-count": 0,
            "is-referenced-by-count": work.index % 97,
            "score": 1,
        }
        if landing is not None:
            message["resource"] = {"primary": {"URL": self.page_url(landing)}}
        if work.behaviour is Behaviour.RETRACTED:  # as Crossref lists Retraction Watch's notices
            message["updated-by"] = [
                {
                    "DOI": f"{work.doi}.retraction",
                    "type": "retraction",
                    "label": "Retraction",
                    "source": "retraction-watch",
                    "updated": {"date-time": f"{min(work.year + 2, 2025)}-02-06T00:00:00Z"},
                    "record-id": str(40000 + work.index),
                }
            ]
        if links:
            message["link"] = links
        if licensed:
            message["license"] = [
                {"start": date, "URL": _CC_URL, "content-version": "vor", "delay-in-days": 0}
            ]
        return {
            "status": "ok",
            "message-type": "work",
            "message-version": "1.0.0",
            "message": message,
        }


class SemanticScholarApp(App):
    """``GET /graph/v1/paper/{PREFIX:id}?fields=`` and ``POST /graph/v1/paper/batch``."""

    def setup(self) -> None:
        self.route(r"/graph/v1/paper/batch", self.batch, ("POST",))
        self.route(r"/graph/v1/paper/(?P<pid>.+)", self.paper)

    def find(self, pid: str) -> SandboxWork | None:
        """Resolve an S2 paper id (``DOI:``, ``ARXIV:``, ``PMID:``, ``PMCID:``, ``CorpusId:``)."""
        prefix, sep, value = pid.partition(":")
        if not sep:
            return self.corpus.by_s2(pid) if re.fullmatch(r"[0-9a-fA-F]{40}", pid) else None
        kind = prefix.upper()
        if kind not in _S2_PREFIXES:
            return None
        if kind == "DOI":
            return self.corpus.by_doi(value)
        if kind == "ARXIV":
            return self.corpus.by_arxiv(value)
        if kind == "PMID":
            return self.corpus.by_pmid(value)
        if kind == "PMCID":
            return self.corpus.by_pmcid(value if value.upper().startswith("PMC") else f"PMC{value}")
        return self.corpus.by_s2(f"corpusid:{value}")

    def paper(self, req: Request, match: re.Match[str]) -> Response:
        work = self.find(match["pid"])
        if work is None:
            return json_response({"error": "Paper not found"}, 404)
        return json_response(self.render(work, req.arg("fields")))

    def batch(self, req: Request, match: re.Match[str]) -> Response:
        payload = req.json()
        ids = payload.get("ids") if isinstance(payload, dict) else None
        if not isinstance(ids, list) or len(ids) > 500:
            return json_response({"error": 'Body must be {"ids": [...]} with <= 500 ids'}, 400)
        fields = req.arg("fields")
        out = [None if (w := self.find(str(i))) is None else self.render(w, fields) for i in ids]
        return json_response(out)

    def render(self, work: SandboxWork, fields: str | None) -> dict[str, Any]:
        """The paper object with `fields` (default ``title``); paperId always included."""
        external: dict[str, Any] = {"DOI": work.doi, "CorpusId": work.corpus_id}
        if work.arxiv_id:
            external["ArXiv"] = work.arxiv_id
        if work.pmid:
            external["PubMed"] = work.pmid
        if work.pmcid:
            external["PubMedCentral"] = work.pmcid.removeprefix("PMC")
        listed = work.copies_listed_by(S2)
        pdf: dict[str, Any] | None = None
        if listed:
            copy = listed[0]
            status = "GOLD" if is_publisher_host(copy.host) else "GREEN"
            pdf = {
                "url": self.copy_url(copy),
                "status": status,
                "license": "CCBY" if copy.license else None,
                "disclaimer": "Notice: Paper or abstract available at " + self.copy_url(copy),
            }
        elif "s2_empty_url" in work.flags:
            pdf = {
                "url": "",
                "status": "CLOSED",
                "license": None,
                "disclaimer": "Notice: The following paper fields have been elided by the "
                "publisher: {'openAccessPdf'}.",
            }
        full: dict[str, Any] = {
            "paperId": work.s2_id,
            "corpusId": work.corpus_id,
            "externalIds": external,
            "url": f"https://www.semanticscholar.org/paper/{work.s2_id}",
            "title": work.title,
            "year": work.year,
            "venue": journal_label(work),
            "publicationDate": f"{work.year}-01-15",
            "isOpenAccess": bool(listed) or work.behaviour is not Behaviour.NO_OA,
            "openAccessPdf": pdf,
        }
        wanted = [f.strip() for f in (fields or "title").split(",") if f.strip()]
        return {"paperId": work.s2_id, **{k: full[k] for k in wanted if k in full}}
