"""Runs many works concurrently with a bounded number in flight (inputs are streamed).

Workers are threads (synchronous httpx: about twice the throughput per CPU of the async client
here). At most ``2 × workers`` works are admitted at once, so memory stays flat however long the
input is; results are yielded as they finish.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from oafetch.results import DownloadResult
from oafetch.works import InputLine

if TYPE_CHECKING:
    from oafetch.downloader import Downloader


class Scheduler:
    """Feeds input lines to a worker pool and yields results in completion order."""

    def __init__(self, downloader: Downloader, *, workers: int) -> None:
        self.downloader = downloader
        self.workers = workers

    def run(self, lines: Iterator[InputLine], *, dry_run: bool = False) -> Iterator[DownloadResult]:
        limit = self.workers * 2
        cancel = self.downloader.cancel
        with ThreadPoolExecutor(self.workers, thread_name_prefix="oafetch-work") as pool:
            pending: set[Future[DownloadResult]] = set()
            exhausted = False
            while True:
                while not exhausted and len(pending) < limit and not cancel.is_set():
                    line = next(lines, None)
                    if line is None:
                        exhausted = True
                        break
                    pending.add(pool.submit(self.downloader.process, line, dry_run=dry_run))
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
