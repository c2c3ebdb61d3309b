"""Input from an OpenAlex filter: stream the works a ``/works?filter=…`` query selects.

Pages through ``{base_url}/works?filter=…&per-page=200&cursor=…`` (cursor paging: ``*`` first,
then each page's ``meta.next_cursor`` until it is null or a page is empty), asking only for
``id,doi``. Requests go through an :class:`~oafetch.http.client.HttpClient` of the given
configuration, so they are rate-limited, retried and identified like every other request.
The API key comes from ``[resolvers.openalex] api_key`` or ``OPENALEX_API_KEY`` (list queries
cost budget; see docs/RESOLVERS.md); OpenAlex's 403 counts as throttling.
"""

from __future__ import annotations

from collections.abc import Iterator

from oafetch.config import Config
from oafetch.errors import ResolverError
from oafetch.http.client import HttpClient
from oafetch.resolvers.base import as_list, dig, text
from oafetch.resolvers.openalex import OpenAlexResolver, openalex_api_key
from oafetch.tokens import Reason
from oafetch.urls import redact_url
from oafetch.works import IdKind, InputLine, Work, normalise_doi

PER_PAGE = 200
MAX_PAGES = 100_000  # a guard against a server that repeats its cursor forever


def _line(number: int, record: object) -> InputLine:
    doi = normalise_doi(text(dig(record, "doi")) or "")
    if doi is not None:
        return InputLine(number, Work(IdKind.DOI, doi, doi, number))
    raw = text(dig(record, "id")) or ""
    work_id = raw.rstrip("/").rsplit("/", 1)[-1].upper()
    if work_id.startswith("W") and work_id[1:].isdigit():
        return InputLine(number, Work(IdKind.OPENALEX, work_id, raw, number))
    return InputLine(number, None, f"OpenAlex result without a DOI or W id: {str(record)[:120]}")


def openalex_works(config: Config, filter: str) -> Iterator[InputLine]:
    """Yield one :class:`~oafetch.works.InputLine` per work the OpenAlex ``filter`` selects.

    Each line carries the work's DOI, or its ``W…`` id when it has none; lines are numbered
    from 1 in result order. Pages are fetched lazily, one at a time.

    Args:
        config: the run's configuration (rates, retries, User-Agent, the OpenAlex base URL).
        filter: an OpenAlex filter expression, e.g. ``"is_oa:true,publication_year:2020"``.

    Raises:
        FetchError: a page could not be fetched (throttled, refused …), after retries.
        ResolverError: a page is not the expected JSON (``bad-response``).
    """
    settings = config.resolver(OpenAlexResolver.name)
    base = (settings.base_url or OpenAlexResolver.endpoints["base_url"]).rstrip("/")
    url = f"{base}/works"
    key = openalex_api_key(config)
    secrets = (key,) if key else ()
    with HttpClient(config, secrets=secrets) as http:
        cursor: str | None = "*"
        number = 0
        for _ in range(MAX_PAGES):
            if cursor is None:
                return
            params = {
                "filter": filter,
                "per-page": str(PER_PAGE),
                "cursor": cursor,
                "select": "id,doi",
            }
            if key:
                params["api_key"] = key
            elif config.mailto:
                params["mailto"] = config.mailto
            page = http.get_json(
                url, params=params, throttle_statuses=OpenAlexResolver.throttle_statuses
            )
            results = dig(page, "results")
            if not isinstance(page, dict) or not isinstance(results, list):
                raise ResolverError(
                    Reason.BAD_RESPONSE,
                    f"openalex: expected {{meta, results}} from {redact_url(url)} "
                    f"(filter {filter!r})",
                    url=redact_url(url),
                )
            if not results:
                return
            for record in as_list(results):
                number += 1
                yield _line(number, record)
            following = text(dig(page, "meta", "next_cursor"))
            cursor = following if following != cursor else None
