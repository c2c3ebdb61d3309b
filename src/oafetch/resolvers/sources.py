"""Every source resolver oafetch ships (the registry adds :class:`LandingPageResolver`).

The order is the documentation order (docs/RESOLVERS.md); the fallback tiers, not this list,
decide when each source is asked. ``openalex_content`` costs money and is off by default.
"""

from __future__ import annotations

from oafetch.resolvers.arxiv import ArxivResolver
from oafetch.resolvers.base import Resolver
from oafetch.resolvers.core import CoreResolver
from oafetch.resolvers.crossref import CrossrefResolver
from oafetch.resolvers.doaj import DoajResolver
from oafetch.resolvers.europe_pmc import EuropePmcResolver
from oafetch.resolvers.figshare import FigshareResolver
from oafetch.resolvers.hal import HalResolver
from oafetch.resolvers.openaire import OpenAireResolver
from oafetch.resolvers.openalex import OpenAlexResolver
from oafetch.resolvers.openalex_content import OpenAlexContentResolver
from oafetch.resolvers.osf import OsfResolver
from oafetch.resolvers.pmc import PmcResolver
from oafetch.resolvers.semantic_scholar import SemanticScholarResolver
from oafetch.resolvers.unpaywall import UnpaywallResolver
from oafetch.resolvers.wayback import WaybackResolver
from oafetch.resolvers.zenodo import ZenodoResolver

ALL: list[type[Resolver]] = [
    UnpaywallResolver,
    OpenAlexResolver,
    CrossrefResolver,
    SemanticScholarResolver,
    ArxivResolver,
    PmcResolver,
    EuropePmcResolver,
    CoreResolver,
    ZenodoResolver,
    FigshareResolver,
    HalResolver,
    OsfResolver,
    OpenAireResolver,
    DoajResolver,
    WaybackResolver,
    OpenAlexContentResolver,
]

__all__ = ["ALL"]
