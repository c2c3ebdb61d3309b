"""The ``OTEL_*`` environment, read as the OpenTelemetry specification defines it.

:func:`read` turns the environment (and the ``[telemetry]`` config) into :class:`OtelSettings`:
which exporters run for traces and metrics, over which protocol, to which endpoint, how traces
are sampled for export, and whether the SDK is disabled. What the exporters read themselves
(headers, compression, certificates, timeouts, batch-processor tuning) is left to them: oafetch
passes only what it decides, so every other ``OTEL_EXPORTER_OTLP_*`` variable keeps its meaning.

Where oafetch differs from an SDK's autoconfiguration, on purpose:

- With ``OTEL_TRACES_EXPORTER``/``OTEL_METRICS_EXPORTER`` unset, OTLP export is on only when an
  endpoint is known (``telemetry.otlp_endpoint``, ``OTEL_EXPORTER_OTLP_ENDPOINT`` or the signal's
  own endpoint variable): a CLI run should not post to a collector nobody configured. Set
  ``otlp`` to export to the default endpoint.
- Sampling (``OTEL_TRACES_SAMPLER[_ARG]``) governs what is *exported*; the local store keeps
  every span (see :mod:`~oafetch.telemetry.sampling`).
- ``OTEL_SDK_DISABLED=true`` turns off export and live metrics, not the local store, which is
  oafetch's own record of the run.

Every bad value raises :class:`~oafetch.errors.ConfigError` naming the variable and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from oafetch.config import TelemetryConfig
from oafetch.errors import ConfigError
from oafetch.urls import redact_url

SIGNALS = ("traces", "metrics")
PROTOCOLS = ("http/protobuf", "grpc")
TRACE_EXPORTERS = ("otlp", "console", "none")
METRIC_EXPORTERS = ("otlp", "prometheus", "console", "none")
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
_DEFAULT_ENDPOINT = {"http/protobuf": "http://localhost:4318", "grpc": "http://localhost:4317"}
_SIGNAL_PATHS = {"traces": "/v1/traces", "metrics": "/v1/metrics"}


@dataclass(frozen=True)
class Otlp:
    """One signal's OTLP export: protocol and full endpoint URL (as the exporter wants it)."""

    protocol: str
    endpoint: str
    where: str  # which setting gave the endpoint (for messages)


@dataclass(frozen=True)
class Sampling:
    """``OTEL_TRACES_SAMPLER`` and its argument (ratio for the ``traceidratio`` ones)."""

    name: str = "parentbased_always_on"
    ratio: float = 1.0

    @property
    def exports_all(self) -> bool:
        return self.name in ("always_on", "parentbased_always_on") or (
            "traceidratio" in self.name and self.ratio >= 1.0
        )


@dataclass(frozen=True)
class OtelSettings:
    """What the environment and the config ask of oafetch's telemetry."""

    sdk_disabled: bool = False
    traces_otlp: Otlp | None = None
    metrics_otlp: Otlp | None = None
    traces_console: bool = False
    metrics_console: bool = False
    prometheus_port: int | None = None  # OTEL_METRICS_EXPORTER=prometheus (or --metrics-port)
    prometheus_host: str = "127.0.0.1"
    sampling: Sampling = Sampling()
    metric_interval_from_env: bool = False  # OTEL_METRIC_EXPORT_INTERVAL/_TIMEOUT are set
    span_batch_from_env: bool = False  # an OTEL_BSP_* variable is set
    timeout_from_env: frozenset[str] = frozenset()  # signals whose timeout the env sets


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() == "true"


