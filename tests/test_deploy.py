"""The deployment assets agree with each other and with the metric names oafetch exports.

Checks: valid YAML/JSON; every collector pipeline references defined components (and every
component is used); ports and service names are consistent across ``otel-collector.yaml``,
``docker-compose.yml``, ``deploy/prometheus.yml`` and the Grafana provisioning; images are pinned;
every metric a dashboard query uses is one oafetch exports — the list is derived from
``names.py``/``runtime.py`` through the real OpenTelemetry Prometheus exporter, and from
``serve.METRIC_NAMES``, never written out here.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from oafetch.telemetry import names, serve
from oafetch.telemetry.runtime import Instruments

ROOT = Path(__file__).resolve().parents[1]
COLLECTOR = ROOT / "otel-collector.yaml"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "oafetch.json"
LIVE_METRICS_PORT = 9464  # `oafetch run --metrics-port` default, scraped as oafetch-live
IMAGES = {
    "otel/opentelemetry-collector-contrib": "otel-collector",
    "jaegertracing/jaeger": "jaeger",
    "prom/prometheus": "prometheus",
    "grafana/grafana": "grafana",
}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    return dict(_yaml(COLLECTOR))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(_yaml(COMPOSE))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _host(endpoint: str) -> str:
    return endpoint.split("//")[-1].rsplit(":", 1)[0]


def _published(service: dict[str, Any]) -> dict[int, int]:
    """container port → host port of a compose service's short-syntax ports."""
    result = {}
    for spec in service.get("ports", []):
        host, container = str(spec).split(":")[-2:]
        result[int(container)] = int(host)
    return result


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path → source of a compose service's volumes (short syntax)."""
    result = {}
    for spec in service.get("volumes", []):
        source, target = str(spec).split(":")[:2]
        result[target] = source
    return result


# -- files parse ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [COLLECTOR, COMPOSE, PROMETHEUS, *sorted((GRAFANA / "provisioning").rglob("*.yml"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_yaml_is_valid(path: Path) -> None:
    """Every deployment YAML file parses to a mapping."""
    assert isinstance(_yaml(path), dict)


# -- collector ------------------------------------------------------------------------------------


def test_pipelines_reference_defined_components(collector: dict[str, Any]) -> None:
    """Each pipeline names only defined components, and each component is used somewhere."""
    pipelines = collector["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics"}
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for name, pipeline in pipelines.items():
        for kind in used:
            for component in pipeline.get(kind, []):
                assert component in collector[kind], f"pipeline {name}: undefined {component}"
                used[kind].add(component)
        assert pipeline["processors"][0] == "memory_limiter", f"{name}: memory_limiter first"
        assert "batch" in pipeline["processors"]
    for kind, defined in used.items():
        assert set(collector[kind]) == defined, f"unused {kind}: {set(collector[kind]) - defined}"


def test_collector_endpoints(collector: dict[str, Any], services: dict[str, Any]) -> None:
    """OTLP on 4317/4318; Jaeger over OTLP gRPC to the compose service; no deprecated names."""
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert _port(protocols["grpc"]["endpoint"]) == 4317
    assert _port(protocols["http"]["endpoint"]) == 4318
    exporters = collector["exporters"]
    assert not [e for e in exporters if e.split("/")[0] in ("otlp", "otlphttp")], (
        "use otlp_grpc / otlp_http (Collector >= v0.144)"
    )
    jaeger = exporters["otlp_grpc/jaeger"]["endpoint"]
    assert _host(jaeger) == IMAGES["jaegertracing/jaeger"] and _port(jaeger) == 4317
    assert _host(jaeger) in services
    assert _port(exporters["prometheus"]["endpoint"]) == 8889
    assert set(collector["service"]["pipelines"]["traces"]["exporters"]) >= {
        "otlp_grpc/jaeger",
        "file/traces",
    }
    assert set(collector["service"]["pipelines"]["metrics"]["exporters"]) >= {
        "prometheus",
        "file/metrics",
    }


