"""The seeded corpus of works the sandbox web serves, with its lookup indexes.

`Corpus(seed, n_works, ...)` is a pure function of its arguments: the same seed gives the same
identifiers, behaviours, serving plans and file bytes (hence the same sha256) on every run and
machine. Building 500 works takes a fraction of a second; PDF bytes are rebuilt on demand from
a seeded pool and kept in a small LRU cache.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import string
from collections import Counter
from collections.abc import Iterator, Mapping
from types import MappingProxyType

from . import ids
from .behaviours import (
    ARXIV,
    CORE,
    DEFAULT_MIX,
    EPMC,
    FIGSHARE,
    HAL,
    OSF,
    PMC,
    ROBOTS_ERROR_OK,
    UNOBTAINABLE_REASON,
    VARIANTS,
    WAYBACK,
    ZENODO,
    Identity,
    Plan,
    allocate,
    plan_work,
)
from .model import (
    GOOD_MODES,
    PAGE_GOOD_MODES,
    Behaviour,
    Copy,
    LinkStyle,
    Mode,
    Page,
    SandboxWork,
    Snapshot,
)
from .pdf import PdfFactory
from .publishers import ARXIV_DISALLOWED, Publisher, make_publishers

MIB = 1024 * 1024
#: What follows %%EOF in a "+padded" work's file: a newline and zeros, as a real Selenium-saved
#: PDF has (tests/fixtures/real/pdf); more than a 4 KiB tail, so its end sits further back.
PADDING = b"\n" + b"\0" * 20_480

_ADJECTIVES = (
    "Robust",
    "Sparse",
    "Adaptive",
    "Stochastic",
    "Latent",
    "Coupled",
    "Emergent",
    "Scalable",
    "Bayesian",
    "Nonlinear",
    "Quantum",
    "Spectral",
)
_NOUNS = (
    "inference",
    "dynamics",
    "transport",
    "networks",
    "signalling",
    "estimation",
    "turbulence",
    "folding",
    "selection",
    "retrieval",
    "dispersion",
    "coherence",
)
_FIELDS = (
    "soil microbiomes",
    "cortical circuits",
    "glacier flow",
    "protein complexes",
    "urban mobility",
    "plasma edges",
    "coral reefs",
    "language models",
)
_FLAG_ODDS = (
    ("pmid_str", 0.5),  # ID Converter gives this work's pmid as a string, not an int
    ("hal_files_scalar", 0.5),  # HAL's files_s is a scalar string, not an array
    ("s2_empty_url", 0.5),  # S2 openAccessPdf is {"url": ""} rather than null
    ("unpaywall_landing_direct", 0.3),  # url_for_landing_page is the publisher page
    ("zenodo_extra_file", 0.4),  # the Zenodo record lists a CSV before the PDF
)


#: Corpus profiles (see `Corpus`).
PROFILES = ("default", "by_publisher", "by_oa_status")

#: The "by_publisher" profile: publisher N's works all behave as entry N-1 (cycled), so each
#: DOI prefix has its own best source: Europe PMC, HAL, PMC, the publisher's PDF that the
#: direct APIs list, the Wayback Machine, CORE.
BY_PUBLISHER: tuple[tuple[Behaviour, str], ...] = (
    (Behaviour.REPOSITORY_ONLY, "europe_pmc"),
    (Behaviour.REPOSITORY_ONLY, "hal"),
    (Behaviour.REPOSITORY_ONLY, "pmc"),
    (Behaviour.DIRECT_OA, "meta"),
    (Behaviour.ARCHIVE_ONLY, ""),
    (Behaviour.REPOSITORY_ONLY, "core"),
)

#: The "by_oa_status" profile: every publisher's works cycle through these, so the source that
#: holds a copy depends on the work's OA status, not on its publisher: the publisher's own PDF
#: (Unpaywall says gold, hybrid or bronze), a Europe PMC copy (green) or a HAL copy that
#: Unpaywall does not know of (closed).
BY_OA_STATUS: tuple[tuple[Behaviour, str], ...] = (
    (Behaviour.DIRECT_OA, "meta"),
    (Behaviour.REPOSITORY_ONLY, "europe_pmc"),
    (Behaviour.REPOSITORY_ONLY, "hal"),
)


class Corpus:
    """A deterministic corpus of works with known behaviours.

    Args:
        seed: everything is derived from it.
        n_works: number of works.
        n_publishers: publisher hosts (>= 4; see `publishers`).
        pdf_size_range: (min, max) file size in bytes, drawn log-uniformly.
        oversized_bytes: size of the `oversized` works' files (streamed, never held). They are
            obtainable for a client whose size cap is at least this (oafetch's default cap is
            512 MiB); see `SandboxWork.obtainable_within`.
        mix: behaviour -> weight (defaults to `behaviours.DEFAULT_MIX`).
        profile: ``"default"``, or ``"by_publisher"``: works go round-robin to the publishers
            and each publisher's works share one behaviour (`BY_PUBLISHER`), so which source
            holds a copy depends on the DOI prefix; every identifier is a bare DOI and `mix`
            is not used. The learned resolver order is measured on it. ``"by_oa_status"``:
            the same, but each publisher's works cycle through `BY_OA_STATUS`, so which
            source holds a copy depends on the OA status Unpaywall reports.

    Raises:
        ValueError: a bad argument, naming it.
    """

    def __init__(
        self,
        seed: int,
        n_works: int = 500,
        n_publishers: int = 6,
        *,
        pdf_size_range: tuple[int, int] = (20_000, 400_000),
        oversized_bytes: int = 60 * MIB,
        mix: Mapping[Behaviour | str, float] | None = None,
        profile: str = "default",
    ) -> None:
        if n_works < 1:
            raise ValueError(f"n_works: must be >= 1 (got {n_works})")
        low, high = pdf_size_range
        if not 1_000 <= low <= high:
            raise ValueError(f"pdf_size_range: need 1000 <= min <= max (got {pdf_size_range})")
        if oversized_bytes < 1_000:
            raise ValueError(f"oversized_bytes: must be >= 1000 (got {oversized_bytes})")
        if profile not in PROFILES:
            raise ValueError(f"profile: must be one of {', '.join(PROFILES)} (got {profile!r})")
        self.seed = seed
        self.profile = profile
        self.n_works = n_works
        self.pdf_size_range = (low, high)
        self.oversized_bytes = oversized_bytes
        self.mix: Mapping[Behaviour, float] = MappingProxyType(
            {Behaviour(k): float(v) for k, v in (mix or DEFAULT_MIX).items()}
        )
        self.publishers: list[Publisher] = make_publishers(n_publishers)
        self._publishers = {p.name: p for p in self.publishers}
        self._pdf = PdfFactory(seed)
        self._build_cached = functools.lru_cache(maxsize=256)(self._build)
        self.works: list[SandboxWork] = self._generate()
        self._index()

    # ---- generation -------------------------------------------------------------------

    def _generate(self) -> list[SandboxWork]:
        if self.profile in ("by_publisher", "by_oa_status"):
            return self._generate_by_publisher()
        rng = random.Random(f"sandbox-corpus-{self.seed}")
        behaviours = allocate(self.n_works, self.mix, rng)
        draw = ids.UniqueDraw(rng)
        seen: Counter[Behaviour] = Counter()
        works: list[SandboxWork] = []
        for index, behaviour in enumerate(behaviours):
            variants = VARIANTS.get(behaviour, ("",))
            variant = variants[seen[behaviour] % len(variants)]
            seen[behaviour] += 1
            wrng = random.Random(f"sandbox-work-{self.seed}-{index}")
            works.append(self._make_work(index, behaviour, variant, wrng, draw))
        return works

    def _generate_by_publisher(self) -> list[SandboxWork]:
        draw = ids.UniqueDraw(random.Random(f"sandbox-corpus-{self.seed}-by-publisher"))
        works: list[SandboxWork] = []
        publishers = self.publishers
        if self.profile == "by_oa_status":  # each one serves its own PDFs
            publishers = [p for p in publishers if p.robots != "error"]
        for index in range(self.n_works):
            publisher = publishers[index % len(publishers)]
            if self.profile == "by_oa_status":
                round_no = index // len(publishers)
                behaviour, variant = BY_OA_STATUS[round_no % len(BY_OA_STATUS)]
            else:
                behaviour, variant = BY_PUBLISHER[(publisher.number - 1) % len(BY_PUBLISHER)]
            wrng = random.Random(f"sandbox-work-{self.seed}-{index}-by-publisher")
            works.append(self._make_work(index, behaviour, variant, wrng, draw, publisher))
        return works

    def _repos_of(self, behaviour: Behaviour, variant: str) -> frozenset[str]:
        """The repositories that hold (or refuse) a copy of the work."""
        if behaviour is Behaviour.VERSIONS:
            return frozenset({ARXIV, HAL, PMC})
        if behaviour is Behaviour.REPOSITORY_ONLY:
            return frozenset({variant})
        if behaviour in (Behaviour.CHALLENGE, Behaviour.WRONG_PDF):
            return frozenset({variant.partition("+")[2]} - {""})
        repo = {"osf_withdrawn": OSF, "hal_notice": HAL}.get(variant)
        return frozenset({repo} if repo else ())

    def _pick_publisher(self, behaviour: Behaviour, variant: str, wrng: random.Random) -> Publisher:
        if behaviour is Behaviour.ROBOTS_DISALLOWED:
            return self._publishers["publisher2"]
        error_ok = behaviour in ROBOTS_ERROR_OK and (
            behaviour is not Behaviour.CHALLENGE or "+" in variant
        )
        choices = [p for p in self.publishers if p.robots != "error" or error_ok]
        return wrng.choice(choices)

    def _make_work(
        self,
        index: int,
        behaviour: Behaviour,
        variant: str,
        wrng: random.Random,
        draw: ids.UniqueDraw,
        forced: Publisher | None = None,
    ) -> SandboxWork:
        year = wrng.randrange(1995, 2025)
        slug = f"sbx-{index:05d}"
        repos = self._repos_of(behaviour, variant)
        repo_ids: dict[str, str] = {}
        publisher: Publisher | None = None
        arxiv_id = pmcid = pmid = None
        arxiv_primary = False
        if ARXIV in repos:
            arxiv_id = draw.draw(ids.arxiv_id)
            arxiv_primary = behaviour is Behaviour.REPOSITORY_ONLY and wrng.random() < 0.5
        if ZENODO in repos:
            rec = draw.draw(lambda r: r.randrange(1_000_000, 19_999_999))
            repo_ids.update(zenodo=rec, zenodo_key=f"{slug}.pdf")
            doi = f"10.5281/zenodo.{rec}"
        elif FIGSHARE in repos:
            article = draw.draw(lambda r: r.randrange(1_000_000, 29_999_999))
            repo_ids.update(
                figshare=article,
                figshare_file=draw.draw(lambda r: r.randrange(10_000_000, 59_999_999)),
            )
            doi = f"10.6084/m9.figshare.{article}.v1"
        elif OSF in repos:
            alnum = string.ascii_lowercase + string.digits
            guid = draw.draw(lambda r: "".join(r.choice(alnum) for _ in range(5)))
            repo_ids.update(osf=guid, osf_file=draw.draw(lambda r: f"{r.getrandbits(96):024x}"))
            doi = f"10.31234/osf.io/{guid}"
        elif arxiv_primary and forced is None:
            doi = f"10.48550/arXiv.{arxiv_id}"
        else:
            publisher = forced or self._pick_publisher(behaviour, variant, wrng)
            pub_no = publisher.number
            doi = draw.draw(lambda r: ids.publisher_doi(r, pub_no, index, year))
        if HAL in repos:
            repo_ids["hal"] = draw.draw(lambda r: f"hal-{r.randrange(100_000, 4_999_999):08d}")
        if CORE in repos:
            repo_ids["core"] = draw.draw(lambda r: r.randrange(100_000, 599_999_999))
        if publisher is not None and (
            repos & {PMC, EPMC} or variant == "pmc_not_oa" or wrng.random() < 0.1
        ):
            pmcid = "PMC" + draw.draw(lambda r: r.randrange(1_000_000, 12_999_999))
        if (pmcid and wrng.random() < 0.9) or (publisher is not None and wrng.random() < 0.15):
            pmid = draw.draw(lambda r: r.randrange(10_000_000, 39_999_999))
        openalex_id = "W" + draw.draw(lambda r: r.randrange(1_000_000_000, 4_999_999_999))
        identifier, alias = self._identifier(
            doi, arxiv_id, arxiv_primary, pmcid, pmid, openalex_id, wrng, draw
        )
        if forced is not None:  # a profile: the DOI as users mostly write it
            identifier, alias, arxiv_primary = doi, None, False
        ident = Identity(index, slug, doi, publisher, arxiv_id, pmcid, repo_ids, year)
        plan = plan_work(ident, behaviour, variant, wrng)
        flags = frozenset(name for name, odds in _FLAG_ODDS if wrng.random() < odds)
        title = (
            f"{wrng.choice(_ADJECTIVES)} {wrng.choice(_NOUNS)} and "
            f"{wrng.choice(_NOUNS)} in {wrng.choice(_FIELDS)}"
        )
        low, high = self.pdf_size_range
        size = int(math.exp(wrng.uniform(math.log(low), math.log(high))))
        offset = wrng.randrange(1 << 20)
        sources = self._sources(plan)
        obtainable = bool(sources)
        if obtainable != (behaviour not in UNOBTAINABLE_REASON or "+" in variant):
            raise RuntimeError(f"sandbox plan bug: work {index} {behaviour}/{variant} {sources}")
        sha = None
        padding = len(PADDING) if variant.endswith("+padded") else 0
        if behaviour is Behaviour.OVERSIZED:
            size = self.oversized_bytes
            digest = hashlib.sha256()
            for piece in self._pdf.oversized_chunks(size, self._key(index, doi), offset, MIB):
                digest.update(piece)
            sha = digest.hexdigest()
        else:
            body = self._build_cached(self._key(index, doi), title, size, offset)
            body += PADDING[:padding]
            size = len(body)
            if obtainable:
                sha = hashlib.sha256(body).hexdigest()
        return SandboxWork(
            index=index,
            identifier=identifier,
            behaviour=behaviour,
            variant=variant,
            doi=doi,
            title=title,
            year=year,
            size=size,
            publisher=publisher.name if publisher else None,
            arxiv_id=arxiv_id,
            arxiv_version=wrng.randrange(1, 4) if arxiv_id else 0,
            pmcid=pmcid,
            pmid=pmid,
            openalex_id=openalex_id,
            openalex_alias=alias,
            s2_id=hashlib.sha1(f"s2-{self.seed}-{index}".encode()).hexdigest(),
            corpus_id=int(draw.draw(lambda r: r.randrange(1_000_000, 299_999_999))),
            repo_ids=MappingProxyType(repo_ids),
            copies=tuple(plan.copies),
            pages=tuple(plan.pages),
            snapshots=tuple(plan.snapshots),
            flags=flags,
            expected_obtainable=obtainable,
            expected_sha256=sha,
            expected_reason="ok" if obtainable else UNOBTAINABLE_REASON[behaviour],
            sources=tuple(sorted(sources)),
            extra=MappingProxyType({"pdf_offset": offset, "padding": padding}),
        )

    def _identifier(
        self,
        doi: str,
        arxiv_id: str | None,
        arxiv_primary: bool,
        pmcid: str | None,
        pmid: str | None,
        openalex_id: str,
        wrng: random.Random,
        draw: ids.UniqueDraw,
    ) -> tuple[str, str | None]:
        """The form a user would write, and an OpenAlex merged-id alias if one is used."""
        if arxiv_primary and arxiv_id:
            return (f"arXiv:{arxiv_id}" if wrng.random() < 0.7 else arxiv_id), None
        roll = wrng.random()
        if pmcid and roll < 0.4:
            return pmcid, None
        if pmid and roll < 0.7:
            return f"PMID:{pmid}", None
        roll = wrng.random()
        if roll < 0.06:
            if wrng.random() < 0.3:
                alias = "W" + draw.draw(lambda r: r.randrange(5_000_000_000, 5_999_999_999))
                return alias, alias
            return openalex_id, None
        if roll < 0.10:
            return f"https://doi.org/{doi}", None
        if roll < 0.13:
            return f"doi:{doi}", None
        return doi, None

    def _sources(self, plan: Plan) -> set[str]:
        good = {
            i
            for i, copy in enumerate(plan.copies)
            if copy.mode in GOOD_MODES and self.robots_allows(copy.host, copy.path)
        }
        sources: set[str] = set()
        for i in good:
            sources |= plan.copies[i].listed_by
        for page in plan.pages:
            if (
                page.links in good
                and page.mode in PAGE_GOOD_MODES
                and page.style is not LinkStyle.NONE
                and self.robots_allows(page.host, page.path)
            ):
                sources |= page.listed_by
        if any(snap.kind == "pdf" for snap in plan.snapshots):
            sources.add(WAYBACK)
        return sources

    # ---- lookups ----------------------------------------------------------------------

    def _index(self) -> None:
        self._by_identifier: dict[str, SandboxWork] = {}
        self._by_doi: dict[str, SandboxWork] = {}
        self._by_arxiv: dict[str, SandboxWork] = {}
        self._by_pmcid: dict[str, SandboxWork] = {}
        self._by_pmid: dict[str, SandboxWork] = {}
        self._by_openalex: dict[str, SandboxWork] = {}
        self._by_s2: dict[str, SandboxWork] = {}
        self._by_repo: dict[tuple[str, str], SandboxWork] = {}
        self._copies: dict[tuple[str, str], tuple[SandboxWork, Copy]] = {}
        self._pages: dict[tuple[str, str], tuple[SandboxWork, Page]] = {}
        self._snapshots: dict[tuple[str, str], tuple[SandboxWork, Snapshot]] = {}
        for w in self.works:
            self._by_identifier[w.identifier] = w
            self._by_doi[ids.norm_doi(w.doi)] = w
            self._by_openalex[w.openalex_id] = w
            self._by_s2[w.s2_id] = w
            self._by_s2[f"corpusid:{w.corpus_id}"] = w
            if w.openalex_alias:
                self._by_openalex[w.openalex_alias] = w
            if w.arxiv_id:
                self._by_arxiv[w.arxiv_id] = w
            if w.pmcid:
                self._by_pmcid[w.pmcid] = w
            if w.pmid:
                self._by_pmid[w.pmid] = w
            for kind, value in w.repo_ids.items():
                self._by_repo[(kind, value)] = w
            for copy in w.copies:
                self._copies[(copy.host, copy.path)] = (w, copy)
            for page in w.pages:
                self._pages[(page.host, page.path)] = (w, page)
            for snap in w.snapshots:
                self._snapshots[(snap.host, snap.path)] = (w, snap)

    def find(self, identifier: str) -> SandboxWork | None:
        """The work `identifier` names, in any form a user or an API writes it."""
        text = identifier.strip()
        if text in self._by_identifier:
            return self._by_identifier[text]
        doi = ids.norm_doi(text)
        if ids.looks_like_doi(doi):
            return self._by_doi.get(doi)
        for key, table in (
            (ids.norm_pmcid(text), self._by_pmcid),
            (ids.norm_openalex(text), self._by_openalex),
            (ids.norm_arxiv(text), self._by_arxiv),
            (ids.norm_pmid(text), self._by_pmid),
        ):
            if key is not None and key in table:
                return table[key]
        return None

    def by_doi(self, doi: str) -> SandboxWork | None:
        """Lookup by DOI (case-insensitive; ``doi:`` and resolver-URL forms accepted)."""
        return self._by_doi.get(ids.norm_doi(doi))

    def by_arxiv(self, arxiv: str) -> SandboxWork | None:
        """Lookup by arXiv id (any version suffix)."""
        key = ids.norm_arxiv(arxiv)
        return self._by_arxiv.get(key) if key else None

    def by_pmcid(self, pmcid: str) -> SandboxWork | None:
        """Lookup by PMCID (``PMC123``)."""
        key = ids.norm_pmcid(pmcid)
        return self._by_pmcid.get(key) if key else None

    def by_pmid(self, pmid: str) -> SandboxWork | None:
        """Lookup by PubMed id."""
        key = ids.norm_pmid(pmid)
        return self._by_pmid.get(key) if key else None

    def by_openalex(self, work_id: str) -> SandboxWork | None:
        """Lookup by OpenAlex id, including merged aliases."""
        key = ids.norm_openalex(work_id)
        return self._by_openalex.get(key) if key else None

    def by_s2(self, paper_id: str) -> SandboxWork | None:
        """Lookup by Semantic Scholar paperId or ``corpusid:N``."""
        return self._by_s2.get(paper_id.lower())

    def by_repo(self, kind: str, value: str) -> SandboxWork | None:
        """Lookup by a repository id (zenodo, figshare, figshare_file, hal, osf, osf_file, core)."""
        return self._by_repo.get((kind, value))

    def copy_at(self, host: str, path: str) -> tuple[SandboxWork, Copy] | None:
        """The copy served at (host, unquoted path), if any."""
        return self._copies.get((host, path))

    def page_at(self, host: str, path: str) -> tuple[SandboxWork, Page] | None:
        """The landing page served at (host, unquoted path), if any."""
        return self._pages.get((host, path))

    def snapshot_of(self, host: str, path: str) -> tuple[SandboxWork, Snapshot] | None:
        """The Wayback snapshot of (host, path), if one exists."""
        return self._snapshots.get((host, path))

    def publisher(self, name: str) -> Publisher | None:
        """The publisher host called `name`, if it is one."""
        return self._publishers.get(name)

    def robots_allows(self, host: str, path: str) -> bool:
        """Whether a robots.txt-obeying client may fetch `path` from sandbox service `host`."""
        publisher = self._publishers.get(host)
        if publisher is not None:
            return publisher.allows(path)
        if host == "arxiv":
            return not path.startswith(ARXIV_DISALLOWED)
        return True

    # ---- bytes ------------------------------------------------------------------------

    def _key(self, index: int, doi: str) -> str:
        """The text that makes a work's file unique."""
        return f"{self.seed}:{index}:{doi}"

    def _build(self, key: str, title: str, size: int, offset: int) -> bytes:
        return self._pdf.build(key, title, size, offset)

    def pdf_bytes(self, work: SandboxWork, version: int | None = None) -> bytes:
        """The work's PDF as its good copies serve it (an older arXiv version if asked).

        For an `oversized` work this builds the whole file in memory; servers stream it with
        `oversized_chunks` instead.
        """
        offset = int(work.extra["pdf_offset"])
        key = self._key(work.index, work.doi)
        if version is not None and version < work.arxiv_version:
            key += f":v{version}"
        if work.behaviour is Behaviour.OVERSIZED:
            return b"".join(self.oversized_chunks(work, 1 << 22))
        padding = int(work.extra.get("padding", 0))
        return self._build_cached(key, work.title, work.size - padding, offset) + PADDING[:padding]

    def supplement_bytes(self, work: SandboxWork) -> bytes:
        """The work's supplementary PDF (a checklist): valid, small, never the article."""
        key = self._key(work.index, work.doi) + ":s001"
        return self._build_cached(key, f"CONSORT checklist: {work.title}", 6_000, 0)

    def other_work_bytes(self, work: SandboxWork) -> bytes:
        """Another article's PDF (its own title and DOI in its text), served at `work`'s URL."""
        other_doi = f"10.5555/sandbox.other.{self.seed}.{work.index}"
        title = "Unrelated findings on " + (
            "glacier flow" if "glacier" not in work.title else "soil"
        )
        key = f"{self.seed}:other:{other_doi}"
        return self._build_cached(key, title, 9_000, int(work.extra["pdf_offset"]) + 17)

    def notice_bytes(self, work: SandboxWork) -> bytes:
        """A publisher's access notice as a PDF: no title, no DOI, an offer to buy."""
        text = "Access denied. Purchase this article or sign in to read the full text."
        return self._build_cached(f"{self.seed}:notice:{work.publisher}", text, 3_000, 0)

    def wrong_bytes(self, work: SandboxWork, mode: Mode) -> bytes:
        """What a wrong-PDF URL of `work` serves in `mode` (see `Mode.WRONG_WORK` …)."""
        if mode is Mode.SUPPLEMENT_PDF:
            return self.supplement_bytes(work)
        if mode is Mode.NOTICE_PDF:
            return self.notice_bytes(work)
        return self.other_work_bytes(work)

    def file_bytes(self, work: SandboxWork) -> bytes | None:
        """The bytes a correct client should store for `work`, or None if unobtainable."""
        if not work.expected_obtainable:
            return None
        return self.pdf_bytes(work)

    def oversized_chunks(self, work: SandboxWork, chunk: int = 256 * 1024) -> Iterator[bytes]:
        """Stream an `oversized` work's file (`work.size` bytes) without holding it."""
        key, offset = self._key(work.index, work.doi), int(work.extra["pdf_offset"])
        return self._pdf.oversized_chunks(work.size, key, offset, chunk)
