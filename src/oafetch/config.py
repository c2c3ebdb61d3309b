"""One frozen configuration tree, loaded from ``oafetch.toml`` + ``OAFETCH_*`` env + flags.

Precedence, in one place (:meth:`Config.settings_customise_sources`): keyword arguments (the
CLI's flags) > environment (``OAFETCH_MAILTO``, ``OAFETCH_HTTP__READ_TIMEOUT_S`` …, nested with
``__``) > the TOML file > defaults. Every object is frozen. A bad value fails at start with a
:class:`~oafetch.errors.ConfigError` naming the key, the rule and the value.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from oafetch._version import __version__
from oafetch.candidate_policy import ANY, allowed_licenses, preferred_versions
from oafetch.envsource import EnvSource
from oafetch.errors import ConfigError
from oafetch.rates import DEFAULT_RATES, RatePolicy, parse_rate

PROJECT_URL = "https://github.com/oafetch/oafetch"
KIB = 1024
MIB = 1024 * KIB


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HttpConfig(_Frozen):
    """The shared HTTP client: identity, timeouts, pool limits, redirects."""

    user_agent: str | None = None  # default: "oafetch/<ver> (+<url>; mailto:<mailto>)"
    connect_timeout_s: float = Field(10.0, gt=0, le=600)
    read_timeout_s: float = Field(30.0, gt=0, le=3600)
    write_timeout_s: float = Field(30.0, gt=0, le=3600)
    pool_timeout_s: float = Field(30.0, gt=0, le=3600)
    max_connections: int = Field(64, ge=1, le=4096)
    max_keepalive_connections: int = Field(32, ge=0, le=4096)
    max_redirects: int = Field(10, ge=0, le=50)
    verify_tls: bool = True
    # Refuse redirects from public hosts into loopback/private/link-local addresses (SSRF).
    block_private_redirects: bool = True


class PolitenessConfig(_Frozen):
    """Rate limiting switches; per-host policies live in the ``[rates]`` table."""

    enabled: bool = True
    default_rate: str = "1/s"
    max_wait_s: float = Field(
        60.0, ge=0, le=86400
    )  # a longer wait defers the request (rate-budget)
    # In a batch, a file whose host's next slot is further away than this is parked and the
    # worker moves on; the scheduler resumes the work when the slot comes.
    defer_after_s: float = Field(1.0, ge=0, le=3600)
    max_deferrals: int = Field(5, ge=0, le=1000)
    adapt_to_headers: bool = True  # slow down to x-rate-limit-* headers when they ask for less

    @field_validator("default_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value


class RetryConfig(_Frozen):
    """Retries for 429/502/503/504, timeouts and connection errors; capped in count and time."""

    attempts: int = Field(4, ge=1, le=20)
    total_s: float = Field(120.0, gt=0, le=3600)
    backoff_initial_s: float = Field(0.5, ge=0, le=60)
    backoff_max_s: float = Field(30.0, ge=0, le=600)
    jitter_s: float = Field(0.5, ge=0, le=60)
    retry_after_cap_s: float = Field(60.0, ge=0, le=3600)


class BreakerConfig(_Frozen):
    """Per-host circuit breakers: ``fail_max`` consecutive 5xx/transport failures open it."""

    enabled: bool = True
    fail_max: int = Field(5, ge=1, le=1000)
    reset_timeout_s: float = Field(60.0, gt=0, le=86400)


class DownloadConfig(_Frozen):
    """What a body must be to be stored."""

    max_bytes: int = Field(512 * MIB, ge=1)
    min_pdf_bytes: int = Field(1 * KIB, ge=0)
    accept: tuple[Literal["pdf", "html", "xml"], ...] = ("pdf",)
    fsync: bool = True  # durable: fsync before the rename that publishes a file
    # Also the most a compressed body may expand per decoding step (a gzip bomb stays small).
    chunk_bytes: int = Field(256 * KIB, ge=4 * KIB, le=64 * MIB)
    # The longest one body may take to arrive. A read timeout alone never ends a slow drip (a
    # byte now and then); the body also ends by ``fallback.total_budget_s``, if that is sooner.
    max_body_s: float = Field(600.0, gt=0, le=86400)
    content_addressed: bool = False  # store as <sha256[:2]>/<sha256>.pdf instead of by work id
    # Is a verified PDF the work? "check": a PDF whose first pages name another work is
    # quarantined (identity-mismatch) and the chain goes on; "require": one that cannot be
    # shown to be the work is quarantined too (identity-unknown); "off": not read.
    identity: Literal["check", "require", "off"] = "check"
    # Refuse works a source marks retracted (reason ``retracted``); off: they are stored and
    # flagged ``retracted: true`` in the manifest.
    skip_retracted: bool = False
    # Licences a candidate may carry: "any" (default), or a list such as ["cc-by", "cc-by-sa",
    # "cc0", "public-domain"] (any spelling: URLs, "CC BY 4.0" …); others are refused
    # (reason ``license``), and so are candidates whose source states no licence.
    licenses: str | tuple[str, ...] = ANY
    # Versions best first, e.g. ["publishedVersion", "acceptedVersion", "submittedVersion"]:
    # every source of the racing tiers is asked first, then their candidates are tried in this
    # order (unlisted and unknown versions last). Empty (default): the first verified copy wins.
    prefer: tuple[str, ...] = ()
    # A text-and-data-mining purpose (TDMRep): files whose rightsholder reserves TDM rights
    # (``tdm-reservation: 1`` header, the origin's /.well-known/tdmrep.json, a landing page's
    # meta) are not stored (reason ``tdm-reserved``). Off: those declarations are not read.
    tdm: bool = False

    @field_validator("prefer")
    @classmethod
    def _prefer(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return preferred_versions(value)

    @field_validator("licenses")
    @classmethod
    def _licenses(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        slugs = allowed_licenses(value)
        if slugs is None:
            return ANY
        return tuple(sorted(slugs))

    @property
    def accepted_licenses(self) -> frozenset[str] | None:
        """The accepted licence slugs; ``None`` when every licence is accepted."""
        return None if self.licenses == ANY else frozenset(self.licenses)

    # Resume: re-hash each file an earlier run stored before trusting it (default: its
    # existence and size are checked; hashing reads every stored byte again).
    verify_stored: bool = False

    @field_validator("accept")
    @classmethod
    def _accept(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must list at least one kind (pdf, html, xml)")
        return value


class RobotsConfig(_Frozen):
    """robots.txt for landing and artifact fetches (never for documented API endpoints)."""

    enabled: bool = True
    ttl_s: float = Field(86400.0, gt=0)
    error_ttl_s: float = Field(600.0, gt=0)  # how long a 5xx/unreachable robots.txt disallows
    max_crawl_delay_s: float = Field(60.0, ge=0)


class TelemetryConfig(_Frozen):
    """Where telemetry goes. The local store (SQLite + JSONL) is the embedded default."""

    enabled: bool = True
    sqlite: bool = True  # <out>/telemetry.sqlite
    jsonl: bool = True  # <out>/spans.jsonl
    otlp_endpoint: str | None = None  # default: OTEL_EXPORTER_OTLP_ENDPOINT
    otlp_timeout_s: float = Field(2.0, gt=0, le=60)
    metrics_port: int | None = Field(None, ge=0, le=65535)  # Prometheus endpoint for a live run
    metrics_host: str = "127.0.0.1"
    # False: never serve /metrics, not even for OTEL_METRICS_EXPORTER=prometheus (the shards of
    # an engine run: many share a machine, and their metrics go to the OTLP endpoint)
    serve_metrics: bool = True
    # After the run, the endpoint serves the final counts until one scrape fetched them, at most
    # this long (two scrapes at Prometheus' default 15 s interval); 0 stops it at once.
    metrics_linger_s: float = Field(30.0, ge=0, le=3600)
    service_name: str = "oafetch"
    # Hosts that receive W3C trace context (traceparent/tracestate/baggage) on oafetch's
    # requests, e.g. your own proxy or mirror; publishers and APIs get none by default.
    propagate_to: tuple[str, ...] = ()


class CacheConfig(_Frozen):
    """The shared RFC 9111 HTTP cache for metadata, landing pages and robots.txt.

    Answers that carry ``Cache-Control``/``Expires`` keep the server's freshness. For answers
    without them (most scholarly APIs send none), the freshness comes from ``ttl_s``, keyed by
    ``"host"`` or ``"host/role"`` (role ``metadata``, ``landing`` or ``robots``; a host key also
    covers its subdomains; ``"*"`` is the catch-all, like ``default_ttl_s``). These rules are
    layered over built-in defaults (Crossref/OpenAlex metadata 3 days + 180 s
    stale-while-revalidate, archive.org 7 days). Durations are seconds or ``"30m"``, ``"12h"``,
    ``"3d"``, ``"1w"``. Loopback/private hosts get no assumed freshness unless a rule names them.
    """

    enabled: bool = True
    dir: Path | None = None  # default: platformdirs.user_cache_dir("oafetch")
    # Freshness for answers that carry no cache headers: "host" / "host/role" / "*" → seconds.
    ttl_s: dict[str, float] = Field(default_factory=dict)
    default_ttl_s: float = Field(86400.0, ge=0)
    # Stale-while-revalidate window added to those answers (same keys; a bare number = "*").
    stale_while_revalidate_s: dict[str, float] = Field(default_factory=dict)
    # 404/410 without cache headers are kept at most this long.
    negative_ttl_s: float = Field(3600.0, ge=0)
    # Hard bound: an entry is dropped this long after it was stored, whatever its headers say.
    max_age_s: float = Field(30 * 86400.0, gt=0)
    max_size_mb: float = Field(1024.0, gt=0)  # the database is trimmed (least recently used)
    max_entry_bytes: int = Field(16 * MIB, ge=1024)  # larger bodies pass through uncached

    @staticmethod
    def parse_duration(value: object) -> float:
        """Seconds from a number or a text like ``"90"``, ``"30m"``, ``"12h"``, ``"3d"``, ``"1w"``.

        Raises:
            ValueError: not a non-negative duration.
        """
        import re

        if isinstance(value, bool):
            raise ValueError(f"must be a duration like 90, '30m', '12h' or '7d' (got {value!r})")
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str):
            text = value.strip().lower().replace(" ", "")
            units = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
            parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw]?)", text)
            if (
                not text
                or "".join(n + u for n, u in parts) != text
                or (len(parts) > 1 and any(not u for _, u in parts))
            ):
                raise ValueError(
                    f"must be a duration like 90, '30m', '12h' or '7d' (got {value!r})"
                )
            seconds = sum(float(n) * units[u] for n, u in parts)
        else:
            raise ValueError(f"must be a duration like 90, '30m', '12h' or '7d' (got {value!r})")
        if seconds < 0 or seconds != seconds:
            raise ValueError(f"must be a duration >= 0 (got {value!r})")
        return seconds

    @field_validator("dir")
    @classmethod
    def _dir(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("default_ttl_s", "negative_ttl_s", "max_age_s", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return cls.parse_duration(value)

    @field_validator("ttl_s", "stale_while_revalidate_s", mode="before")
    @classmethod
    def _rules(cls, value: object) -> dict[str, float]:
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            value = {"*": value}  # a bare number: the default for every host
        if not isinstance(value, dict):
            raise ValueError(f"must be a table of 'host' or 'host/role' = duration (got {value!r})")
        rules: dict[str, float] = {}
        for key, duration in value.items():
            name = str(key).strip().lower()
            host, _, role = name.partition("/")
            if (
                not host
                or (role and role not in ("metadata", "landing", "robots"))
                or (host == "*" and role)
            ):
                raise ValueError(
                    f"key {key!r}: must be 'host', 'host/role' (role metadata, landing or "
                    f"robots) or '*' (got {key!r})"
                )
            try:
                rules[name] = cls.parse_duration(duration)
            except ValueError as exc:
                raise ValueError(f"{key!r}: {exc}") from None
        return rules


class ResolverSettings(BaseModel):
    """``[resolvers.<name>]``: ``enabled``, ``base_url``, credentials and endpoint keys.

    Further keys are the endpoints a source needs; each resolver validates its own keys.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    enabled: bool = True
    base_url: str | None = None
    api_key: SecretStr | None = None
    email: str | None = None


