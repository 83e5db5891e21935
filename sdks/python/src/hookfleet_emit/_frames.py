"""The AMQP 0-9-1 frames of a publish, marshalled here instead of by pika's
`basic_publish`: its generic marshalling and one socket write per frame cost
three quarters of the publisher thread's time (profiled), and that thread holds
the GIL the callers of emit() need. The bytes are the same as pika's (a test
compares them): `basic.publish` to `hookfleet.events` with `mandatory`, then the
content header with content_type, delivery_mode=2 and message_id (and, for an
event emitted inside a span, the headers `traceparent` and `tracestate`: a field
table of long strings, as pika writes a dict of str), then the body in frames of
at most the negotiated frame size.

`batch_frames` does a whole batch of emitted events in one pass, building each
envelope on the way: the method frame is cached per routing key and the rest is
three `struct` packs and constant pieces, so the thread's Python work per event
is a few operations. A traced event takes the general path (`_content`), so the
untraced one pays one index to tell them apart.
"""
from __future__ import annotations

import struct
from typing import Dict, List, Tuple

from ._envelope import BODY, SEP, Item, timestamp, unjson
from ._spill import Pending

EXCHANGE = "hookfleet.events"
_FRAME_END = b"\xce"
# basic.publish: class 60, method 40, ticket 0, then the exchange (shortstr).
_PUBLISH = struct.pack(">HHH", 60, 40, 0) + bytes([len(EXCHANGE)]) + EXCHANGE.encode()
# Property flags: content_type (bit 15), delivery_mode (bit 12), message_id (bit 7);
# and headers (bit 13) for an event with a trace context.
_FLAGS = (1 << 15) | (1 << 12) | (1 << 7)
_FLAGS_HEADERS = _FLAGS | (1 << 13)
_CONTENT_TYPE = b"\x10application/json"
_PERSISTENT = b"\x02"
_MANDATORY = b"\x01"

# Frame header: type, channel, payload size.
_FRAME = struct.Struct(">BHI")
# A field table's size, and a long string's.
_U32 = struct.Struct(">I")
# A header's name (shortstr), then the type of its value: S, a long string.
_TRACEPARENT = b"\x0btraceparent" + b"S"
_TRACESTATE = b"\x0atracestate" + b"S"
# The content header frame up to its properties: frame header, class 60,
# weight 0, body size, property flags.
_HEADER = struct.Struct(">BHIHHQH")
# The header's payload: 14 bytes, then content_type, delivery_mode, message_id.
_HEADER_FIXED = 14 + len(_CONTENT_TYPE) + len(_PERSISTENT) + 1
# The properties before message_id's bytes, by its length.
_PROPS = [_CONTENT_TYPE + _PERSISTENT + bytes([n]) for n in range(256)]
# The same after a headers table: delivery_mode, then message_id's length.
_PROPS_AFTER_HEADERS = [_PERSISTENT + bytes([n]) for n in range(256)]
# The end of the header frame, then the header of a body frame.
_END_BODY = struct.Struct(">BBHI")

# Routing keys whose method frame is cached, per channel.
_METHODS_MAX = 1024


def method_frame(channel: int, event_type: str) -> bytes:
    """Raises ValueError when the routing key is over 255 bytes."""
    rk = event_type.encode()
    if len(rk) > 255:
        raise ValueError("the event type and the id must be at most 255 bytes")
    method = _PUBLISH + bytes([len(rk)]) + rk + _MANDATORY
    return _FRAME.pack(1, channel, len(method)) + method + _FRAME_END


def headers_table(traceparent: str, tracestate: str) -> bytes:
    """The `headers` property of a traced event: `traceparent`, then `tracestate`
    when it is not empty (b"" without a traceparent: no headers at all)."""
    if not traceparent:
        return b""
    tp = traceparent.encode()
    fields = _TRACEPARENT + _U32.pack(len(tp)) + tp
    if tracestate:
        ts = tracestate.encode()
        fields += _TRACESTATE + _U32.pack(len(ts)) + ts
    return _U32.pack(len(fields)) + fields