def test_file_exporters_rotate_onto_a_volume(
    collector: dict[str, Any], compose: dict[str, Any], services: dict[str, Any]
) -> None:
    """The file exporters rotate, and write under a named volume mounted in the collector."""
    mounts = _mounts(services["otel-collector"])
    for name in ("file/traces", "file/metrics"):
        exporter = collector["exporters"][name]
        assert exporter["rotation"]["max_megabytes"] > 0
        directory = str(Path(exporter["path"]).parent)
        assert directory in mounts, f"{name} writes to {directory}, which is not a volume"
        assert mounts[directory] in compose["volumes"], "a named (writable) volume"


# -- compose --------------------------------------------------------------------------------------


def test_images_pinned(services: dict[str, Any]) -> None:
    """Each of the four images runs under its service name with a pinned version tag."""
    for image, service in IMAGES.items():
        name, _, tag = services[service]["image"].partition(":")
        assert name == image
        assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{service}: pin {tag!r}"
    jaeger_major = services["jaeger"]["image"].split(":")[1].lstrip("v").split(".")[0]
    assert jaeger_major == "2", "Jaeger v2 (OTLP native)"


def test_compose_ports_and_mounts(services: dict[str, Any], collector: dict[str, Any]) -> None:
    """Published ports are the documented ones and every config file is mounted where read."""
    assert _published(services["otel-collector"]) == {4317: 4317, 4318: 4318}
    assert _published(services["jaeger"]) == {16686: 16686}
    assert _published(services["prometheus"]) == {9090: 9090}
    assert _published(services["grafana"]) == {3000: 3000}
    command = " ".join(services["otel-collector"]["command"])
    config_path = command.split("--config=")[1].split()[0]
    assert _mounts(services["otel-collector"])[config_path] == "./otel-collector.yaml"
    assert _mounts(services["prometheus"])["/etc/prometheus/prometheus.yml"] == (
        "./deploy/prometheus.yml"
    )
    for service in services.values():
        for source in _mounts(service).values():
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"mounted {source} does not exist"
        for dependency in service.get("depends_on", []):
            assert dependency in services


# -- prometheus -----------------------------------------------------------------------------------


def test_prometheus_scrapes(services: dict[str, Any], collector: dict[str, Any]) -> None:
    """Prometheus scrapes the collector's exporter, telemetry serve and a live run."""
    jobs = {job["job_name"]: job for job in _yaml(PROMETHEUS)["scrape_configs"]}
    targets = {name: job["static_configs"][0]["targets"][0] for name, job in jobs.items()}
    collector_target = targets["otel-collector"]
    assert _host(collector_target) in services
    assert _port(collector_target) == _port(collector["exporters"]["prometheus"]["endpoint"])
    assert targets["oafetch-store"] == f"host.docker.internal:{serve.DEFAULT_PORT}"
    assert targets["oafetch-live"] == f"host.docker.internal:{LIVE_METRICS_PORT}"
    assert "host.docker.internal:host-gateway" in services["prometheus"]["extra_hosts"]


# -- grafana --------------------------------------------------------------------------------------


def test_grafana_datasources(services: dict[str, Any]) -> None:
    """Data sources point at compose services on the ports those services listen on."""
    provisioned = _yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    by_type = {d["type"]: d for d in provisioned["datasources"]}
    prom = by_type["prometheus"]["url"]
    assert _host(prom) in services and _port(prom) in _published(services[_host(prom)])
    jaeger = by_type["jaeger"]["url"]
    assert _host(jaeger) in services and _port(jaeger) in _published(services[_host(jaeger)])
    mounts = _mounts(services["grafana"])
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"


def test_dashboard_provider_finds_the_dashboard(services: dict[str, Any]) -> None:
    """The provider's path is where the dashboards directory is mounted; its uids resolve."""
    provider = _yaml(GRAFANA / "provisioning" / "dashboards" / "oafetch.yml")["providers"][0]
    source = _mounts(services["grafana"])[provider["options"]["path"]]
    assert (ROOT / source / DASHBOARD.name).is_file()
    uids = {
        d["uid"]
        for d in _yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    }
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        if "datasource" in panel:
            assert panel["datasource"]["uid"] in uids, panel["title"]


# -- metric names ---------------------------------------------------------------------------------

_NOT_METRICS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
}