class TierConfig(_Frozen):
    """One tier of the fallback chain."""

    name: str
    # Source names are checked against the resolvers where those are known (the registry, plus
    # any plug-ins handed to the downloader): oafetch.resolvers.registry.check_tiers.
    sources: tuple[str, ...]
    parallel: bool = True

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must list at least one source")
        return value


class FallbackConfig(_Frozen):
    """The fallback orchestrator's tiers and budgets (empty ``tiers``: the built-in default)."""

    tiers: tuple[TierConfig, ...] = ()
    total_budget_s: float = Field(180.0, gt=0, le=86400)
    max_attempts: int = Field(24, ge=1, le=1000)
    per_source_timeout_s: float = Field(60.0, gt=0, le=3600)
    max_rate_wait_s: float = Field(30.0, ge=0, le=86400)
    # The order of sources per work: "configured" (the tiers as written) or "learned" (from the
    # telemetry store: sources proven for the work's DOI prefix / host / id kind go first; the
    # configured tiers are the prior while evidence is thin).
    resolver_order: Literal["configured", "learned"] = "learned"
    # Earlier runs to learn from (out dirs or telemetry.sqlite files), besides --out's own store.
    learn_from: tuple[Path, ...] = ()


_toml_data: ContextVar[dict[str, Any] | None] = ContextVar("oafetch_toml_data", default=None)


