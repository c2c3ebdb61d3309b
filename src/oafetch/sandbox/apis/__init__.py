"""The service imitations, by sandbox service name.

`FIXED_SERVICES` is the order hosts are given loopback addresses in (127.0.0.2 upwards, then
the publishers), so a service keeps its address from run to run.
"""

from __future__ import annotations

from .aggregators import CoreApp, CoreSiteApp, DoajApp, HalApp, HalSiteApp, OpenAireApp
from .arxiv import ArxivApiApp, ArxivSiteApp
from .base import App, Context, SiteApp
from .deposits import FigshareApp, OsfApp, OsfSiteApp, ZenodoApp
from .metadata import CrossrefApp, SemanticScholarApp, UnpaywallApp
from .openalex import OpenAlexApp, OpenAlexContentApp
from .pmc import EuropePmcApp, EuropePmcRenderApp, IdConvApp, PmcCloudApp, PmcOaApp, PmcSiteApp
from .web import DoiApp, PublisherApp, WaybackApp

APPS: dict[str, type[App]] = {
    "unpaywall": UnpaywallApp,
    "crossref": CrossrefApp,
    "openalex": OpenAlexApp,
    "arxiv_api": ArxivApiApp,
    "arxiv": ArxivSiteApp,
    "pmc_idconv": IdConvApp,
    "pmc_oa": PmcOaApp,
    "pmc_cloud": PmcCloudApp,
    "pmc_site": PmcSiteApp,
    "europe_pmc": EuropePmcApp,
    "europe_pmc_render": EuropePmcRenderApp,
    "semantic_scholar": SemanticScholarApp,
    "core": CoreApp,
    "doaj": DoajApp,
    "zenodo": ZenodoApp,
    "figshare": FigshareApp,
    "figshare_files": SiteApp,
    "hal": HalApp,
    "hal_site": HalSiteApp,
    "osf": OsfApp,
    "osf_site": OsfSiteApp,
    "openaire": OpenAireApp,
    "doi": DoiApp,
    "wayback": WaybackApp,
    "core_site": CoreSiteApp,
    "openalex_content": OpenAlexContentApp,  # last: the hosts above keep their addresses
}
FIXED_SERVICES: tuple[str, ...] = tuple(APPS)


def make_app(service: str, ctx: Context) -> App:
    """The imitation of `service` (``publisherN`` for publisher hosts)."""
    if service.startswith("publisher"):
        return PublisherApp(service, ctx)
    return APPS[service](service, ctx)


__all__ = ["APPS", "FIXED_SERVICES", "App", "Context", "make_app"]
