"""An OTLP/HTTP trace receiver on loopback, for pods that export traces (OTEL_EXPORTER_OTLP_*):
it answers every export with success. With keep=True it parses each export (PyPI
`opentelemetry-proto`, in .venv-deploy) and keeps every span with its service's name; without, it
reads and discards them, as a collector that keeps up would (the benchmark's traces-on rows)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, keep: bool = False):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.keep = keep
        self.spans: list[tuple[str, object]] = []
        self.exports = 0
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, name="otlp-receiver", daemon=True)

    @property
    def endpoint(self) -> str:
        """What OTEL_EXPORTER_OTLP_ENDPOINT should say."""
        return f"http://127.0.0.1:{self.server_port}"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def spans_of(self, trace_id: str) -> list[tuple[str, object]]:
        with self.lock:
            return [(service, span) for service, span in self.spans if span.trace_id.hex() == trace_id]

    def _export(self, body: bytes) -> None:
        with self.lock:
            self.exports += 1
        if not self.keep:
            return
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self.lock:
            for resource_spans in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    self.spans.extend((attributes.get("service.name", "?"), span) for span in scope.spans)


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive: an exporter sends its batches on one connection.
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.server._export(body)
        # An ExportTraceServiceResponse with nothing rejected: the empty message, zero bytes.
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass
