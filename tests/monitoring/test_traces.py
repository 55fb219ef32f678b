"""Traces across the pod: hello-service and world-service export OpenTelemetry spans over OTLP
(HTTP, protobuf) to a small receiver on loopback (PyPI `opentelemetry-proto` parses what they
send), configured only by the standard OTEL_* variables. One request must yield one trace: the
caller's traceparent continued by hello's server span, hello's client span for the world call,
world's span for that call in its batch under it (the context crossed the hop inside the batch,
the path every request takes), and world's store span under that."""

import http.client
import tempfile
import time
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.otlp import Receiver
from tests.support.pod import Pod
from tests.support.ports import free_port

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


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
    """A pod without nginx (tests/support/pod.py: world on its Unix socket, embedded store),
    both services exporting traces to a receiver that keeps every span."""
    receiver = Receiver(keep=True).start()
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "100", "RUST_LOG": "warn"}
    with tempfile.TemporaryDirectory(prefix="hello-traces-") as work:
        pod = Pod(Path(work), name="traces-test-pod", nginx_port=None, hello_port=free_port(), env=otel,
                  world_env={"WORLD_SHUTDOWN_DRAIN_MS": "0"}, hello_env={"HELLO_SHUTDOWN_DRAIN_MS": "0"})
        try:
            pod.start()
            yield pod.hello_port, receiver
        finally:
            pod.stop()
            receiver.stop()


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
