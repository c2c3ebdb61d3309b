"""The sandbox web: an offline imitation of the scholarly web for demos, tests and benchmarks.

Real HTTP servers on loopback addresses imitate Unpaywall, Crossref, OpenAlex, arXiv, PMC,
Europe PMC, Semantic Scholar, CORE, DOAJ, Zenodo, figshare, HAL, OSF, OpenAIRE, doi.org, the
Wayback Machine and publisher hosts, over a seeded corpus of works whose behaviours (direct OA,
landing-page-only, challenges, 429s, truncated bodies, ...) and expected outcomes are known.
It stands apart from the library: oafetch never imports it.

    from oafetch.sandbox import Corpus, Sandbox
    with Sandbox(corpus=Corpus(seed=7, n_works=500)) as sb:
        sb.base_urls["unpaywall"]   # "http://127.0.0.2:41234"
        sb.expected("10.5555/sbx.00011").expected_sha256
"""

from __future__ import annotations

from .corpus import Corpus
from .model import Behaviour, Copy, LinkStyle, Mode, Page, SandboxWork, Snapshot
from .ratecheck import RateSpec
from .sandbox import Sandbox, serve_forever

__all__ = [
    "Behaviour",
    "Copy",
    "Corpus",
    "LinkStyle",
    "Mode",
    "Page",
    "RateSpec",
    "Sandbox",
    "SandboxWork",
    "Snapshot",
    "serve_forever",
]
