"""Property test: whatever JSON shape an API answers, no resolver crashes.

Hypothesis builds JSON documents from the field names the resolvers read, with values of every
type at every depth; each document is served (``httpx.MockTransport``, below the whole client
stack) to every resolver for a handful of works. A resolver must return well-formed candidates or
raise :class:`FetchError` — never ``TypeError``/``KeyError``/``AttributeError``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import fast_config
from oafetch.errors import FetchError
from oafetch.http.client import HttpClient
from oafetch.resolvers.base import WorkIds
from oafetch.resolvers.common import is_http_url
from oafetch.resolvers.registry import build_resolvers, resolver_classes
from oafetch.works import parse_work

BASE = "http://api.test"

# Field names the resolvers read (and a few URL-ish values), so shapes get near real ones.
KEYS = [
    "best_oa_location",
    "oa_locations",
    "locations",
    "open_access",
    "oa_url",
    "url_for_pdf",
    "url",
    "pdf_url",
    "landing_page_url",
    "is_oa",
    "version",
    "license",
    "host_type",
    "results",
    "message",
    "link",
    "URL",
    "content-type",
    "data",
    "externalIds",
    "openAccessPdf",
    "hits",
    "files",
    "links",
    "self",
    "content",
    "download",
    "response",
    "docs",
    "fileMain_s",
    "files_s",
    "records",
    "pmcid",
    "doi",
    "pmid",
    "status",
    "resultList",
    "result",
    "fullTextUrlList",
    "fullTextUrl",
    "documentStyle",
    "availabilityCode",
    "archived_snapshots",
    "closest",
    "available",
    "timestamp",
    "bibjson",
    "attributes",
    "relationships",
    "primary_file",
    "downloadUrl",
    "sourceFulltextUrls",
    "id",
    "ids",
    "openalex",
    "error",
    "key",
    "type",
    "instance",
    "accessRight",
    "code",
    "webresources",
    "isOpenAccess",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 10**20),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "https://files.test/a.pdf",
            "http://x.test/landing",
            "ftp://h/x.pdf",
            "javascript:alert(1)",
            "",
            "Y",
            "true",
            "PMC123",
            "10.1234/abc",
            "application/pdf",
            "closed",
            "ok",
            "error",
        ]
    ),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
    ),
    max_leaves=25,
)
PROBES = [
    "10.1234/abc.def",
    "10.5281/zenodo.12345",
    "10.31219/osf.io/abcde",
    "arXiv:2101.00001",
    "PMC4567",
]


def _setup(tmp: Path) -> tuple[HttpClient, dict[str, Any], dict[str, bytes]]:
    current = {"body": b"null"}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=current["body"], headers={"Content-Type": "application/json"}
        )

    resolvers_cfg: dict[str, Any] = {}
    for name, cls in resolver_classes().items():
        settings_: dict[str, Any] = {key: BASE for key in cls.endpoints}
        settings_["base_url"] = BASE
        if cls.credential == "api_key":
            settings_["api_key"] = "test-key"
        if cls.credential == "email":
            settings_["email"] = "tester@oafetch.dev"
        resolvers_cfg[name] = settings_
    config = fast_config(
        tmp,
        resolvers=resolvers_cfg,
        retry={"attempts": 1},
        robots={"enabled": False},
        breaker={"enabled": False},
    )
    resolvers, _ = build_resolvers(config)
    return HttpClient(config, transport=httpx.MockTransport(handler)), resolvers, current


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(document=documents)
def test_no_resolver_crashes_on_any_json_shape(tmp_path: Path, document: Any) -> None:
    http, resolvers, current = _setup(tmp_path / "out")
    current["body"] = json.dumps(document).encode()
    crashes: list[str] = []
    with http:
        for resolver in resolvers.values():
            for text in PROBES:
                work = parse_work(text)
                ids = WorkIds.of(work)
                if not resolver.applies_to(work, ids):
                    continue
                try:
                    found = resolver.candidates(work, ids, http)
                except FetchError:
                    continue
                except Exception as exc:
                    crashes.append(f"{resolver.name}/{text}: {type(exc).__name__}: {exc}")
                    continue
                assert all(is_http_url(c.url) for c in found), (resolver.name, found)
    assert not crashes, crashes
