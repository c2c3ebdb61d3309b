"""``oafetch demo``: start the sandbox scholarly web, run a real batch against it, report.

Everything is offline and real: HTTP servers on loopback addresses imitating the scholarly
APIs, publishers and an archive; oafetch resolves, downloads, verifies and records as it would
on the internet. The report checks the outcome against what the sandbox knows is obtainable.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from oafetch import outdir
from oafetch.config import Config
from oafetch.downloader import Downloader
from oafetch.errors import OutputDirError
from oafetch.results import DownloadResult
from oafetch.runstats import RunStats, version_table
from oafetch.tokens import Outcome
from oafetch.works import parse_work

MARKER = ".oafetch-demo"


def _fresh(out: Path) -> None:
    """Empty a previous demo output (only ever a directory the demo itself created).

    Raises:
        OutputDirError: ``out`` holds files the demo did not make; marking it would let the
            next demo run delete them.
    """
    if out.exists() and (out / MARKER).exists():
        shutil.rmtree(out)
    elif out.is_dir() and any(out.iterdir()):
        raise OutputDirError(
            f"demo output {out}: the directory is not empty and was not made by `oafetch demo`; "
            "the demo empties its output on every run, so choose a new --out or empty this one"
        )
    out.mkdir(parents=True, exist_ok=True)
    # never written through a link planted at the marker's name
    outdir.write_atomic(out, MARKER, b"created by `oafetch demo`; safe to delete\n", fsync=False)


def demo_config(sandbox: Any, out: Path, **overrides: Any) -> Config:
    """A configuration pointing every resolver at ``sandbox`` and matching its rate limits."""
    from oafetch.sandbox_config import config_for

    settings = config_for(sandbox.base_urls, sandbox.rate_policies())
    settings.update(out_dir=out, **overrides)
    return Config.load(None, **settings)


def identity_line(
    results: list[DownloadResult], works: list[Any], by_id: dict[str, Any], out: Path
) -> str:
    """The identity check's line of the demo summary: verdicts of the stored PDFs, files
    quarantined, and wrong-work PDFs stored as the work (0 when the check does its job)."""
    stored = [r for r in results if r.outcome is Outcome.SUCCESS]
    counts = Counter(r.identity or "off" for r in stored)
    quarantined = sum(len(r.quarantined) for r in results)
    wrong = sum(
        1
        for r in stored
        if r.work_id in by_id
        and by_id[r.work_id].expected_sha256 != r.sha256
        and by_id[r.work_id].behaviour == "wrong_pdf"
    )
    planted = sum(1 for w in works if w.behaviour == "wrong_pdf")
    return (
        f"identity: {counts['match']} match, {counts['unknown']} unknown, "
        f"{counts['off']} not checked; {quarantined} wrong PDFs quarantined "
        f"({out / outdir.QUARANTINE}/) for the {planted} works whose links lead to one, "
        f"{wrong} stored as the work"
    )


def version_line(results: list[DownloadResult]) -> str:
    """The version/licence line of the demo summary: stored works by version, then licence."""
    stats = RunStats("demo")
    for result in results:
        stats.add(result)
    parts = [
        f"{sum(licenses.values())} {version} ("
        + ", ".join(f"{n} {lic}" for lic, n in licenses.items())
        + ")"
        for version, licenses in version_table(stats.versions).items()
    ]
    retracted = f"; {stats.retracted} retracted" if stats.retracted else ""
    return "versions: " + ("; ".join(parts) or "none stored") + retracted


def run_demo(args: argparse.Namespace) -> int:
    from oafetch.sandbox import Corpus, Sandbox

    out = Path(args.out)
    _fresh(out)
    corpus = Corpus(seed=args.seed, n_works=max(args.works, 1))
    print(f"starting the sandbox scholarly web ({len(corpus.works)} works) …")
    with Sandbox(corpus=corpus) as sandbox:
        # The sandbox's ports change on every start: a shared cache would only fill up.
        config = demo_config(sandbox, out, workers=8, cache={"enabled": False})
        works = sandbox.works[: args.works]
        started = time.time()
        with Downloader(config, resume=False) as dl:
            results = list(dl.run([w.identifier for w in works]))
        elapsed = time.time() - started
    by_id = {parse_work(w.identifier).work_id: w for w in works}
    ok = [r for r in results if r.outcome is Outcome.SUCCESS]
    obtainable = [w for w in works if w.expected_obtainable]
    correct = sum(
        1 for r in ok if r.work_id in by_id and by_id[r.work_id].expected_sha256 == r.sha256
    )
    print()
    print(
        f"yield: {len(ok)}/{len(works)} works stored "
        f"({100 * len(ok) / max(1, len(obtainable)):.0f}% of the {len(obtainable)} obtainable), "
        f"{correct} byte-identical to the source, in {elapsed:.1f}s"
    )
    print(identity_line(results, works, by_id, out))
    print(version_line(results))
    for result in ok[:5]:
        print(f"  {result.work_id:<40} → {result.path}")
    if len(ok) > 5:
        print(f"  … and {len(ok) - 5} more under {out / 'pdf'}/")
    print(
        f"manifest: {out / 'manifest.jsonl'}   attempts: {out / 'attempts.csv'}   "
        f"summary: {out / 'summary.json'}"
    )
    db = out / "telemetry.sqlite"
    if db.exists():
        print(f"telemetry: {db}  (spans: {out / 'spans.jsonl'})")
        try:
            from oafetch.telemetry.analytics_cli import main as telemetry_main
        except ImportError:
            return 0
        print()
        telemetry_main(["slo", "--db", str(db), "--latest"])
        print(
            "(By design the sandbox holds works with no open-access copy, so the yield SLI —\n"
            " stored ÷ all works — stays below 100 %; the demo starts with an empty HTTP cache\n"
            " and the sandbox's API rate limits, so the cache-hit and rate-delay SLIs show a\n"
            " cold, politeness-bound first run. `oafetch telemetry slo` exits 1 in that case.)"
        )
    return 0
