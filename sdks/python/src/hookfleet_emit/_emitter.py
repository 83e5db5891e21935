"""`Emitter`: the caller's side. `emit` does no I/O: it serializes `data`, makes
an id, and appends one string to a bounded in-memory buffer (a deque: appending
is atomic, so no lock) that the background publisher (`_publisher.py`) drains;
the envelope and the frames are built there. Past the buffer the event goes to
the spill directory; past the spill's bound it is dropped, counted and logged.
Nothing raises. Inside a span (with opentelemetry installed), the string also
carries the caller's trace context (`_trace`), taken in the caller's thread.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as json_str
from typing import Any, Deque, Dict, List, Optional

from . import _catalog
from ._envelope import (
    Item,
    encode_data,
    envelope,
    make_item,
    new_event_id,
    pending,
    timestamp,
)
from ._helpers import Helpers
from ._spill import Pending, Spill
from ._trace import current as _trace_current
from ._trace import suffix as _trace_suffix

log = logging.getLogger("hookfleet_emit")

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2f"

_time_ns = time.time_ns


@dataclass(frozen=True)
class Metrics:
    """Counters of one emitter. `emitted` = own confirmed + dropped + `outstanding`;
    `confirmed` and `replayed` also count spill files left by an earlier process."""

    emitted: int
    confirmed: int
    spilled: int
    replayed: int
    dropped: int
    outstanding: int
    # Bytes in the spill directory's files (0 for a recording emitter).
    spill_bytes: int = 0


@dataclass(frozen=True)
class RecordedEvent:
    """An event kept by a recording emitter: the envelope as it would be published."""

    id: str
    event_type: str
    tenant_id: Optional[str]
    timestamp: str
    data: Dict[str, Any]


_live: "weakref.WeakSet[Emitter]" = weakref.WeakSet()


class Emitter(Helpers):
    """Publishes events to `hookfleet.events` without ever blocking or raising.

    One background thread per emitter, started on the first `emit` (and again in
    a forked child). Give each service one emitter, or use the module-level
    functions and their default emitter. The constructor raises OSError only
    when `spill_dir` cannot be created; it does not wait for the broker.
    """

    def __init__(
        self,
        amqp_url: str = DEFAULT_AMQP_URL,
        *,
        spill_dir: str = "hookfleet-spill",
        buffer: int = 32_768,
        batch: int = 2000,
        max_spill_bytes: int = 1 << 30,
        _mode: str = "broker",
    ) -> None:
        self.amqp_url = amqp_url
        self.spill_dir = spill_dir
        self.buffer = max(1, buffer)
        self.batch = max(1, batch)
        self.max_spill_bytes = max_spill_bytes
        self._mode = _mode
        self._recorded: List[RecordedEvent] = []
        self._spill: Spill = Spill(spill_dir, max_spill_bytes) if _mode == "broker" else None  # type: ignore[assignment]
        self._reset_state()
        _live.add(self)

    @classmethod
    def recording(cls) -> Emitter:
        """For a producer's tests: no broker, no thread, no files. Each event is
        checked against the wire contract and its catalog schema (an invalid one
        raises `InvalidEvent`, naming the field), counted as confirmed, and kept
        for `assert_emitted` and `recorded`."""
        return cls(_mode="recording")

    @classmethod
    def disabled(cls, reason: str) -> Emitter:
        """Publishes nothing: each event is logged as a warning and counted as
        dropped (the default emitter when HOOKFLEET_AMQP_URL is not set)."""
        em = cls(_mode="disabled")
        em.amqp_url = reason
        return em

    def _reset_state(self) -> None:
        self._queue: Deque[Item] = collections.deque()
        # Items taken out of `_queue` (by the publisher, or to the spill), changed
        # under the spill's lock: `emitted` counts the queue's events as this
        # plus its length, so that emit() itself counts nothing.
        self._taken = 0
        self._mlock = threading.Lock()
        # `emitted` here: the events that never entered the queue.
        self._c: Dict[str, int] = dict.fromkeys(
            ("emitted", "confirmed", "spilled", "replayed", "dropped", "own_done"), 0
        )
        self._wake_event = threading.Event()
        self._parked = False
        # Set when events were spilled: the publisher replays before taking more.
        self._spill_pending = False
        self._thread: Optional[threading.Thread] = None
        self._publisher: Any = None
        self._closed = False
        self._last_drop_log = 0.0

    def _reset_in_child(self) -> None:
        """After os.fork(): the parent's buffer, thread and connection stay the
        parent's; this process starts its own on its next emit."""
        old = self._publisher
        if old is not None:
            _orphans.append(old)  # never closed here: its socket is the parent's
        self._reset_state()
        if self._spill is not None:
            self._spill.reset_in_child()

    def _count(self, **kw: int) -> None:
        with self._mlock:
            for k, v in kw.items():
                self._c[k] += v

    def _dropped(self, n: int, why: str, own: bool = True) -> None:
        self._count(dropped=n, own_done=n if own else 0)
        now = time.monotonic()
        if now - self._last_drop_log > 1.0:  # at most one line a second
            self._last_drop_log = now
            log.error("hookfleet-emit dropped %d event(s): %s", n, why)

    def emit(
        self,
        event_type: str,
        data: Dict[str, Any],
        tenant_id: Optional[str] = None,
        id: Optional[str] = None,
    ) -> Optional[str]:
        """Emits one event; returns its id (None if it could not be serialized).
        Never blocks on the network and never raises, except `InvalidEvent` from
        a recording emitter."""
        try:
            if not (
                isinstance(event_type, str)
                and (tenant_id is None or isinstance(tenant_id, str))
                and (id is None or isinstance(id, str))
            ):
                raise TypeError("event_type, tenant_id and id must be strings")
            event_id = new_event_id() if id is None else id
            # `data` is serialized here, not in the publisher: the caller may
            # change its dict once emit() has returned.
            data_json = encode_data(data)
            t_ns = _time_ns()
        except Exception as e:  # e.g. data that is not JSON: dropped, never raised
            if self._mode == "recording":
                raise _catalog.InvalidEvent(f"the event is invalid: {e}") from e
            self._count(emitted=1)
            self._dropped(1, f"{event_type!r} cannot be serialized: {e}")
            return None
        if self._mode != "broker":
            self._record(event_type, event_id, tenant_id, data_json, t_ns, data)
            return event_id
        # make_item(), inline: this is the one hot path.
        tenant = "null" if tenant_id is None else json_str(tenant_id)
        item = f"{t_ns}\x00{json_str(event_type)}\x00{json_str(event_id)}\x00{tenant}\x00{data_json}"
        if _trace_current is not None:  # None without opentelemetry
            ctx = _trace_current()
            if ctx:  # something attached, maybe a span (empty: the usual no-span case)
                item += _trace_suffix(ctx)
        q = self._queue
        # The usual case: running, and room in the buffer. The rest is in _hand_over.
        if len(q) < self.buffer and self._thread is not None and not self._closed:
            q.append(item)
            if self._parked:
                self._wake()
            return event_id
        try:
            self._hand_over(item)
        except Exception as e:  # the caller's operation never fails because of us
            # e.g. no thread could be started: nothing was counted yet.
            self._count(emitted=1)
            self._dropped(1, f"{type(e).__name__}: {e}")
        return event_id

    def _send(
        self, event_type: str, data: Dict[str, Any], tenant_id: Optional[str]
    ) -> Optional[str]:
        return self.emit(event_type, data, tenant_id)

    def _wake(self) -> None:
        self._parked = False
        self._publisher.wake()

    def _hand_over(self, item: Item) -> None:
        if self._thread is None:
            self._start()
        q = self._queue
        if self._closed:  # after close(): straight to disk, for the next start
            self._count(emitted=1)
            self._spill_events([pending(item)])
        elif len(q) < self.buffer:
            q.append(item)
            if self._parked:
                self._wake()
        else:
            # The buffer is full: move it to disk, then this event, keeping the order.
            with self._spill.lock:
                items = self._drain()
                items.append(item)
                self._count(emitted=1)
                self._spill_locked([pending(i) for i in items])

    def _record(
        self,
        event_type: str,
        event_id: str,
        tenant_id: Optional[str],
        data_json: str,
        t_ns: int,
        data: Dict[str, Any],
    ) -> None:
        if self._mode == "disabled":
            self._count(emitted=1, dropped=1, own_done=1)
            log.warning("%s: %s %s not published", self.amqp_url, event_type, event_id)
            return
        body = envelope(make_item(event_type, event_id, tenant_id, data_json, t_ns))
        _catalog.check(event_type, tenant_id, event_id, data, len(body))
        ev = RecordedEvent(event_id, event_type, tenant_id, timestamp(t_ns), json.loads(data_json))
        with self._mlock:
            self._recorded.append(ev)
            self._c["emitted"] += 1
            self._c["confirmed"] += 1
            self._c["own_done"] += 1

    def _start(self) -> None:
        from ._publisher import Publisher

        with self._mlock:
            if self._thread is not None:
                return
            self._publisher = Publisher(self)
            self._thread = threading.Thread(
                target=self._publisher.run, name="hookfleet-emit", daemon=True
            )
        self._thread.start()

    # Used by the publisher thread.
    def _pop(self, n: int) -> List[Item]:
        """The oldest `n` buffered items (the caller holds the spill lock and has
        checked that there are `n`). One C loop: the thread that pops holds the
        GIL the callers need."""
        self._taken += n
        return list(itertools.islice(iter(self._queue.popleft, None), n))

    def _drain(self) -> List[Item]:
        """Everything buffered (the caller holds the spill lock); callers only
        append, so the length read here is there to pop."""
        return self._pop(len(self._queue))

    def _take(self, n: int) -> List[Item]:
        """Up to `n` buffered events, none while something was spilled since the
        publisher last looked at the spill: those are older and go first. Taken
        under the spill lock, so a caller that moves the buffer to disk and the
        publisher never interleave."""
        with self._spill.lock:
            if self._spill_pending:
                return []
            return self._pop(min(n, len(self._queue)))

    def _spill_locked(self, events: List[Pending]) -> None:
        self._spill_pending = True
        try:
            n = self._spill.append(events)
        except OSError as e:
            self._dropped(len(events), f"the spill directory refused them: {e}")
            return
        self._count(spilled=n)
        if n < len(events):
            self._dropped(
                len(events) - n, f"the spill directory is full (max_spill_bytes={self.max_spill_bytes})"
            )

    def _spill_events(self, events: List[Pending]) -> None:
        with self._spill.lock:
            self._spill_locked(events)

    def _spill_buffer(self) -> None:
        if self._queue:
            with self._spill.lock:
                self._spill_locked([pending(i) for i in self._drain()])

    def metrics(self) -> Metrics:
        if self._spill is not None:
            with self._spill.lock:  # `_taken` and the queue, consistently
                queued = self._taken + len(self._queue)
        else:
            queued = 0
        with self._mlock:
            c = dict(self._c)
        emitted = c["emitted"] + queued
        return Metrics(
            emitted=emitted,
            confirmed=c["confirmed"],
            spilled=c["spilled"],
            replayed=c["replayed"],
            dropped=c["dropped"],
            outstanding=max(0, emitted - c["own_done"]),
            spill_bytes=self._spill.bytes if self._spill is not None else 0,
        )

    def flush(self, timeout: float = 10.0) -> bool:
        """Waits until everything emitted so far is confirmed (or dropped), at most
        `timeout` seconds; returns whether it all was. From async code, use
        `await aflush()`."""
        end = time.monotonic() + timeout
        while self.metrics().outstanding > 0:
            if time.monotonic() >= end:
                return False
            if self._publisher is not None:
                self._publisher.wake()
            time.sleep(0.005)
        return True

    async def aflush(self, timeout: float = 10.0) -> bool:
        """`flush` for a running event loop: waits without blocking it."""
        end = time.monotonic() + timeout
        while self.metrics().outstanding > 0:
            if time.monotonic() >= end:
                return False
            await asyncio.sleep(0.005)
        return True

    def close(self, timeout: float = 10.0) -> bool:
        """Flushes (bounded by `timeout`), then stops the publisher. What is not
        confirmed by then stays in the spill directory for the next start."""
        if self._closed:
            return True
        done = self.flush(timeout)
        self._closed = True
        pub, thread = self._publisher, self._thread
        if pub is not None and thread is not None:
            pub.stopping = True
            pub.wake()
            thread.join(5.0)
        return done

    # Assertions of a recording emitter (empty lists on the others).
    def recorded(self) -> List[RecordedEvent]:
        with self._mlock:
            return list(self._recorded)

    def recorded_of_type(self, event_type: str) -> List[RecordedEvent]:
        return [e for e in self.recorded() if e.event_type == event_type]

    def clear_recorded(self) -> None:
        with self._mlock:
            self._recorded.clear()

    def assert_emitted(self, event_type: str, **fields: Any) -> RecordedEvent:
        """Asserts that an event of `event_type` was emitted whose data has each of
        `fields` with that value (nested dicts match the same way); returns it."""
        events = self.recorded_of_type(event_type)
        for ev in events:
            if _matches(ev.data, fields):
                return ev
        raise AssertionError(
            f"no {event_type} event with {fields!r} was emitted; "
            f"the {event_type} events were: {[e.data for e in events]!r}"
        )

    def assert_not_emitted(self, event_type: str) -> None:
        events = self.recorded_of_type(event_type)
        if events:
            raise AssertionError(f"{len(events)} {event_type} event(s) were emitted: {events!r}")


def _matches(have: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(have, dict) and all(
            k in have and _matches(have[k], v) for k, v in want.items()
        )
    return bool(have == want)


# Publishers a forked child inherited; kept so that no destructor touches the
# parent's connection.
_orphans: List[Any] = []


def _after_fork_in_child() -> None:
    for em in list(_live):
        em._reset_in_child()


def _flush_at_exit() -> None:
    timeout = float(os.environ.get("HOOKFLEET_EXIT_FLUSH_TIMEOUT", "5"))
    for em in list(_live):
        if em._thread is not None:
            em.close(timeout)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
