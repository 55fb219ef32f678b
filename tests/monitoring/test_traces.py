"""Traces across the pod: hello-service and world-service export OpenTelemetry spans over OTLP
(HTTP, protobuf) to a small receiver on loopback (PyPI `opentelemetry-proto` parses what they
send), configured only by the standard OTEL_* variables. One request must yield one trace: the
caller's traceparent continued by hello's server span, hello's client span for the world call,
world's span for that call in its batch under it (the context crossed the hop inside the batch,
the path every request takes), and world's store span under that."""

import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from ports import free_port  # noqa: E402
BIN_DIR = Path(os.environ.get("BIN_DIR", ROOT / "target" / "debug"))
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: keeps every span with its service's name."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.spans: list[tuple[str, Span]] = []
        self.lock = threading.Lock()

    def spans_of(self, trace_id: str) -> list[tuple[str, Span]]:
        with self.lock:
            return [(service, span) for service, span in self.spans if span.trace_id.hex() == trace_id]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        receiver: Receiver = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_response(404)
            self.end_headers()
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with receiver.lock:
            for resource_spans in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    receiver.spans.extend((attributes.get("service.name", "?"), span) for span in scope.spans)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def call(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.fixture(scope="module")
def traced_pod():
    """world (embedded store) and hello on loopback, exporting traces to a receiver."""
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    work = Path(tempfile.mkdtemp(prefix="hello-traces-"))
    hello_port, world_port = free_port(), free_port()
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_BSP_SCHEDULE_DELAY": "100",
            "RUST_LOG": "warn"}
    processes = []
    try:
        for name, env in [
            ("world", {"WORLD_LISTEN": f"127.0.0.1:{world_port}", "WORLD_DATA_DIR": str(work / "data"),
                       "WORLD_SHUTDOWN_DRAIN_MS": "0"}),
            ("hello", {"HELLO_LISTEN": f"127.0.0.1:{hello_port}", "HELLO_WORLD_URL": f"http://127.0.0.1:{world_port}",
                       "HELLO_SHUTDOWN_DRAIN_MS": "0"}),
        ]:
            log = open(work / f"{name}.log", "wb")
            processes.append(subprocess.Popen([str(BIN_DIR / f"{name}-service")], env={**os.environ, **otel, **env},
                                              stdout=log, stderr=subprocess.STDOUT))
            log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                if call(hello_port, "GET", "/readyz") == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the pod did not start:\n" + "\n".join(
                path.read_text() for path in work.glob("*.log"))
            time.sleep(0.1)
        yield hello_port, receiver
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.wait(20)
        receiver.shutdown()
        receiver.server_close()
        shutil.rmtree(work, ignore_errors=True)


def wait_for_spans(receiver: Receiver, trace_id: str, wanted: set[str]) -> dict[str, tuple[str, Span]]:
    deadline = time.monotonic() + 20
    while True:
        spans = {span.name: (service, span) for service, span in receiver.spans_of(trace_id)}
        if wanted <= set(spans):
            return spans
        assert time.monotonic() < deadline, f"spans of trace {trace_id}: {sorted(spans)}; wanted {sorted(wanted)}"
        time.sleep(0.1)


def test_one_request_is_one_trace_through_hello_world_and_the_store(traced_pod):
    port, receiver = traced_pod
    status = call(port, "POST", "/hello/traced", b'{"from":"alice"}',
                  {"Content-Type": "application/json", "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"})
    assert status == 201
    spans = wait_for_spans(receiver, TRACE_ID, {"POST /hello/{name}", "world send", "send in batch", "store send"})
    hello_server = spans["POST /hello/{name}"]
    world_call = spans["world send"]
    world_server = spans["send in batch"]
    store = spans["store send"]
    assert [service for service, _ in (hello_server, world_call, world_server, store)] == [
        "hello-service", "hello-service", "world-service", "world-service"]
    assert hello_server[1].parent_span_id.hex() == CALLER_SPAN, "hello continues the caller's trace"
    assert world_call[1].parent_span_id == hello_server[1].span_id
    assert world_server[1].parent_span_id == world_call[1].span_id, "the context crossed the hop to world"
    assert store[1].parent_span_id == world_server[1].span_id
    kinds = [span.kind for _, span in (hello_server, world_call, world_server)]
    assert kinds == [Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_SERVER]
    # The send went to world in a batch, as every send does, traced or not: world served it as a
    # call of POST /v1/hellos (that request is a trace of its own, as it carries many requests).
    deadline = time.monotonic() + 20
    while not any(service == "world-service" and span.name == "POST /v1/hellos" for service, span in receiver.spans):
        assert time.monotonic() < deadline, "world served no POST /v1/hellos"
        time.sleep(0.1)
    print(f"trace {TRACE_ID}: " + " -> ".join(f"{service}:{span.name}" for service, span in
                                              (hello_server, world_call, world_server, store)))


def test_a_request_without_traceparent_starts_a_trace_that_world_joins(traced_pod):
    port, receiver = traced_pod
    assert call(port, "GET", "/hello/untraced") == 200
    deadline = time.monotonic() + 20
    while True:
        with receiver.lock:
            roots = [span for service, span in receiver.spans
                     if service == "hello-service" and span.name == "GET /hello/{name}" and not span.parent_span_id]
        if roots:
            break
        assert time.monotonic() < deadline, "no root span for the GET"
        time.sleep(0.1)
    trace = roots[-1].trace_id.hex()
    spans = wait_for_spans(receiver, trace, {"world lease", "lease in batch", "store lease"})
    assert spans["lease in batch"][0] == "world-service"
    assert spans["lease in batch"][1].parent_span_id == spans["world lease"][1].span_id
