"""The event on the wire: its id, its timestamp, its `data` serialized, and the
envelope (`{"id","type","tenant_id","timestamp","data"}`) built from them.

`emit()` calls `encode_data` and `new_event_id` and keeps the result as an `Item`;
the envelope is built later, by the publisher thread (`envelope`). Each function
here does its work in C where it can (the `json` module's C encoder, a table of
base32 digit pairs, a timestamp cached per second): the caller's microseconds,
and the publisher's hold on the GIL that the callers share, are the budget.
"""
from __future__ import annotations

import json
import random
import time
from json.encoder import encode_basestring_ascii as json_str
from typing import Any, Callable, Optional, Tuple

from ._spill import Pending

# What emit() hands to the publisher: one str, not a tuple, so that the events
# waiting in the buffer and in flight are no work for the garbage collector (a
# tuple per event set off a collection every 500 to 800 calls, a pause of 100 to
# 180 us in whichever call it fell on: docs/BENCHMARKS.md, session 7). Its fields, split by NUL: the emit time in
# ns, then event_type, id and tenant_id as JSON strings (tenant_id may be
# `null`), then data as JSON. JSON here is ASCII with control characters
# escaped, so no field holds a NUL. An event emitted inside a span has the
# caller's trace context after data (`_trace.suffix`): `\0<traceparent>\0
# <tracestate>\0`, tracestate possibly empty; only such an item ends with a NUL,
# so telling the two apart costs one index.
Item = str
SEP = "\x00"

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every 10-bit value as its two Crockford base32 digits.
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
# The last millisecond and its 10 digits (a ULID's time part); one tuple,
# replaced whole, so threads never see half of it.
_last_ms: Tuple[int, str] = (-1, "")


def _unserializable(o: Any) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _make_encoder() -> Callable[[Any], str]:
    """`json.dumps(data, separators=(",", ":"), allow_nan=False)`, calling the C
    encoder directly: json.dumps checks its arguments and builds that encoder
    anew on every call, which is most of its cost for a small dict. No circular
    check: a self-referencing `data` fails with RecursionError instead of
    ValueError (either way the event is dropped and counted)."""
    c_make = getattr(json.encoder, "c_make_encoder", None)
    if c_make is None:  # not CPython: the pure Python encoder
        return json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    c_encode = c_make(None, _unserializable, json_str, None, ":", ",", False, False, False)

    def encode(data: Any) -> str:
        return "".join(c_encode(data, 0))

    return encode


encode_data = _make_encoder()


def new_event_id() -> str:
    """`evt_<ulid>`: 48 bits of milliseconds, 80 random bits (the random module is
    reseeded in a forked child, so workers do not repeat each other)."""
    global _last_ms
    ms = time.time_ns() // 1_000_000
    r = random.getrandbits(80)
    p = _PAIRS
    last = _last_ms
    if last[0] == ms:
        t = last[1]
    else:  # 50 bits (2 of padding), 10 digits
        t = p[ms >> 40] + p[ms >> 30 & 1023] + p[ms >> 20 & 1023] + p[ms >> 10 & 1023] + p[ms & 1023]
        _last_ms = (ms, t)
    return (
        f"evt_{t}{p[r >> 70]}{p[r >> 60 & 1023]}{p[r >> 50 & 1023]}{p[r >> 40 & 1023]}"
        f"{p[r >> 30 & 1023]}{p[r >> 20 & 1023]}{p[r >> 10 & 1023]}{p[r & 1023]}"
    )


_last_sec: Tuple[int, str] = (-1, "")


def timestamp(t_ns: int) -> str:
    """RFC 3339 in UTC with microseconds: `2026-12-03T10:00:00.123456Z`."""
    global _last_sec
    secs, ns = divmod(t_ns, 1_000_000_000)
    last = _last_sec
    if last[0] != secs:
        last = _last_sec = (secs, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)))
    return "%s.%06dZ" % (last[1], ns // 1000)


def make_item(
    event_type: str, event_id: str, tenant_id: Optional[str], data_json: str, t_ns: int
) -> Item:
    """The item of an event (emit() builds it inline, the same way)."""
    tenant = "null" if tenant_id is None else json_str(tenant_id)
    return f"{t_ns}\x00{json_str(event_type)}\x00{json_str(event_id)}\x00{tenant}\x00{data_json}"


def unjson(s: str) -> str:
    """A JSON string of an Item back to the str."""
    return s[1:-1] if "\\" not in s else str(json.loads(s))


# The envelope, from the item's JSON fields: id, type, tenant_id, timestamp, data.
BODY = '{"id":%s,"type":%s,"tenant_id":%s,"timestamp":"%s","data":%s}'


def trace_fields(traceparent: str, tracestate: str) -> str:
    """What a traced item has after data (the caller has checked that neither
    holds a NUL)."""
    return f"{SEP}{traceparent}{SEP}{tracestate}{SEP}"


def split_trace(data: str) -> Tuple[str, str, str]:
    """The data field of a traced item (one that ends with a NUL), split into
    data, traceparent and tracestate."""
    data, tp, ts, _ = data.split(SEP)
    return data, tp, ts


def envelope(item: Item) -> bytes:
    """The message body (ASCII: every string is JSON-escaped)."""
    t_ns, event_type, event_id, tenant_id, data = item.split(SEP, 4)
    if item[-1] == SEP:
        data = split_trace(data)[0]
    return (BODY % (event_id, event_type, tenant_id, timestamp(int(t_ns)), data)).encode()


def pending(item: Item) -> Pending:
    """An emitted event as the spill writes it, with its trace context."""
    t_ns, event_type, event_id, tenant_id, data = item.split(SEP, 4)
    tp = ts = ""
    if item[-1] == SEP:
        data, tp, ts = split_trace(data)
    t = int(t_ns)
    body = (BODY % (event_id, event_type, tenant_id, timestamp(t), data)).encode()
    return Pending(unjson(event_type), unjson(event_id), body, t, traceparent=tp, tracestate=ts)
