"""The publisher marshals its frames itself: the bytes must be pika's, with the
trace context's headers and without. And the envelope it builds from an emitted
item must be the one the wire contract says."""
from __future__ import annotations

import json
import re
import time
from typing import Dict, List, Optional

import pytest
from pika import frame, spec

from hookfleet_emit._envelope import (
    envelope,
    make_item,
    new_event_id,
    pending,
    timestamp,
    trace_fields,
)
from hookfleet_emit._frames import batch_frames, publish_frames
from hookfleet_emit._spill import Pending


TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def pikas(channel: int, p: Pending, body_max: int) -> bytes:
    headers: Optional[Dict[str, str]] = None
    if p.traceparent:  # as an application would give them to pika
        headers = {"traceparent": p.traceparent}
        if p.tracestate:
            headers["tracestate"] = p.tracestate
    want = (
        frame.Method(channel, spec.Basic.Publish(exchange="hookfleet.events",
                                                 routing_key=p.event_type,
                                                 mandatory=True)).marshal()
        + frame.Header(channel, len(p.body), spec.BasicProperties(
            content_type="application/json", delivery_mode=2, message_id=p.id,
            headers=headers)).marshal()
    )
    for start in range(0, len(p.body), body_max):
        want += frame.Body(channel, p.body[start:start + body_max]).marshal()
    return want


@pytest.mark.parametrize("size", [0, 10, 100, 250])
def test_the_frames_are_pikas(size: int) -> None:
    body = b"{" + b"x" * size + b"}"
    p = Pending("match.found", "evt_01ABC", body, 0)
    # A frame size of 108: 100 body bytes a frame.
    assert publish_frames(3, p, 100) == pikas(3, p, 100)


@pytest.mark.parametrize("size", [0, 100, 250])
@pytest.mark.parametrize("tracestate", ["", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"])
def test_the_frames_with_a_trace_context_are_pikas(size: int, tracestate: str) -> None:
    body = b"{" + b"x" * size + b"}"
    p = Pending("match.found", "evt_01ABC", body, 0, traceparent=TP, tracestate=tracestate)
    assert publish_frames(3, p, 100) == pikas(3, p, 100)
    assert b"traceparent" in publish_frames(3, p, 100)


def test_overlong_names_are_refused() -> None:
    with pytest.raises(ValueError):
        publish_frames(1, Pending("t" * 256, "id", b"{}", 0), 1000)


def items() -> List[str]:
    t = time.time_ns()
    return [
        make_item("match.found", new_event_id(), "acme", '{"match_id":1}', t),
        make_item("user.created", "my-own:id.1", None, '{"user_id":"ü"}', t + 1),
        make_item("user.created", 'quote"and\\back', "tenant-ü", "{}", t + 2),
        make_item("video.processed", "x" * 255, None, json.dumps({"t": "y" * 400}), t + 3),
        make_item("näme", "ïd", "t", "{}", t + 4),
    ]


@pytest.mark.parametrize("body_max", [100, 131_064])
def test_a_batch_is_each_events_frames_in_order(body_max: int) -> None:
    batch = items()
    methods: Dict[str, bytes] = {}
    data, sent, bad = batch_frames(5, batch, body_max, methods)
    assert (sent, bad) == (batch, [])
    assert data == b"".join(pikas(5, pending(i), body_max) for i in batch)
    # Again, with the method frames cached.
    assert batch_frames(5, batch, body_max, methods)[0] == data


@pytest.mark.parametrize("body_max", [100, 131_064])
def test_a_batch_with_traced_events_is_each_events_frames_in_order(body_max: int) -> None:
    """Items emitted inside a span (with the trace fields after data) among
    untraced ones: each traced one gets the headers, the others none."""
    plain = items()
    batch = [
        plain[0] + trace_fields(TP, ""),
        plain[1],
        plain[2] + trace_fields(TP, "vendor=a,other=b"),
        plain[3] + trace_fields(TP, "k=v"),  # body over the frame size at 100
        plain[4],
    ]
    data, sent, bad = batch_frames(5, batch, body_max, {})
    assert (sent, bad) == (batch, [])
    assert [pending(i).traceparent for i in batch] == [TP, "", TP, TP, ""]
    assert pending(batch[2]).tracestate == "vendor=a,other=b"
    assert data == b"".join(pikas(5, pending(i), body_max) for i in batch)
    # The envelope is the untraced item's.
    assert [envelope(i) for i in batch] == [envelope(i) for i in plain]
    assert [pending(i).body for i in batch] == [envelope(i) for i in plain]


def test_a_batch_leaves_out_what_cannot_be_published() -> None:
    t = time.time_ns()
    good = make_item("user.created", "a", None, "{}", t)
    too_long = [
        make_item("t" * 256, "b", None, "{}", t),
        make_item("user.created", "i" * 256, None, "{}", t),
        make_item("user.created", "\ud800", None, "{}", t),  # not UTF-8
    ]
    data, sent, bad = batch_frames(1, [too_long[0], good, *too_long[1:]], 1000, {})
    assert sent == [good] and [i for i, _ in bad] == too_long
    assert data == pikas(1, pending(good), 1000)


def test_the_envelope_of_an_item() -> None:
    t = 1_767_225_600_123_456_789  # 2026-01-01T00:00:00.123456789Z
    item = make_item("match.found", "evt_1", "acme", '{"a":[1,2.5,null]}', t)
    assert json.loads(envelope(item)) == {
        "id": "evt_1", "type": "match.found", "tenant_id": "acme",
        "timestamp": "2026-01-01T00:00:00.123456Z", "data": {"a": [1, 2.5, None]},
    }
    assert list(json.loads(envelope(make_item("t", "i", None, "{}", t)))) == [
        "id", "type", "tenant_id", "timestamp", "data"]
    odd = make_item("ty\x00pe", 'i"d\n', "tënant", "{}", t)
    assert json.loads(envelope(odd))["type"] == "ty\x00pe"
    p = pending(odd)
    assert (p.event_type, p.id, p.body, p.t_ns) == ("ty\x00pe", 'i"d\n', envelope(odd), t)
    assert timestamp(t + 1_000_000_000) == "2026-01-01T00:00:01.123456Z"


def test_event_ids_are_ulids_of_the_time() -> None:
    crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    before = time.time_ns() // 1_000_000
    ids = [new_event_id() for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == 1000
    for i in ids:
        assert re.fullmatch(r"evt_[0-7][0-9A-HJKMNP-TV-Z]{25}", i), i
        ms = 0
        for c in i[4:14]:
            ms = ms * 32 + crockford.index(c)
        assert before <= ms <= after