def promql_metrics(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (not functions, labels or keywords), including
    those a ``{__name__=~"a|b"}`` matcher lists."""
    found = set()
    for match in re.finditer(r'__name__\s*=~?\s*"([^"]*)"', expr):
        found.update(match.group(1).split("|"))
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    for match in re.finditer(r"(?<![\w$.])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\(?)", expr):
        name, call = match.groups()
        if not call and name.lower() not in _NOT_METRICS:
            found.add(name)
    return found


def test_promql_metrics_parser() -> None:
    """The extractor keeps metric names and drops functions, labels, ranges and keywords."""
    expr = (
        'histogram_quantile(0.95, sum by (le, role) (rate(a_bucket{job=~"$job"}[5m]))) '
        "/ on (x) b_total * 100 > bool 2"
    )
    assert promql_metrics(expr) == {"a_bucket", "b_total"}
    assert promql_metrics('sum({__name__=~"c_count|d_count",job="x"}) / e') == {
        "c_count",
        "d_count",
        "e",
    }


def exported_metric_names() -> set[str]:
    """Series names oafetch exports: live instruments through the OTel Prometheus exporter
    (names from names.py, units from runtime.py) plus the store endpoint's METRIC_NAMES."""
    registry = CollectorRegistry(auto_describe=True)
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    try:
        meter = provider.get_meter(names.INSTRUMENTATION_SCOPE)
        instruments = Instruments.create(meter)
        for field in dataclasses.fields(instruments):
            instrument = getattr(instruments, field.name)
            (instrument.add if hasattr(instrument, "add") else instrument.record)(1)
        # Created by opentelemetry-instrumentation-httpx, in seconds under stable semconv.
        meter.create_histogram(names.METRIC_HTTP_DURATION, unit="s").record(0.1)
        text = generate_latest(registry).decode()
    finally:
        provider.shutdown()
    live = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    return live | set(serve.METRIC_NAMES)


def _dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]["query"]
        inner = re.fullmatch(r"label_values\(([^,]+),\s*\w+\)", query)
        assert inner, f"variable {variable['name']}: unexpected query {query}"
        exprs.append((f"${variable['name']}", inner.group(1)))
    return exprs


def test_dashboard_uses_only_exported_metrics() -> None:
    """Every metric in every dashboard query is one oafetch really exports."""
    exported = exported_metric_names()
    for title, expr in _dashboard_exprs():
        unknown = promql_metrics(expr) - exported
        assert not unknown, f"panel {title!r} uses unknown metrics {unknown}"


def test_live_names_are_the_documented_ones() -> None:
    """The OTel→Prometheus mapping yields the names the dashboard and docs rely on."""
    exported = exported_metric_names()
    for name in (
        "oafetch_downloads_total",
        "oafetch_download_size_bytes_bucket",
        "oafetch_rate_limit_delay_seconds_bucket",
        "oafetch_breaker_transitions_total",
        "oafetch_fallback_attempts_total",
        "oafetch_retries_total",
        "oafetch_identity_checks_total",
        "http_client_request_duration_seconds_bucket",
    ):
        assert name in exported


def test_dashboard_panels() -> None:
    """The dashboard has the panels users look for, each with at least one query."""
    dashboard = json.loads(DASHBOARD.read_text())
    titles = {p["title"]: p for p in dashboard["panels"] if p["type"] != "row"}
    for wanted in (
        "Yield per run",
        "Yield (live)",
        "Time to first PDF",
        "Downloads by outcome and reason",
        "HTTP 429 ratio per host",
        "Breaker opens",
        "Rate-limit delay p95 by role",
        "Request duration",
        "Identity checks by verdict",
        "Identity mismatches per 1,000 works",
    ):
        assert titles[wanted]["targets"], wanted
    assert titles["Request duration"]["type"] == "heatmap"
    used = set().union(*(promql_metrics(e) for _, e in _dashboard_exprs()))
    assert "http_client_request_duration_seconds_bucket" in used
    assert {
        "oafetch_run_yield_ratio",
        "oafetch_run_ttfp_p50_seconds",
        "oafetch_run_ttfp_p95_seconds",
        "oafetch_run_rate_delay_p95_seconds",
    } <= used
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
