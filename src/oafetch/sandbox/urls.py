"""Absolute URLs of the running sandbox: service name <-> ``http://ip:port``.

Known only once every socket is bound, so the corpus stores (service, path) pairs and bodies
are rendered with the live base URLs. `locate` maps a URL back to (service, path); it also
understands the real doi.org host names, so a client asking the Wayback imitation about
``https://doi.org/10.x/y`` is answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, unquote, urlsplit

#: Characters left unescaped in paths: RFC 3986 pchar plus "/", "?" (Europe PMC's render path).
PATH_SAFE = "/:@!$&'()*+,;=-._~?"
_DOI_HOSTS = frozenset({"doi.org", "dx.doi.org", "www.doi.org"})


class Urls:
    """Base URLs of the sandbox services, and the reverse lookup."""

    def __init__(self, bases: Mapping[str, str]) -> None:
        self.bases = dict(bases)
        self._by_netloc = {urlsplit(base).netloc: name for name, base in self.bases.items()}

    def url(self, service: str, path: str) -> str:
        """The absolute URL of `path` (unquoted) on `service`."""
        return self.bases[service] + quote(path, safe=PATH_SAFE)

    def doi_url(self, doi: str) -> str:
        """The sandbox's doi.org URL for `doi`."""
        return self.url("doi", f"/{doi}")

    def locate(self, url: str) -> tuple[str, str] | None:
        """(service, unquoted path[?query]) for a URL on a sandbox host, else None.

        A URL without a scheme is read as http; doi.org host names map to the `doi` service.
        """
        text = url.strip()
        if "://" not in text:
            text = "http://" + text
        parts = urlsplit(text)
        netloc = parts.netloc.lower()
        service = "doi" if netloc in _DOI_HOSTS else self._by_netloc.get(netloc)
        if service is None:
            return None
        path = unquote(parts.path) or "/"
        if parts.query:
            path += "?" + parts.query
        return service, path
