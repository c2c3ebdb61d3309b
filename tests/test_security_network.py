"""Network policy: only http(s), no redirect from a public host into private address space (SSRF),
credential headers dropped on a cross-host hop — and loopback-to-loopback (sandbox, tests) allowed.

The SSRF cases drive :class:`GuardTransport` (and the whole client stack) over
``httpx.MockTransport`` with a public-looking origin, and a fake DNS for host names: no packet
leaves the process.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from faults import fetch_one, quick_loopback, stored_files
from loopback import Loopback, pdf_bytes
from oafetch import Outcome, Reason
from oafetch.errors import FetchError
from oafetch.http.client import HttpClient
from oafetch.http.transports import GuardTransport
from oafetch.tokens import Role

PUBLIC = "93.184.216.34"  # a public address (no packet is sent to it)

# Fake DNS: names a hostile redirect might use. Literal addresses never reach the resolver.
FAKE_DNS = {
    "files.publisher.test": "93.184.216.35",
    "intranet.publisher.test": "10.20.30.40",
    "metadata.google.internal": "169.254.169.254",
    "localhost": "127.0.0.1",
}


@pytest.fixture
def server() -> Iterator[Loopback]:
    """conftest's loopback server, stopped faster (see ``faults.quick_loopback``)."""
    yield from quick_loopback()


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host in FAKE_DNS:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (FAKE_DNS[host], 0))]
        return real(host, *args, **kwargs)  # literal forms (127.1, 0x7f.1, 2130706433)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)


