"""OpenAlex content: the copies OpenAlex cached, ``content.openalex.org/works/{W…}.pdf``.

A billed source, off by default: each download costs $0.01 (2026 terms), so it runs only when
``[resolvers.openalex_content] enabled = true`` and an API key is configured
(``[resolvers.openalex_content] api_key``, else the OpenAlex key: ``[resolvers.openalex]
api_key`` or ``OPENALEX_API_KEY``). It belongs last in the chain (tier ``paid``): it is asked
only when every free source failed.

It applies to works OpenAlex can name (an OpenAlex id, or an id the ``openalex`` source asks
by) unless OpenAlex said it has no cached copy. What is cached comes from the work record's
``has_content``/``content_urls`` that the ``openalex`` source learnt; when that is unknown it
asks ``{api_url}/works/{key}?select=id,has_content,content_urls`` (a singleton lookup: free).
It offers one file: the PDF (``.pdf``) when PDFs are accepted, else the TEI XML
(``.grobid-xml``) when ``download.accept`` has ``xml``. The key travels as the ``api_key``
parameter, as OpenAlex documents it; every output redacts it.

Spending is capped per run (``max_calls``, default 100 = $1, a free key's daily allowance;
``max_usd``; ``usd_per_call``, default 0.01). A URL is charged right before it is downloaded
(:meth:`before_fetch`), once; past the cap the download is refused with ``spend-cap``. What
was spent is in ``summary.json`` (``spending.openalex_content``).
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlencode

from oafetch.config import Config, ResolverSettings
from oafetch.errors import ConfigError
from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, Resolver, WorkIds, quote_path, text
from oafetch.resolvers.common import Found, bad_response, error_body, fetch_json, require_dict
from oafetch.resolvers.openalex import OpenAlexResolver, content_kinds, openalex_api_key
from oafetch.resolvers.spending import SpendingCap
from oafetch.tokens import Kind, Role
from oafetch.urls import canonical_url, host_of
from oafetch.works import IdKind, Work

USD_PER_CALL = 0.01  # $10 per 1,000 content downloads (OpenAlex pricing, 2026)
DEFAULT_MAX_CALLS = 100  # $1: what a free key may spend in a day
# has_content name → (file extension on content.openalex.org, kind of body, download.accept)
_FORMATS = (("pdf", "pdf", Kind.PDF, "pdf"), ("grobid_xml", "grobid-xml", Kind.XML, "xml"))


class OpenAlexContentResolver(Resolver):
    """The PDF (or TEI XML) OpenAlex cached for a work, at a price, under a cap."""

    name: ClassVar[str] = "openalex_content"
    endpoints: ClassVar[dict[str, str]] = {
        "base_url": "https://content.openalex.org",
        "api_url": "https://api.openalex.org",
    }
    options: ClassVar[dict[str, str]] = {
        "max_calls": "a whole number >= 0 (calls a run may pay for)",
        "max_usd": "a number >= 0 (dollars a run may spend)",
        "usd_per_call": "a number > 0 (the price of one download)",
    }
    credential: ClassVar[str | None] = "api_key"
    credential_env: ClassVar[tuple[str, ...]] = ("OPENALEX_API_KEY",)
    throttle_statuses: ClassVar[frozenset[int]] = OpenAlexResolver.throttle_statuses
    default_enabled: ClassVar[bool] = False

    def __init__(self, settings: ResolverSettings, config: Config) -> None:
        super().__init__(settings, config)
        extra = dict(settings.model_extra or {})
        max_calls = _number(extra, "max_calls", int, DEFAULT_MAX_CALLS, minimum=0)
        price = _number(extra, "usd_per_call", float, USD_PER_CALL, positive=True)
        self.cap = SpendingCap(
            self.name,
            usd_per_call=USD_PER_CALL if price is None else price,
            max_calls=None if max_calls is None else int(max_calls),
            max_usd=_number(extra, "max_usd", float, None, minimum=0),
        )
        accepted = config.download.accept
        self.formats = [f for f in _FORMATS if f[3] in accepted]

    @classmethod
    def configured_secret(cls, config: Config) -> str | None:
        key = config.resolver(cls.name).api_key
        if key is not None and key.get_secret_value().strip():
            return key.get_secret_value().strip()
        return openalex_api_key(config)

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        if not self.formats or OpenAlexResolver.lookup_key(work, ids) is None:
            return False
        known = ids.openalex_content
        return known is None or any(f[0] in known for f in self.formats)

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        if self.cap.exhausted():  # do not even look: nothing could be bought
            raise self.cap.refuse()
        if ids.openalex is None or ids.openalex_content is None:
            self._look_up(work, ids, http)
        work_id = ids.openalex or (work.value if work.kind is IdKind.OPENALEX else None)
        known = ids.openalex_content or frozenset()
        chosen = next((f for f in self.formats if f[0] in known), None)
        if work_id is None or chosen is None:
            return []
        found = Found(self.name)
        found.add(
            f"{self.base_url}/works/{quote_path(work_id)}.{chosen[1]}?"
            + urlencode({"api_key": self.secret or ""}),
            Role.ARTIFACT,
            kind=chosen[2],
            host_type="archive",
        )
        return found.result()

    def _look_up(self, work: Work, ids: WorkIds, http: HttpClient) -> None:
        """Ask OpenAlex (free) for the work's id and what it has cached."""
        key = OpenAlexResolver.lookup_key(work, ids)
        assert key is not None
        url = f"{self.urls['api_url']}/works/{quote_path(key)}"
        params = {"select": "id,has_content,content_urls", "api_key": self.secret or ""}
        data = fetch_json(http, url, params=params, throttle_statuses=self.throttle_statuses)
        if data is None:
            ids.learn_content(frozenset())
            return
        record = require_dict(data, self.name, url)
        if (message := error_body(record)) is not None:
            raise bad_response(self.name, url, f"error body: {message}")
        ids.learn(openalex=text(record.get("id")))
        ids.learn_content(content_kinds(record) or frozenset())

    def before_fetch(self, candidate: Candidate) -> None:
        """Charge the cap for a content URL (each once); a hop elsewhere costs nothing."""
        if host_of(candidate.url) == self.api_host:
            self.cap.charge(canonical_url(candidate.url))

    def spending(self) -> dict[str, Any]:
        return self.cap.as_dict()


def _number(
    extra: dict[str, Any],
    key: str,
    kind: type[int] | type[float],
    default: float | None,
    *,
    minimum: float | None = None,
    positive: bool = False,
) -> float | None:
    """A numeric option of ``[resolvers.openalex_content]``, checked.

    Raises:
        ConfigError: names the key, the rule and the value.
    """
    if key not in extra:
        return default
    raw = extra[key]
    rule = OpenAlexContentResolver.options[key]
    try:
        if isinstance(raw, bool) or (kind is int and isinstance(raw, float)):
            raise ValueError
        value = kind(str(raw).strip()) if isinstance(raw, str) else kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"resolvers.openalex_content.{key}: must be {rule} (got {raw!r})"
        ) from None
    if value != value or (minimum is not None and value < minimum) or (positive and value <= 0):
        raise ConfigError(f"resolvers.openalex_content.{key}: must be {rule} (got {raw!r})")
    return value