class Config(BaseSettings):
    """Everything oafetch can be told. Build with :meth:`Config.load` or keyword arguments."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix="OAFETCH_",
        env_nested_delimiter="__",
    )

    mailto: str | None = None
    out_dir: Path = Path("oafetch-out")
    workers: int = Field(8, ge=1, le=512)
    # worker processes of `oafetch run`: "auto" (one per core for a batch worth it; see
    # oafetch.engines.choose), 1 (every work in this process) or N (shards on N processes)
    processes: Annotated[int, Field(ge=1, le=512)] | Literal["auto"] = "auto"
    # where stored files are published: an fsspec URL (s3://bucket/prefix, gs://…, file:///…);
    # None keeps them in out_dir. files_options go to the filesystem (endpoint_url, anon …).
    files_to: str | None = None
    files_options: dict[str, Any] = Field(default_factory=dict)
    http: HttpConfig = HttpConfig()
    politeness: PolitenessConfig = PolitenessConfig()
    rates: dict[str, str] = Field(default_factory=dict)
    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    download: DownloadConfig = DownloadConfig()
    robots: RobotsConfig = RobotsConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    cache: CacheConfig = CacheConfig()
    resolvers: dict[str, ResolverSettings] = Field(default_factory=dict)
    fallback: FallbackConfig = FallbackConfig()
    slo: dict[str, float] = Field(default_factory=dict)

    @field_validator("mailto")
    @classmethod
    def _mailto(cls, value: str | None) -> str | None:
        if value is not None and (value.count("@") != 1 or " " in value.strip()):
            raise ValueError("must be an email address like you@example.org")
        return value.strip() if value else value

    @field_validator("files_to")
    @classmethod
    def _files_to(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError("must be a URL with its scheme: s3://bucket/prefix, file:///abs/path")
        return value.rstrip("/") if value else None

    @field_validator("rates")
    @classmethod
    def _rates(cls, value: dict[str, str]) -> dict[str, str]:
        for host, text in value.items():
            try:
                parse_rate(text)
            except ValueError as exc:
                raise ValueError(f"rate {host!r}: {exc} (got {text!r})") from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # flags > env > oafetch.toml > defaults
        env = EnvSource(settings_cls, _init_state=getattr(env_settings, "_init_state", None))
        return init_settings, env, InitSettingsSource(settings_cls, _toml_data.get() or {})

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, **overrides: Any) -> Config:
        """Load ``path`` (default: ``./oafetch.toml`` if it exists), env and ``overrides``.

        ``None`` overrides are ignored, so CLI flags that were not given do not mask the file.

        Raises:
            ConfigError: the file is unreadable or a value breaks a rule.
        """
        data: dict[str, Any] = {}
        file = Path(path) if path is not None else Path("oafetch.toml")
        if path is not None or file.exists():
            try:
                data = tomllib.loads(file.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise ConfigError(f"config file {file} does not exist") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"config file {file} cannot be read: {exc}") from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
        token = _toml_data.set(data)
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        except ValidationError as exc:
            raise _config_error(exc, source=str(file) if data else None, data=data) from None
        finally:
            _toml_data.reset(token)

    # -- derived values ------------------------------------------------------------------------
    @property
    def user_agent(self) -> str:
        """The User-Agent every request carries: tool, version, project URL and mailto."""
        if self.http.user_agent:
            return self.http.user_agent
        contact = f"; mailto:{self.mailto}" if self.mailto else ""
        return f"oafetch/{__version__} (+{PROJECT_URL}{contact})"

    def rate_policy(self, key: str) -> RatePolicy:
        """The configured policy for a host (or rate group) key, else the default rate."""
        text = self.rates.get(key) or DEFAULT_RATES.get(key) or self.politeness.default_rate
        return parse_rate(text)

    def resolver(self, name: str) -> ResolverSettings:
        """Settings for one resolver (defaults when the table is absent)."""
        return self.resolvers.get(name) or ResolverSettings()

    @property
    def config_hash(self) -> str:
        """A short hash of everything that changes what is fetched (not paths, not secrets)."""
        dumped = self.model_dump(
            mode="json",
            exclude={
                "out_dir",
                "workers",
                "processes",
                "telemetry",
                "cache",
                "slo",
                "files_to",
                "files_options",
            },
        )
        for settings in dumped.get("resolvers", {}).values():
            settings.pop("api_key", None)
        blob = json.dumps(dumped, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _config_error(
    exc: ValidationError, source: str | None, data: dict[str, Any] | None = None
) -> ConfigError:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        value = err.get("input")
        # Name the file only for keys it sets (a bad flag or env value is not the file's fault).
        where = f" [{source}]" if source and _sets(data or {}, err["loc"]) else ""
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key {key!r}{_suggest(err['loc'])}{where}")
            continue
        rule = err["msg"].removeprefix("Value error, ")
        if "(got " in rule:  # the rule already quotes the offending value
            lines.append(f"{key}: {rule}{where}")
            continue
        # a credential, or a whole resolver table that may hold one, is never echoed
        whole_table = err["loc"][:1] == ("resolvers",) and len(err["loc"]) <= 2
        shown = "<secret>" if "api_key" in key or whole_table else repr(value)
        lines.append(f"{key}: {rule} (got {shown}){where}")
    return ConfigError("invalid configuration:\n  " + "\n  ".join(lines))


def _sets(data: dict[str, Any], loc: tuple[int | str, ...]) -> bool:
    """Whether the TOML ``data`` holds the key at ``loc``."""
    node: Any = data
    for part in loc:
        if isinstance(node, dict) and str(part) in node:
            node = node[str(part)]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    return True


def _suggest(loc: tuple[int | str, ...]) -> str:
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return (
        f"; did you mean {close[0]!r}?"
        if close
        else f"; known keys: {', '.join(model.model_fields)}"
    )
