"""Behaviours: the default mix, their variants, and the serving plan each one implies.

`allocate` turns a mix of weights into exact per-behaviour counts (largest remainder, every
behaviour at least once when the corpus is big enough) so that small test corpora still cover
everything. `plan_work` turns one work's identity, behaviour and variant into its copies,
landing pages and Wayback snapshots, recording which resolvers advertise each URL. Pure: no I/O,
all randomness from the `random.Random` passed in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from .model import Behaviour, Copy, LinkStyle, Mode, Page, Snapshot
from .publishers import RESTRICTED_PREFIX, Publisher

# Resolver names, as oafetch's resolvers are named (DESIGN.md section 2).
UNPAYWALL = "unpaywall"
OPENALEX = "openalex"
CROSSREF = "crossref"
S2 = "semantic_scholar"
LANDING = "landing_page"
DOAJ = "doaj"
OPENAIRE = "openaire"
ARXIV = "arxiv"
PMC = "pmc"
EPMC = "europe_pmc"
ZENODO = "zenodo"
FIGSHARE = "figshare"
HAL = "hal"
OSF = "osf"
CORE = "core"
WAYBACK = "wayback"

DEFAULT_MIX: Mapping[Behaviour, float] = MappingProxyType(
    {
        Behaviour.DIRECT_OA: 25.0,
        Behaviour.LANDING_ONLY: 15.0,
        Behaviour.REPOSITORY_ONLY: 20.0,
        Behaviour.ARCHIVE_ONLY: 5.0,
        Behaviour.NO_OA: 8.0,
        Behaviour.HTML_AS_PDF: 3.0,
        Behaviour.CHALLENGE: 6.0,
        Behaviour.RATE_LIMITED: 4.0,
        Behaviour.FLAPPING: 4.0,
        Behaviour.SLOW_BODY: 3.0,
        Behaviour.TRUNCATED: 3.0,
        Behaviour.OVERSIZED: 0.6,
        Behaviour.ROBOTS_DISALLOWED: 3.0,
        Behaviour.WRONG_PDF: 4.0,
    }
)

#: Variants, handed out round-robin within a behaviour so each one appears early.
VARIANTS: Mapping[Behaviour, tuple[str, ...]] = MappingProxyType(
    {
        # "+padded": the PDF is followed by padding after %%EOF, as some repositories serve it.
        Behaviour.DIRECT_OA: ("meta", "link", "meta+padded"),
        # "+cf_script": the landing page carries the script Cloudflare injects into every page.
        Behaviour.LANDING_ONLY: ("meta", "link", "anchor", "refresh", "meta+cf_script"),
        Behaviour.REPOSITORY_ONLY: (
            "arxiv",
            "pmc",
            "zenodo",
            "hal",
            "figshare",
            "osf",
            "core",
            "europe_pmc",
        ),
        Behaviour.CHALLENGE: (
            "cf403+arxiv",
            "captcha_pdf",
            "cf403",
            "captcha_pdf+pmc",
            "cf403+hal",
            "captcha_pdf",
            "cf403",
            "captcha_pdf+core",
        ),
        Behaviour.NO_OA: (
            "paywall",
            "pmc_not_oa",
            "osf_withdrawn",
            "hal_notice",
            "crossref_forbidden",
        ),
        Behaviour.FLAPPING: ("2", "1", "3"),
        # What the publisher's PDF link serves, "+<repo>": where the work's own PDF is.
        Behaviour.WRONG_PDF: ("other+hal", "supplement+core", "other", "notice+hal"),
        # How the publisher reserves TDM rights: the PDF's response headers, a rule of its
        # /.well-known/tdmrep.json, or the landing page's meta (the PDF only linked from there).
        Behaviour.TDM_RESERVED: ("header", "well_known", "meta"),
    }
)

#: The reason a client that honours TDM reservations (``tdm = true``) reports for these
#: behaviours; with reservations not read they are obtainable like any other work.
TDM_REASON: Mapping[Behaviour, str] = MappingProxyType({Behaviour.TDM_RESERVED: "tdm-reserved"})
#: The licence of the published copies of a ``versions`` work (its HAL copy is ``cc-by``).
VERSIONS_PUBLISHED_LICENSE = "cc-by-nc-nd"
#: Where a reserving publisher says how to ask for a TDM licence.
TDM_POLICY_PATH = "/tdm/policy.json"

#: The oafetch reason token a correct client reports for a work it cannot obtain.
UNOBTAINABLE_REASON: Mapping[Behaviour, str] = MappingProxyType(
    {
        Behaviour.NO_OA: "no-candidate",
        Behaviour.HTML_AS_PDF: "not-pdf",
        Behaviour.CHALLENGE: "bot-challenge",
        Behaviour.TRUNCATED: "size-mismatch",
        Behaviour.ROBOTS_DISALLOWED: "robots",
        Behaviour.WRONG_PDF: "identity-mismatch",
    }
)

#: Behaviours that may live on the publisher whose robots.txt answers 500.
ROBOTS_ERROR_OK = frozenset(
    {Behaviour.NO_OA, Behaviour.REPOSITORY_ONLY, Behaviour.ARCHIVE_ONLY, Behaviour.CHALLENGE}
)


def allocate(n: int, mix: Mapping[Behaviour, float], rng: random.Random) -> list[Behaviour]:
    """A shuffled list of `n` behaviours whose counts follow `mix` as closely as possible.

    Raises:
        ValueError: a weight is negative or all are zero.
    """
    weights = {b: float(w) for b, w in mix.items() if w}
    if any(w < 0 for w in weights.values()) or not weights:
        raise ValueError(f"mix: weights must be >= 0 and not all zero (got {dict(mix)})")
    total = sum(weights.values())
    exact = {b: n * w / total for b, w in weights.items()}
    counts = {b: math.floor(x) for b, x in exact.items()}
    if n >= len(weights):
        for b in weights:
            if counts[b] == 0:
                counts[b] = 1
    while sum(counts.values()) > n:
        biggest = max(counts, key=lambda b: (counts[b] - exact[b], counts[b]))
        counts[biggest] -= 1
    order = sorted(weights, key=lambda b: exact[b] - counts[b], reverse=True)
    i = 0
    while sum(counts.values()) < n:
        counts[order[i % len(order)]] += 1
        i += 1
    out = [b for b in Behaviour if b in counts for _ in range(counts[b])]
    rng.shuffle(out)
    return out


@dataclass
class Identity:
    """What the planner needs to know about a work before planning its copies."""

    index: int
    slug: str
    doi: str
    publisher: Publisher | None
    arxiv_id: str | None
    pmcid: str | None
    repo_ids: dict[str, str]
    year: int


@dataclass
class Plan:
    """The copies, pages and snapshots of one work."""

    copies: list[Copy] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)

    def add_copy(self, copy: Copy) -> int:
        """Append `copy`; return its index."""
        self.copies.append(copy)
        return len(self.copies) - 1


def _timestamp(rng: random.Random, year: int) -> str:
    y = min(year + rng.randrange(0, 3), 2025)
    return (
        f"{y}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
        f"{rng.randrange(24):02d}{rng.randrange(60):02d}{rng.randrange(60):02d}"
    )


class _Planner:
    def __init__(self, ident: Identity, rng: random.Random) -> None:
        self.ident = ident
        self.rng = rng
        self.plan = Plan()

    def pub_listers(self) -> set[str]:
        listers = {UNPAYWALL, OPENALEX, CROSSREF}
        if self.rng.random() < 0.6:
            listers.add(S2)
        return listers

    def page_listers(self, oa: bool) -> set[str]:
        pub = self.ident.publisher
        listers = {LANDING, OPENAIRE}
        if oa and pub is not None and pub.doaj:
            listers.add(DOAJ)
        return listers

    def publisher(
        self,
        copy_mode: Mode | None,
        copy_listers: set[str],
        page_mode: Mode,
        style: LinkStyle,
        page_listers: set[str],
        *,
        restricted: bool = False,
        flaps: int = 0,
    ) -> None:
        pub = self.ident.publisher
        if pub is None:
            return
        landing, pdf = pub.paths(self.ident.doi, self.ident.slug)
        if restricted:
            pdf = RESTRICTED_PREFIX.rstrip("/") + pdf
        if copy_mode is Mode.FORBIDDEN:
            pdf = pub.forbidden_path(self.ident.slug)
        index = None
        if copy_mode is not None:
            copy = Copy("publisher", pub.name, pdf, copy_mode, frozenset(copy_listers), flaps=flaps)
            index = self.plan.add_copy(copy)
        linked = index if copy_mode is not Mode.FORBIDDEN else None
        page_style = style if linked is not None else LinkStyle.NONE
        self.plan.pages.append(
            Page(pub.name, landing, page_mode, page_style, linked, frozenset(page_listers))
        )

    def snapshot(self, host: str, path: str, kind: str) -> None:
        self.plan.snapshots.append(
            Snapshot(host, path, _timestamp(self.rng, self.ident.year), kind)
        )

    def repository(self, repo: str, extra: set[str]) -> None:
        """Add the copies (and landing page) a repository holds for the work."""
        ident, plan, rng = self.ident, self.plan, self.rng
        ids = ident.repo_ids
        if repo == ARXIV:
            assert ident.arxiv_id is not None
            # S2 reports one openAccessPdf: the arXiv copy only when no publisher copy competes.
            s2 = not extra and rng.random() < 0.4
            listers = {ARXIV} | extra | ({S2} if s2 else set())
            idx = plan.add_copy(
                Copy(
                    "arxiv",
                    "arxiv",
                    f"/pdf/{ident.arxiv_id}",
                    Mode.OK,
                    frozenset(listers),
                    version="submittedVersion",
                    license=None,
                )
            )
            page_listers = {OPENALEX}
            datacite = ident.doi.lower().startswith("10.48550/")
            if datacite:
                page_listers |= {LANDING, OPENAIRE}  # doi.org (and OpenAIRE's DOI URL) land here
            elif rng.random() < 0.5:
                page_listers.add(UNPAYWALL)  # Unpaywall knows Crossref DOIs only
            plan.pages.append(
                Page(
                    "arxiv",
                    f"/abs/{ident.arxiv_id}",
                    Mode.OK,
                    LinkStyle.META,
                    idx,
                    frozenset(page_listers),
                )
            )
        elif repo in (PMC, EPMC):
            assert ident.pmcid is not None
            pmcid = ident.pmcid
            if repo == PMC:
                listers = {PMC} | extra | ({OPENALEX} if rng.random() < 0.5 else set())
                path = f"/{pmcid}.1/{pmcid}.1.pdf"
                plan.add_copy(Copy("pmc", "pmc_cloud", path, Mode.OK, frozenset(listers)))
            plan.add_copy(
                Copy(
                    "europe_pmc",
                    "europe_pmc_render",
                    f"/articles/{pmcid}?pdf=render",
                    Mode.OK,
                    frozenset({EPMC}),
                )
            )
            if not extra:
                plan.add_copy(
                    Copy(
                        "pmc_site",
                        "pmc_site",
                        f"/articles/{pmcid}/pdf/",
                        Mode.BOT_WALL,
                        frozenset({UNPAYWALL}),
                        version="publishedVersion",
                    )
                )
        elif repo == ZENODO:
            rec, key = ids["zenodo"], ids["zenodo_key"]
            path = f"/api/records/{rec}/files/{key}/content"
            idx = plan.add_copy(Copy("zenodo", "zenodo", path, Mode.OK, frozenset({ZENODO})))
            plan.pages.append(
                Page(
                    "zenodo",
                    f"/records/{rec}",
                    Mode.OK,
                    LinkStyle.META,
                    idx,
                    frozenset({LANDING, OPENALEX, OPENAIRE}),
                )
            )
        elif repo == FIGSHARE:
            path = f"/files/{ids['figshare_file']}"
            plan.add_copy(Copy("figshare", "figshare_files", path, Mode.OK, frozenset({FIGSHARE})))
            page = f"/articles/journal_contribution/{ident.slug}/{ids['figshare']}"
            plan.pages.append(
                Page(
                    "figshare", page, Mode.WAF, LinkStyle.NONE, None, frozenset({LANDING, OPENALEX})
                )
            )
        elif repo == HAL:
            hal = ids["hal"]
            hal_listers = frozenset({HAL} | extra)
            idx = plan.add_copy(
                Copy(
                    "hal",
                    "hal_site",
                    f"/{hal}/document",
                    Mode.OK,
                    hal_listers,
                    version="acceptedVersion",
                )
            )
            plan.add_copy(
                Copy(
                    "hal",
                    "hal_site",
                    f"/{hal}/file/{ident.slug}.pdf",
                    Mode.OK,
                    frozenset({HAL}),
                    version="acceptedVersion",
                )
            )
            plan.pages.append(
                Page("hal_site", f"/{hal}", Mode.OK, LinkStyle.META, idx, frozenset({OPENAIRE}))
            )
        elif repo == OSF:
            path = f"/download/{ids['osf_file']}/"
            plan.add_copy(
                Copy("osf", "osf_site", path, Mode.OK, frozenset({OSF}), version="submittedVersion")
            )
            plan.pages.append(
                Page(
                    "osf_site",
                    f"/{ids['osf']}/",
                    Mode.OK,
                    LinkStyle.NONE,
                    None,
                    frozenset({LANDING, UNPAYWALL}),
                )
            )
        elif repo == CORE:
            core = ids["core"]
            core_listers = frozenset({CORE} | extra)
            plan.add_copy(
                Copy("core", "core_site", f"/download/pdf/{core}.pdf", Mode.OK, core_listers)
            )
            plan.add_copy(
                Copy("core", "core_site", f"/download/{core}.pdf", Mode.OK, frozenset({CORE}))
            )
        else:  # pragma: no cover - guarded by VARIANTS
            raise ValueError(f"unknown repository {repo!r}")


_SIMPLE_MODES: Mapping[Behaviour, Mode] = MappingProxyType(
    {
        Behaviour.HTML_AS_PDF: Mode.HTML_AS_PDF,
        Behaviour.RATE_LIMITED: Mode.RATE_LIMITED,
        Behaviour.FLAPPING: Mode.FLAPPING,
        Behaviour.SLOW_BODY: Mode.SLOW,
        Behaviour.TRUNCATED: Mode.TRUNCATED,
        Behaviour.OVERSIZED: Mode.OVERSIZED,
        Behaviour.ROBOTS_DISALLOWED: Mode.OK,
    }
)


_WRONG_MODES: Mapping[str, Mode] = MappingProxyType(
    {"other": Mode.WRONG_WORK, "supplement": Mode.SUPPLEMENT_PDF, "notice": Mode.NOTICE_PDF}
)


def plan_work(ident: Identity, behaviour: Behaviour, variant: str, rng: random.Random) -> Plan:
    """The copies, pages and snapshots that make `behaviour` happen for one work."""
    p = _Planner(ident, rng)
    pub = ident.publisher
    style, _, extra = variant.partition("+")
    if behaviour is Behaviour.DIRECT_OA:
        p.publisher(Mode.OK, p.pub_listers(), Mode.OK, LinkStyle(style), p.page_listers(True))
        if pub is not None and rng.random() < 0.25:
            p.snapshot(pub.name, pub.paths(ident.doi, ident.slug)[1], "pdf")
    elif behaviour is Behaviour.LANDING_ONLY:
        listers = p.page_listers(True) | {UNPAYWALL, OPENALEX}
        if rng.random() < 0.3:
            listers.add(CROSSREF)  # a content-type "unspecified" link that serves HTML
        page_mode = Mode.CF_SCRIPT if extra == "cf_script" else Mode.OK
        p.publisher(Mode.OK, set(), page_mode, LinkStyle(style), listers)
    elif behaviour is Behaviour.REPOSITORY_ONLY:
        p.publisher(None, set(), Mode.OK, LinkStyle.NONE, p.page_listers(False))
        p.repository(variant, set())
    elif behaviour is Behaviour.ARCHIVE_ONLY:
        assert pub is not None
        landing, pdf = pub.paths(ident.doi, ident.slug)
        p.publisher(
            Mode.GONE,
            {UNPAYWALL, OPENALEX, CROSSREF},
            Mode.GONE,
            LinkStyle.META,
            {LANDING, OPENAIRE},
        )
        p.snapshot(pub.name, pdf, "pdf")
        p.snapshot(pub.name, landing, "html")
        p.snapshot("doi", f"/{ident.doi}", "html")
    elif behaviour is Behaviour.NO_OA:
        if variant == "osf_withdrawn":
            path = f"/{ident.repo_ids['osf']}/"
            p.plan.pages.append(
                Page("osf_site", path, Mode.OK, LinkStyle.NONE, None, frozenset({LANDING}))
            )
        elif variant == "crossref_forbidden":
            p.publisher(Mode.FORBIDDEN, {CROSSREF}, Mode.OK, LinkStyle.NONE, p.page_listers(False))
        else:
            p.publisher(None, set(), Mode.OK, LinkStyle.NONE, p.page_listers(False))
        if pub is not None and rng.random() < 0.3:
            p.snapshot(pub.name, pub.paths(ident.doi, ident.slug)[0], "html")
    elif behaviour is Behaviour.WRONG_PDF:
        # The metadata sources and the landing page's citation_pdf_url all name one PDF URL
        # that serves another document; the work's own PDF, if any, is in a repository.
        kind, _, repo = variant.partition("+")
        mode = _WRONG_MODES[kind]
        p.publisher(mode, {UNPAYWALL, OPENALEX, CROSSREF}, Mode.OK, LinkStyle.META, {LANDING})
        if repo:
            p.repository(repo, set())
    elif behaviour is Behaviour.TDM_RESERVED:
        if variant == "meta":  # only the reserving page links the PDF
            p.publisher(Mode.OK, set(), Mode.OK, LinkStyle.META, {LANDING, UNPAYWALL, OPENALEX})
        else:
            p.publisher(
                Mode.OK, {UNPAYWALL, OPENALEX, CROSSREF}, Mode.OK, LinkStyle.META, {LANDING}
            )
    elif behaviour is Behaviour.VERSIONS:
        # The direct tier knows the preprint and (OpenAlex) the accepted manuscript on HAL;
        # only the repositories tier knows the published article (PMC, Europe PMC).
        p.publisher(None, set(), Mode.OK, LinkStyle.NONE, p.page_listers(False))
        p.repository(ARXIV, {OPENALEX, UNPAYWALL})
        p.repository(HAL, {OPENALEX})
        p.repository(PMC, {PMC})
        p.plan.copies = [
            replace(c, license=VERSIONS_PUBLISHED_LICENSE) if c.version == "publishedVersion" else c
            for c in p.plan.copies
        ]
    elif behaviour is Behaviour.RETRACTED:
        p.publisher(Mode.OK, p.pub_listers(), Mode.OK, LinkStyle.META, p.page_listers(True))
    elif behaviour is Behaviour.CHALLENGE:
        kind, _, repo = variant.partition("+")
        mode = Mode.CHALLENGE if kind == "cf403" else Mode.CAPTCHA_PDF
        page_mode = Mode.CHALLENGE if kind == "cf403" else Mode.OK
        p.publisher(mode, p.pub_listers(), page_mode, LinkStyle.META, p.page_listers(True))
        if repo:
            p.repository(repo, {UNPAYWALL, OPENALEX})
    else:
        mode = _SIMPLE_MODES[behaviour]
        flaps = int(variant) if behaviour is Behaviour.FLAPPING else 0
        restricted = behaviour is Behaviour.ROBOTS_DISALLOWED
        p.publisher(
            mode,
            p.pub_listers(),
            Mode.OK,
            LinkStyle.META,
            p.page_listers(True),
            restricted=restricted,
            flaps=flaps,
        )
    return p.plan
