"""`Sandbox`: start, address, query and stop the simulated scholarly web.

Hosts get consecutive loopback addresses (``127.0.0.{host_base}`` upwards, in the order of
`apis.FIXED_SERVICES`, then ``publisher1..N``), each its own listening socket, so oafetch's
per-host rate limiter and breakers see distinct hosts. Linux routes all of 127/8 to ``lo``;
nothing needs configuring.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from .apis import FIXED_SERVICES, Context, make_app
from .corpus import Corpus
from .files import FileServer, ServeState
from .log import RequestLog
from .model import SandboxWork
from .ratecheck import RateSpec, SlidingWindow
from .server import HostServer
from .urls import Urls

#: Server-side rates (scaled, realistic); every other host gets `DEFAULT_RATE`.
DEFAULT_RATES: Mapping[str, str] = {
    "unpaywall": "10/s",
    "crossref": "10/s",
    "openalex": "10/s",
    "openalex_content": "10/s",
    "arxiv_api": "1/s",
    "arxiv": "1/s",
}
DEFAULT_RATE = "5/s"
_POLL_INTERVAL = 0.1


class Sandbox:
    """The simulated scholarly web: one HTTP server per host, over a seeded corpus.

    Args:
        corpus: the works to serve (default: ``Corpus(seed=7)``).
        log_path: also append every request to this JSONL file.
        rates: per-service rates (``"10/s"``, ``"1/3s"``, ``"60/min"`` or requests per
            second), overriding `DEFAULT_RATES`; the key ``"*"`` sets every other host's.
        rates_enforced: refuse requests above a host's rate with 429 + Retry-After.
        host_base: last octet of the first host's address (127.0.0.{host_base}).
        port: 0 for ephemeral ports, or one fixed port used on every host address.
        rate_tolerance: fraction of the period forgiven in the rate check (min 5 ms).
        arxiv_crawl_delay: the ``Crawl-delay`` in the arxiv host's robots.txt.
        slow_seconds: how long a slow_body file takes to drip.

    Raises:
        ValueError: a bad rate, an unknown service in `rates`, or addresses beyond 127.0.0.254.
    """

    def __init__(
        self,
        corpus: Corpus | None = None,
        *,
        log_path: str | Path | None = None,
        rates: Mapping[str, str | float] | None = None,
        rates_enforced: bool = True,
        host_base: int = 2,
        port: int = 0,
        rate_tolerance: float = 0.05,
        arxiv_crawl_delay: float = 1.0,
        slow_seconds: float = 1.5,
    ) -> None:
        self.corpus = corpus if corpus is not None else Corpus(seed=7)
        self.services: tuple[str, ...] = FIXED_SERVICES + tuple(
            p.name for p in self.corpus.publishers
        )
        if host_base < 1 or host_base + len(self.services) - 1 > 254:
            raise ValueError(
                f"host_base: 127.0.0.{host_base}.. must leave room for {len(self.services)} "
                f"hosts below 127.0.0.255 (got {host_base})"
            )
        self.rates: dict[str, RateSpec] = self._rates(rates or {})
        self.rates_enforced = rates_enforced
        self.host_base = host_base
        self.port = port
        self.rate_tolerance = rate_tolerance
        self.arxiv_crawl_delay = arxiv_crawl_delay
        self.slow_seconds = slow_seconds
        self.log = RequestLog(log_path)
        self.state = ServeState()
        self._servers: dict[str, HostServer] = {}
        self._threads: list[threading.Thread] = []
        self._urls: Urls | None = None

    def _rates(self, overrides: Mapping[str, str | float]) -> dict[str, RateSpec]:
        unknown = sorted(set(overrides) - set(self.services) - {"*"})
        if unknown:
            raise ValueError(f"rates: unknown service(s) {unknown}; known: {list(self.services)}")
        fallback = overrides.get("*", DEFAULT_RATE)
        specs: dict[str, RateSpec] = {}
        for service in self.services:
            value = overrides.get(service, DEFAULT_RATES.get(service, fallback))
            try:
                specs[service] = RateSpec.parse(value)
            except ValueError as exc:
                raise ValueError(f"rates[{service!r}]: {exc}") from exc
        return specs

    # ---- lifecycle --------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Bind every host, then serve them on background threads. Idempotent.

        Raises:
            OSError: an address could not be bound (nothing is left listening).
        """
        if self._servers:
            return self
        self.log.open()
        servers: dict[str, HostServer] = {}
        try:
            for offset, service in enumerate(self.services):
                ip = f"127.0.0.{self.host_base + offset}"
                window = None
                if self.rates_enforced:
                    window = SlidingWindow(self.rates[service], self.rate_tolerance)
                servers[service] = HostServer((ip, self.port), service, self.log, window)
        except OSError:
            for server in servers.values():
                server.server_close()
            raise
        urls = Urls({s: f"http://{srv.ip}:{srv.port}" for s, srv in servers.items()})
        ctx = Context(
            corpus=self.corpus,
            urls=urls,
            files=FileServer(self.corpus, self.state, self.slow_seconds),
            rates=dict(self.rates),
            arxiv_crawl_delay=self.arxiv_crawl_delay,
        )
        for service, server in servers.items():
            server.app = make_app(service, ctx)
        self._servers, self._urls = servers, urls
        for service, server in servers.items():
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL},
                name=f"sandbox-{service}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop every host, close open connections and the JSONL log. Idempotent."""
        servers = list(self._servers.values())
        stoppers = [threading.Thread(target=s.shutdown, daemon=True) for s in servers]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        for server in servers:
            server.close_connections()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads, self._urls = {}, [], None
        self.log.close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- addresses --------------------------------------------------------------------

    @property
    def urls(self) -> Urls:
        """The live URL map.

        Raises:
            RuntimeError: the sandbox is not running.
        """
        if self._urls is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        return self._urls

    @property
    def base_urls(self) -> dict[str, str]:
        """Service name -> ``http://127.0.0.N:PORT``."""
        return dict(self.urls.bases)

    def url(self, service: str, path: str) -> str:
        """The absolute URL of `path` on `service`."""
        return self.urls.url(service, path)

    def host_of(self, service: str) -> str:
        """The loopback address of `service`."""
        return f"127.0.0.{self.host_base + self.services.index(service)}"

    def rate_policies(self) -> dict[str, str]:
        """Host address -> the rate string the host enforces (e.g. ``"10/s"``)."""
        return {self.host_of(s): str(self.rates[s]) for s in self.services}

    # ---- the corpus -------------------------------------------------------------------

    @property
    def works(self) -> list[SandboxWork]:
        """Every work of the corpus."""
        return self.corpus.works

    def expected(self, identifier: str) -> SandboxWork:
        """The work `identifier` names (any usual form: DOI URL, ``arXiv:``, ``PMID:`` ...).

        Raises:
            KeyError: no such work.
        """
        work = self.corpus.find(identifier)
        if work is None:
            raise KeyError(identifier)
        return work

    def file_bytes(self, identifier: str) -> bytes | None:
        """The bytes a correct client should store for `identifier` (None: unobtainable)."""
        return self.corpus.file_bytes(self.expected(identifier))

    # ---- the log ----------------------------------------------------------------------

    def requests(self) -> list[dict[str, Any]]:
        """Every request served so far (see `log.FIELDS`)."""
        return self.log.entries()

    def clear_log(self) -> None:
        """Forget the in-memory request log."""
        self.log.clear()

    def reset_state(self) -> None:
        """Re-arm rate-limited and flapping URLs and empty every rate window."""
        self.state.reset()
        for server in self._servers.values():
            if server.window is not None:
                server.window.reset()


def serve_forever(sandbox: Sandbox | None = None, *, stream: TextIO | None = None) -> None:
    """Run `sandbox` (default: the default corpus) until Ctrl-C.

    Prints the base URLs as one JSON object on `stream` (stdout) once every host listens.
    """
    box = sandbox if sandbox is not None else Sandbox()
    out = stream if stream is not None else sys.stdout
    stop = threading.Event()
    with box:
        out.write(json.dumps(box.base_urls) + "\n")
        out.flush()
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