def _content(
    channel: int, mid: bytes, body: bytes, body_max: int, table: bytes = b""
) -> List[bytes]:
    """The header frame (with `table` as the headers property when not empty),
    then the body frames."""
    if len(mid) > 255:
        raise ValueError("the event type and the id must be at most 255 bytes")
    if table:
        size = _HEADER_FIXED + len(table) + len(mid)
        out = [
            _HEADER.pack(2, channel, size, 60, 0, len(body), _FLAGS_HEADERS),
            _CONTENT_TYPE, table, _PERSISTENT, bytes([len(mid)]), mid, _FRAME_END,
        ]
    else:
        out = [
            _HEADER.pack(2, channel, _HEADER_FIXED + len(mid), 60, 0, len(body), _FLAGS),
            _PROPS[len(mid)], mid, _FRAME_END,
        ]
    for start in range(0, len(body), body_max):
        chunk = body[start : start + body_max]
        out += [_FRAME.pack(3, channel, len(chunk)), chunk, _FRAME_END]
    return out


def publish_frames(channel: int, p: Pending, body_max: int) -> bytes:
    """One event's frames, with its trace context as headers. Raises ValueError
    when the routing key or the id is over 255 bytes."""
    method = method_frame(channel, p.event_type)
    table = headers_table(p.traceparent, p.tracestate)
    return method + b"".join(_content(channel, p.id.encode(), p.body, body_max, table))


def batch_frames(
    channel: int, items: List[Item], body_max: int, methods: Dict[str, bytes]
) -> Tuple[bytes, List[Item], List[Tuple[Item, Exception]]]:
    """The frames of `items`, in order, as one write; with the items they hold
    and those that cannot be published (a routing key or an id over 255 bytes).
    `methods` caches method frames by event type, for this channel."""
    parts: List[bytes] = []
    sent: List[Item] = []
    bad: List[Tuple[Item, Exception]] = []
    hdr = _HEADER.pack
    end_body = _END_BODY.pack
    # The last trace context's headers: the events of one span are alike.
    last_trace, last_table = "", b""
    for item in items:
        try:
            t_ns, event_type, event_id, tenant_id, data = item.split(SEP, 4)
            table = b""
            if item[-1] == SEP:  # emitted inside a span: data\0traceparent\0tracestate\0
                data, trace = data.split(SEP, 1)
                if trace != last_trace:
                    tp, ts, _ = trace.split(SEP)
                    last_trace, last_table = trace, headers_table(tp, ts)
                table = last_table
            method = methods.get(event_type)  # by its JSON: no decoding
            if method is None:
                if len(methods) >= _METHODS_MAX:
                    methods.clear()
                method = methods[event_type] = method_frame(channel, unjson(event_type))
            mid = (event_id[1:-1] if "\\" not in event_id else unjson(event_id)).encode()
            body = (BODY % (event_id, event_type, tenant_id, timestamp(int(t_ns)), data)).encode()
            lm = len(mid)
            lb = len(body)
            if lm <= 255 and lb <= body_max and not table:  # the usual case, inline
                parts += (
                    method,
                    hdr(2, channel, _HEADER_FIXED + lm, 60, 0, lb, _FLAGS),
                    _PROPS[lm], mid,
                    end_body(0xCE, 3, channel, lb), body, _FRAME_END,
                )
            elif lm <= 255 and lb <= body_max:  # the same with the trace's headers
                parts += (
                    method,
                    hdr(2, channel, _HEADER_FIXED + len(table) + lm, 60, 0, lb, _FLAGS_HEADERS),
                    _CONTENT_TYPE, table, _PROPS_AFTER_HEADERS[lm], mid,
                    end_body(0xCE, 3, channel, lb), body, _FRAME_END,
                )
            else:
                content = _content(channel, mid, body, body_max, table)
                parts.append(method)
                parts += content
        except Exception as e:  # ValueError; also UnicodeEncodeError (a lone surrogate)
            bad.append((item, e))
            continue
        sent.append(item)
    return b"".join(parts), sent, bad
