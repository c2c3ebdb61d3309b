"""Point every resolver at the sandbox web: the ``Config`` keyword arguments for a sandbox run.

The sandbox (``oafetch.sandbox``, which the library never imports) serves each imitated API on
its own loopback address; :func:`config_for` maps its service names to the resolvers' endpoint
keys, adds the sandbox's per-host rates, an email Unpaywall accepts and a CORE key. A resolver
whose services are missing from ``base_urls`` is disabled rather than left pointing at the
real internet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: An address the sandbox's Unpaywall accepts (it refuses ``@example.com`` like the real one).
SANDBOX_EMAIL = "sandbox@oafetch.dev"
#: Any non-empty bearer token satisfies the sandbox's CORE.
SANDBOX_CORE_KEY = "sandbox-core-key"

# resolver -> {endpoint key: (sandbox service, path appended to its base URL)}
_ENDPOINTS: dict[str, dict[str, tuple[str, str]]] = {
    "unpaywall": {"base_url": ("unpaywall", "")},
    "crossref": {"base_url": ("crossref", "")},
    "openalex": {"base_url": ("openalex", "")},
    # billed and off by default: pointed at the sandbox, switched on only by the caller
    "openalex_content": {"base_url": ("openalex_content", ""), "api_url": ("openalex", "")},
    "semantic_scholar": {"base_url": ("semantic_scholar", "")},
    "arxiv": {"base_url": ("arxiv_api", ""), "files_url": ("arxiv", "")},
    "pmc": {
        "base_url": ("pmc_idconv", ""),
        "idconv_url": ("pmc_idconv", "/tools/idconv/api/v1/articles"),
        "oa_url": ("pmc_oa", "/pmc/utils/oa/oa.fcgi"),
        "cloud_url": ("pmc_cloud", ""),
        # The OA service's ftp:// hrefs name its own host; served over HTTP they are gone (404).
        "ftp_url": ("pmc_oa", ""),
    },
    "europe_pmc": {
        "base_url": ("europe_pmc", "/europepmc/webservices/rest"),
        "render_url": ("europe_pmc_render", ""),
    },
    "core": {"base_url": ("core", "")},
    "doaj": {"base_url": ("doaj", "")},
    "zenodo": {"base_url": ("zenodo", "")},
    "figshare": {"base_url": ("figshare", "")},
    "hal": {"base_url": ("hal", "")},
    "osf": {"base_url": ("osf", "")},
    "openaire": {"base_url": ("openaire", "")},
    "landing_page": {"base_url": ("doi", "")},
    "wayback": {
        "base_url": ("wayback", ""),
        "cdx_url": ("wayback", ""),
        "web_url": ("wayback", ""),
    },
}


def config_for(base_urls: Mapping[str, str], rate_policies: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for ``oafetch.Config(...)`` that aim every resolver at the sandbox.

    Args:
        base_urls: sandbox service name → ``http://127.0.0.N:PORT`` (``Sandbox.base_urls``).
        rate_policies: host → rate string the sandbox enforces (``Sandbox.rate_policies()``).

    Returns:
        ``{"mailto": …, "rates": …, "resolvers": {name: {"base_url": …, …}}}``; callers add
        their own keys (``out_dir``, ``workers`` …) before building the ``Config``.
    """
    resolvers: dict[str, dict[str, Any]] = {}
    for name, endpoints in _ENDPOINTS.items():
        settings: dict[str, Any] = {}
        for key, (service, path) in endpoints.items():
            base = base_urls.get(service)
            if base is None:
                settings = {"enabled": False}
                break
            settings[key] = base.rstrip("/") + path
        resolvers[name] = settings
    if resolvers["core"].get("enabled", True):
        resolvers["core"]["api_key"] = SANDBOX_CORE_KEY
    return {"mailto": SANDBOX_EMAIL, "rates": dict(rate_policies), "resolvers": resolvers}