def _choices(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> frozenset[str] | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    values = frozenset(v.strip().lower() for v in raw.split(",") if v.strip())
    unknown = sorted(values - set(allowed))
    if unknown:
        raise ConfigError(
            f"{name}={raw!r}: {', '.join(unknown)} not supported; use a comma-separated list "
            f"of {', '.join(allowed)}"
        )
    if "none" in values and len(values) > 1:
        raise ConfigError(f"{name}={raw!r}: 'none' cannot be combined with an exporter")
    return values - {"none"}


def _protocol(env: Mapping[str, str], signal: str) -> str:
    for name in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        raw = env.get(name, "").strip().lower()
        if raw:
            if raw not in PROTOCOLS:
                raise ConfigError(
                    f"{name}={raw!r}: oafetch exports OTLP over {' or '.join(PROTOCOLS)}"
                    + (" (the Python exporters have no http/json)" if raw == "http/json" else "")
                )
            return raw
    return "http/protobuf"


def _check_url(url: str, where: str, protocol: str) -> str:
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        valid = False
    if not valid:
        example = _DEFAULT_ENDPOINT[protocol]
        raise ConfigError(
            f"{where}: must be an http(s) URL of an OTLP collector ({protocol}) such as "
            f"{example} (got {redact_url(url)!r})"
        )
    return url


def _base(url: str) -> str:
    url = url.rstrip("/")
    for path in (*_SIGNAL_PATHS.values(), "/v1/logs"):
        if url.endswith(path):
            return url[: -len(path)]
    return url


def _endpoint(
    config: TelemetryConfig, env: Mapping[str, str], signal: str, protocol: str
) -> tuple[str, str] | None:
    """(URL, where) for ``signal``; None when nothing names one."""
    path = _SIGNAL_PATHS[signal] if protocol == "http/protobuf" else ""
    if config.otlp_endpoint:
        where = "telemetry.otlp_endpoint"
        base = _check_url(config.otlp_endpoint.strip(), where, protocol)
        return _base(base) + path, where
    own = f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
    if env.get(own, "").strip():
        return _check_url(env[own].strip(), own, protocol), own  # used as given
    generic = "OTEL_EXPORTER_OTLP_ENDPOINT"
    if env.get(generic, "").strip():
        return _base(_check_url(env[generic].strip(), generic, protocol)) + path, generic
    return None


def _otlp(
    config: TelemetryConfig, env: Mapping[str, str], signal: str, chosen: frozenset[str] | None
) -> Otlp | None:
    protocol = _protocol(env, signal)
    found = _endpoint(config, env, signal, protocol)
    if chosen is None:  # unset: export when an endpoint is known
        return Otlp(protocol, found[0], found[1]) if found else None
    if "otlp" not in chosen:
        return None
    if found is None:
        default = _DEFAULT_ENDPOINT[protocol]
        path = _SIGNAL_PATHS[signal] if protocol == "http/protobuf" else ""
        return Otlp(protocol, default + path, "the OTLP default")
    return Otlp(protocol, found[0], found[1])


def _sampling(env: Mapping[str, str]) -> Sampling:
    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    if name not in SAMPLERS:
        raise ConfigError(
            f"OTEL_TRACES_SAMPLER={name!r}: not supported; use one of {', '.join(SAMPLERS)}"
        )
    ratio = 1.0
    raw = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if "traceidratio" in name and raw:
        try:
            ratio = float(raw)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise ConfigError(
                f"OTEL_TRACES_SAMPLER_ARG={raw!r}: the {name} sampler needs a ratio in [0, 1]"
            )
    return Sampling(name, ratio)


def _port(env: Mapping[str, str]) -> int:
    raw = env.get("OTEL_EXPORTER_PROMETHEUS_PORT", "").strip() or "9464"
    if not raw.isdigit() or int(raw) > 65535:
        raise ConfigError(f"OTEL_EXPORTER_PROMETHEUS_PORT={raw!r}: must be a port number")
    return int(raw)


def read(config: TelemetryConfig, environ: Mapping[str, str] | None = None) -> OtelSettings:
    """The settings ``config`` and the ``OTEL_*`` environment ask for.

    Raises:
        ConfigError: a variable holds a value oafetch cannot honour (the message names it).
    """
    env = os.environ if environ is None else environ
    disabled = _flag(env, "OTEL_SDK_DISABLED")
    traces = _choices(env, "OTEL_TRACES_EXPORTER", TRACE_EXPORTERS)
    metrics = _choices(env, "OTEL_METRICS_EXPORTER", METRIC_EXPORTERS)
    sampling = _sampling(env)
    traces_otlp = _otlp(config, env, "traces", traces)
    metrics_otlp = _otlp(config, env, "metrics", metrics)
    prometheus_port = config.metrics_port
    prometheus_host = config.metrics_host
    if prometheus_port is None and metrics and "prometheus" in metrics:
        prometheus_port = _port(env)
        prometheus_host = env.get("OTEL_EXPORTER_PROMETHEUS_HOST", "").strip() or prometheus_host
    if not config.serve_metrics:
        prometheus_port = None
    if disabled:
        return OtelSettings(sdk_disabled=True, sampling=sampling)
    generic_timeout = bool(env.get("OTEL_EXPORTER_OTLP_TIMEOUT"))
    timeouts = frozenset(
        s for s in SIGNALS if generic_timeout or env.get(f"OTEL_EXPORTER_OTLP_{s.upper()}_TIMEOUT")
    )
    return OtelSettings(
        traces_otlp=traces_otlp,
        metrics_otlp=metrics_otlp,
        traces_console=bool(traces and "console" in traces),
        metrics_console=bool(metrics and "console" in metrics),
        prometheus_port=prometheus_port,
        prometheus_host=prometheus_host,
        sampling=sampling,
        metric_interval_from_env=any(
            env.get(n) for n in ("OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT")
        ),
        span_batch_from_env=any(k.startswith("OTEL_BSP_") and v for k, v in env.items()),
        timeout_from_env=timeouts,
    )
