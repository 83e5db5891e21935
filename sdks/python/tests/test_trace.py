"""The caller's OpenTelemetry span goes with its events as the AMQP headers
`traceparent` and `tracestate` (docs/ARCHITECTURE.md §23), through the spill too;
without a span, or without opentelemetry, an event has no headers."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pika
import pytest

from hookfleet_emit import Emitter
from hookfleet_emit._frames import publish_frames
from hookfleet_emit._spill import Pending, Spill
from conftest import AMQP_URL, wait_for
from test_frames import TP, pikas

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
UNREACHABLE = "amqp://guest:guest@127.0.0.1:1/%2f"

needs_broker = pytest.mark.skipif(not AMQP_URL, reason="HOOKFLEET_TEST_AMQP_URL not set")


@pytest.fixture
def tracer() -> Any:
    """A tracer of the OpenTelemetry SDK (not made the global provider: starting
    a span as current needs only the context API)."""
    sdk = pytest.importorskip(
        "opentelemetry.sdk.trace",
        reason="opentelemetry is not installed (pip install opentelemetry-api opentelemetry-sdk)",
    )
    return sdk.TracerProvider().get_tracer("hookfleet-emit-tests")


def traceparent_of(span: Any) -> str:
    """The W3C traceparent of a span, formatted here, not by OpenTelemetry."""
    sc = span.get_span_context()
    return f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}"


def spill_lines(d: str) -> List[List[bytes]]:
    return [
        line.split(b"\t")
        for n in sorted(os.listdir(d))
        if n.endswith(".jsonl")
        for line in open(os.path.join(d, n), "rb").read().splitlines()
    ]


class Probe:
    """A queue of its own bound to `hookfleet.events`: what the router would get."""

    def __init__(self, routing_key: str) -> None:
        self.conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL or ""))
        self.ch = self.conn.channel()
        # As hookfleet declares it, in case the test's vhost has no router yet.
        self.ch.exchange_declare("hookfleet.events", exchange_type="topic", durable=True)
        self.queue = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.queue_bind(self.queue, "hookfleet.events", routing_key=routing_key)
        self.got: Dict[str, Optional[Dict[str, Any]]] = {}

    def headers(self, ids: List[str]) -> Dict[str, Optional[Dict[str, Any]]]:
        """The headers property of each message with one of `ids` (waits for all)."""

        def all_in() -> bool:
            while True:
                _, props, body = self.ch.basic_get(self.queue, auto_ack=True)
                if body is None:
                    return all(i in self.got for i in ids)
                self.got[props.message_id] = props.headers

        wait_for(f"{len(ids)} events on the probe", all_in, 60)
        return {i: self.got[i] for i in ids}

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def probe() -> Iterator[Probe]:
    p = Probe("user.created")
    yield p
    p.close()


def emitted_in_a_span(em: Emitter, tracer: Any) -> Tuple[List[str], Dict[str, Any]]:
    """Four events: in a span, in a span whose trace has a tracestate, outside any
    span, and from another thread while the caller is in a span. Returns their
    ids and what the headers of each must be (None: no headers)."""
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

    want: Dict[str, Any] = {}
    with tracer.start_as_current_span("signup") as span:
        i = em.emit_user_created(1, "in-a-span")
        assert i is not None
        want[i] = {"traceparent": traceparent_of(span)}
        other: List[Optional[str]] = []
        t = threading.Thread(target=lambda: other.append(em.emit_user_created(4, "other-thread")))
        t.start()
        t.join()
        assert other[0] is not None
        want[other[0]] = None  # the span is the caller's thread's, not the emitter's
    remote = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")]),
    )
    with tracer.start_as_current_span(
        "upstream", context=trace.set_span_in_context(NonRecordingSpan(remote))
    ) as span:
        i = em.emit_user_created(2, "with-tracestate")
        assert i is not None
        assert traceparent_of(span).startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
        want[i] = {
            "traceparent": traceparent_of(span),
            "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        }
    i = em.emit_user_created(3, "no-span")
    assert i is not None
    want[i] = None
    return [k for k in want], want


@needs_broker
def test_the_callers_span_goes_with_the_event(
    tracer: Any, probe: Probe, emitter: Emitter
) -> None:
    ids, want = emitted_in_a_span(emitter, tracer)
    assert emitter.flush(30)
    assert probe.headers(ids) == want


@needs_broker
def test_a_spilled_event_keeps_its_trace_context(
    tracer: Any, probe: Probe, tmp_path: Any
) -> None:
    """Emitted while the broker is away: the trace fields are on the spill line,
    and the replay (by the next emitter on the directory) carries the headers.
    A line of the older three-field format replays too, without headers."""
    spill = str(tmp_path / "spill")
    first = Emitter(UNREACHABLE, spill_dir=spill)
    ids, want = emitted_in_a_span(first, tracer)
    assert not first.close(0.2)
    # Its file is free for the next emitter, as when its process exits (after
    # close(), it stays open for the emits that still come).
    with first._spill.lock:
        first._spill.rotate()
    lines = spill_lines(spill)
    assert len(lines) == 4
    assert [len(f) for f in lines] == [5 if want[f[1].decode()] else 3 for f in lines]
    old = "evt_old_format_line"
    with open(os.path.join(spill, "spill-00000000000000000001-1-0.jsonl"), "wb") as f:
        f.write(b'user.created\t%s\t{"id":"%s","type":"user.created","tenant_id":null,'
                b'"timestamp":"2026-12-03T10:00:00.000000Z","data":{"user_id":0,"username":"old"}}\n'
                % (old.encode(), old.encode()))

    second = Emitter(AMQP_URL or "", spill_dir=spill)
    try:
        last = second.emit_user_created(5, "after")
        assert last is not None
        got = probe.headers([old, *ids, last])
        assert got == {old: None, **want, last: None}
        wait_for("the spill replayed and removed", lambda: spill_lines(spill) == [])
    finally:
        second.close(10)


def test_the_spill_line_holds_the_trace_fields(tmp_path: Any) -> None:
    """The Rust SDK's format: `\\t<traceparent>\\t<tracestate>` after the body, the
    tracestate possibly empty; a context that would tear the line is left out;
    three-field lines (older SDKs) and a torn trace still read."""
    spill = Spill(str(tmp_path), 1 << 20)
    body = b'{"id":"e"}'
    events = [
        Pending("t", "e1", body, 1, traceparent=TP, tracestate="a=1,b=2"),
        Pending("t", "e2", body, 2, traceparent=TP),
        Pending("t", "e3", body, 3),
        Pending("t", "e4", body, 4, traceparent=TP, tracestate="a\tb"),
    ]
    with spill.lock:
        assert spill.append(events) == 4
    assert [len(f) for f in spill_lines(str(tmp_path))] == [5, 5, 3, 3]
    [name] = os.listdir(tmp_path)
    assert spill.bytes == os.path.getsize(tmp_path / name), "the bound counts the trace fields"
    files = spill.files()
    with open(files[0], "ab") as f:
        f.write(b"t\te5\t%s\n" % body)  # an older SDK's line
        f.write(b"t\te6\t%s\t00-4bf92f35" % body)  # torn in the traceparent
    claim = spill.claim(files[0])
    assert claim is not None
    back = [(p.id, p.traceparent, p.tracestate, p.body) for p in claim.events]
    assert back == [
        ("e1", TP, "a=1,b=2", body),
        ("e2", TP, "", body),
        ("e3", "", "", body),
        ("e4", "", "", body),
        ("e5", "", "", body),
        ("e6", "", "", body),
    ]
    # Replayed, each is published as pika would publish it, headers and all.
    for p in claim.events:
        assert publish_frames(1, p, 100) == pikas(1, p, 100)


NO_OTEL = """
import sys
sys.modules["opentelemetry"] = None  # as if it were not installed
from hookfleet_emit import Emitter, _trace
assert _trace.current is None
em = Emitter(sys.argv[1], spill_dir=sys.argv[2])
em.close(0.1)
em.emit_user_created(1, "no-otel")
"""


def test_without_opentelemetry_nothing_changes(tmp_path: Any) -> None:
    spill = str(tmp_path / "spill")
    subprocess.run(
        [sys.executable, "-c", NO_OTEL, UNREACHABLE, spill],
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])},
    )
    lines = spill_lines(spill)
    assert len(lines) == 1 and len(lines[0]) == 3


def test_the_context_is_read_as_opentelemetry_reads_it(tracer: Any) -> None:
    """`_trace.current` is OpenTelemetry's current context (read through its
    ContextVar, the fast path, with this version), and `suffix` gives each span's
    fields, once per span."""
    from opentelemetry.context import get_current

    from hookfleet_emit import _trace

    assert _trace.current is not None
    assert _trace.current is not get_current, "the fast path, one C call"
    assert _trace.current() is get_current() and not _trace.current()
    seen = []
    for _ in range(2):
        with tracer.start_as_current_span("s") as span:
            ctx = _trace.current()
            assert ctx is get_current()
            fields = _trace.suffix(ctx)
            assert fields == f"\x00{traceparent_of(span)}\x00\x00"
            assert _trace.suffix(ctx) is fields, "the same context: the same fields"
            seen.append(fields)
    assert seen[0] != seen[1]


def test_with_opentelemetry_and_no_span_nothing_changes(tracer: Any, tmp_path: Any) -> None:
    em = Emitter(UNREACHABLE, spill_dir=str(tmp_path))
    em.close(0.1)
    em.emit_user_created(1, "no-span")  # after close(): straight to disk
    with tracer.start_as_current_span("s"):
        em.emit_user_created(2, "in-a-span")
    assert [len(f) for f in spill_lines(str(tmp_path))] == [3, 5]
