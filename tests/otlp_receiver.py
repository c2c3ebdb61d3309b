"""In-process OTLP receivers on 127.0.0.1 (OTLP/HTTP protobuf and OTLP/gRPC) for tests.

Both decode what an exporter sends into :class:`Received`: spans (ids, parent, links, trace
flags, attributes, resource), metric names, and for HTTP the paths and headers of each post.
"""

from __future__ import annotations

import gzip
import http.server
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    return getattr(v, which) if which else None


@dataclass
class Received:
    """What the receiver got; read it under ``lock``."""

    spans: list[dict[str, Any]] = field(default_factory=list)
    metric_names: set[str] = field(default_factory=set)
    posts: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (path, headers)
    raw: list[bytes] = field(default_factory=list)  # each body, decompressed
    bodies: list[tuple[str, bytes]] = field(default_factory=list)  # (path, decompressed body)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_traces(self, req: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self.lock:
            for rs in req.resource_spans:
                resource = {kv.key: value(kv.value) for kv in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self.spans.append(
                            {
                                "name": span.name,
                                "kind": span.kind,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex() or None,
                                "links": [
                                    (link.trace_id.hex(), link.span_id.hex()) for link in span.links
                                ],
                                "status_code": span.status.code,
                                "scope": ss.scope.name,
                                "schema_url": ss.schema_url,
                                "attributes": {kv.key: value(kv.value) for kv in span.attributes},
                                "resource": resource,
                            }
                        )

    def add_metrics(self, req: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        with self.lock:
            for rm in req.resource_metrics:
                for sm in rm.scope_metrics:
                    self.metric_names.update(m.name for m in sm.metrics)

    def snapshot(self) -> tuple[list[dict[str, Any]], set[str]]:
        with self.lock:
            return list(self.spans), set(self.metric_names)


@contextmanager
def http_receiver() -> Iterator[tuple[str, Received]]:
    """An OTLP/HTTP receiver: yields (base URL, what it received). Any path is accepted;
    ``/…traces`` bodies are decoded as traces and ``/…metrics`` as metrics."""
    got = Received()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            with got.lock:
                got.posts.append((self.path, headers))
                got.raw.append(body)
                got.bodies.append((self.path, body))
            if self.path.endswith("traces"):
                treq = trace_service_pb2.ExportTraceServiceRequest()
                treq.ParseFromString(body)
                got.add_traces(treq)
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            else:
                mreq = metrics_service_pb2.ExportMetricsServiceRequest()
                mreq.ParseFromString(body)
                got.add_metrics(mreq)
                reply = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def grpc_receiver() -> Iterator[tuple[str, Received]]:
    """An OTLP/gRPC receiver (plaintext): yields (``http://127.0.0.1:PORT``, what it got)."""
    import grpc

    got = Received()

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            got.add_traces(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            got.add_metrics(request)
            return metrics_service_pb2.ExportMetricsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", got
    finally:
        server.stop(grace=None)