def _redirecting(target: str, seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/start":
            return httpx.Response(302, headers={"Location": target})
        return httpx.Response(200, content=b"reached")

    return httpx.MockTransport(handler)


def _guarded_get(
    origin: str, target: str, *, headers: dict[str, str] | None = None
) -> tuple[httpx.Response | FetchError, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    guard = GuardTransport(_redirecting(target, seen), block_private_redirects=True)
    with httpx.Client(transport=guard, follow_redirects=True) as client:
        try:
            return client.get(f"{origin}/start", headers=headers), seen
        except FetchError as exc:
            return exc, seen


PRIVATE_TARGETS = [
    "http://127.0.0.1/admin",
    "http://127.1/admin",  # short form of 127.0.0.1
    "http://2130706433/admin",  # 127.0.0.1 as one number
    "http://0x7f.0.0.1/admin",  # hex
    "http://localhost:8080/",
    "http://10.0.0.5/",
    "http://172.16.3.4/",
    "http://192.168.1.1/router",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://intranet.publisher.test/secret.pdf",  # a name that resolves inside
    "http://0.0.0.0:22/",
    "http://[::1]/",
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
]


@pytest.mark.usefixtures("fake_dns")
@pytest.mark.parametrize("target", PRIVATE_TARGETS)
def test_a_redirect_from_a_public_host_into_private_space_is_refused(target: str) -> None:
    outcome, seen = _guarded_get(f"http://{PUBLIC}", target)
    assert isinstance(outcome, FetchError), f"{target} was followed"
    assert outcome.reason is Reason.REDIRECT
    assert f"refused to follow public host {PUBLIC} into private address" in str(outcome)
    assert [r.url.path for r in seen] == ["/start"], "the private target was never requested"


@pytest.mark.usefixtures("fake_dns")
@pytest.mark.parametrize(
    ("origin", "target"),
    [
        (f"http://{PUBLIC}", "http://files.publisher.test/paper.pdf"),  # public → public
        ("http://127.0.0.1:8000", "http://127.0.0.3:9000/paper.pdf"),  # loopback → loopback
        ("http://127.0.0.2", "http://localhost/paper.pdf"),
        ("http://10.0.0.1", "http://192.168.0.9/paper.pdf"),  # inside → inside (intranet use)
    ],
)
def test_redirects_that_stay_public_or_stay_inside_are_followed(origin: str, target: str) -> None:
    outcome, seen = _guarded_get(origin, target)
    assert isinstance(outcome, httpx.Response) and outcome.content == b"reached"
    assert len(seen) == 2


def test_the_ssrf_check_can_be_switched_off() -> None:
    seen: list[httpx.Request] = []
    guard = GuardTransport(_redirecting("http://127.0.0.1/x", seen), block_private_redirects=False)
    with httpx.Client(transport=guard, follow_redirects=True) as client:
        assert client.get(f"http://{PUBLIC}/start").content == b"reached"


@pytest.mark.usefixtures("fake_dns")
def test_credential_headers_are_dropped_on_a_cross_host_hop() -> None:
    secret = {"x-api-key": "k-123456", "Authorization": "Bearer t-123456", "Cookie": "s=1"}
    outcome, seen = _guarded_get(
        f"http://{PUBLIC}", "http://files.publisher.test/paper.pdf", headers=secret
    )
    assert isinstance(outcome, httpx.Response)
    first, second = seen
    assert first.headers["x-api-key"] == "k-123456"
    assert not {"x-api-key", "authorization", "cookie"} & {k.lower() for k in second.headers}


@pytest.mark.usefixtures("fake_dns")
def test_the_whole_client_stack_refuses_a_metadata_redirect_with_a_clear_reason(
    make_config: Any,
) -> None:
    seen: list[httpx.Request] = []
    inner = _redirecting("http://169.254.169.254/latest/meta-data/iam", seen)
    config = make_config(robots={"enabled": False})
    with (
        HttpClient(config, transport=inner) as http,
        pytest.raises(FetchError) as caught,
        http.stream(f"http://{PUBLIC}/start", role=Role.ARTIFACT) as response,
    ):
        response.read()
    assert caught.value.reason is Reason.REDIRECT
    assert "169.254.169.254" in str(caught.value) and PUBLIC in str(caught.value)
    assert len(seen) == 1


@pytest.mark.parametrize(
    "location",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/pub/paper.pdf",
        "gopher://127.0.0.1:70/_GET",
        "data:application/pdf;base64,JVBERi0xLjQK",
        "javascript:alert(1)",
        "dict://127.0.0.1:11211/stat",
    ],
)
def test_a_redirect_to_a_non_http_scheme_is_refused(
    server: Loopback, make_config: Any, tmp_path: Path, location: str
) -> None:
    server.routes["/go"] = lambda h: h.reply(302, b"", "text/plain", {"Location": location})
    result = fetch_one(make_config, server.url("/go"))
    assert result.outcome is Outcome.ERROR and result.reason is Reason.REDIRECT, result
    assert not stored_files(tmp_path / "out")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x.pdf"])
def test_a_non_http_url_is_never_fetched(make_config: Any, url: str) -> None:
    config = make_config()
    with (
        HttpClient(config) as http,
        pytest.raises(FetchError) as caught,
        http.stream(url, role=Role.ARTIFACT),
    ):
        pass
    assert caught.value.reason is Reason.REDIRECT
    assert "refused" in str(caught.value)


def test_loopback_to_loopback_redirects_work_end_to_end(server: Loopback, make_config: Any) -> None:
    body = pdf_bytes(3000)
    server.routes["/moved"] = lambda h: h.reply(301, b"", "text/plain", {"Location": "/paper.pdf"})
    server.routes["/paper.pdf"] = lambda h: h.reply(200, body, "application/pdf")
    result = fetch_one(make_config, server.url("/moved"))
    assert result.outcome is Outcome.SUCCESS and result.path is not None
    assert result.path.read_bytes() == body


@pytest.mark.usefixtures("fake_dns")
@pytest.mark.parametrize("location", ["http://169.254.169.254/robots.txt", "file:///etc/passwd"])
def test_a_robots_txt_redirect_obeys_the_same_policy(make_config: Any, location: str) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path == "/robots.txt":
            return httpx.Response(301, headers={"Location": location})
        return httpx.Response(200, content=pdf_bytes())

    config = make_config()  # robots on
    with (
        HttpClient(config, transport=httpx.MockTransport(handler)) as http,
        pytest.raises(FetchError) as caught,
        http.stream(f"http://{PUBLIC}/paper.pdf", role=Role.ARTIFACT),
    ):
        pass
    assert caught.value.reason is Reason.ROBOTS, "an unfollowable robots.txt disallows"
    assert seen == [f"http://{PUBLIC}/robots.txt"], "the redirect target was never requested"


@pytest.mark.usefixtures("fake_dns")
def test_a_public_source_naming_a_private_url_is_refused_when_its_origin_is_given(
    make_config: Any, tmp_path: Path
) -> None:
    """An API answer (not a redirect) pointing into private space: the caller passes the API's
    host as ``origin_host`` and the guard applies the same rule to the first hop."""
    from oafetch.download import download
    from oafetch.storage import Storage

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=pdf_bytes())

    config = make_config(robots={"enabled": False})
    storage = Storage(tmp_path / "out", fsync=False)
    storage.prepare()
    with HttpClient(config, transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(FetchError) as caught:
            download(
                http,
                "http://169.254.169.254/latest/meta-data/",
                work_id="w",
                storage=storage,
                policy=config.download,
                source="openalex",
                origin_host="api.openalex.org",
            )
        assert caught.value.reason is Reason.REDIRECT and not seen
        # without an origin (a URL the user gave) the same address is the user's choice
        allowed = download(
            http,
            "http://10.0.0.8/paper.pdf",
            work_id="w2",
            storage=storage,
            policy=config.download,
            source="direct",
        )
    assert allowed.stored is not None and seen == ["http://10.0.0.8/paper.pdf"]
