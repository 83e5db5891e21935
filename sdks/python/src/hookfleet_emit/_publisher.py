"""The background publisher: one daemon thread per emitter, one pika
SelectConnection, publisher confirms pipelined (up to `4 * batch` in flight).

Order of publishing, so that events reach the broker in emit order: events of a
failed connection first (they are spilled, into a file named by their emit time),
then the spill files, oldest first, then the in-memory buffer.

A nack, a returned (unroutable) event or a confirm that takes over 30 s fails the
connection: what is unconfirmed is spilled, and the thread reconnects with a
backoff from 100 ms to 5 s. While the broker is away, the buffer is moved to disk
every 50 ms.
"""
from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional, Tuple

import pika
from pika.adapters.select_connection import SelectConnection
from pika.spec import Basic, BasicProperties

from ._frames import EXCHANGE, publish_frames
from ._spill import Claim, Pending

if TYPE_CHECKING:
    from ._emitter import Emitter

log = logging.getLogger("hookfleet_emit")

CONFIRM_TIMEOUT = 30.0
REPLAY_EVERY = 1.0
OFFLINE_SPILL_EVERY = 0.05


class Publisher:
    def __init__(self, emitter: Emitter) -> None:
        self.em = emitter
        self.params = pika.URLParameters(emitter.amqp_url)
        self.params.connection_attempts = 1
        self.params.socket_timeout = 5
        self.stopping = False
        self.conn: Optional[SelectConnection] = None
        self.channel: Any = None
        self.tag = 0
        # delivery tag -> (event, publish time); insertion order is tag order.
        self.inflight: Dict[int, Tuple[Pending, float]] = {}
        self.returned: set[str] = set()
        # Next to publish: events of claimed spill files, or taken from the buffer.
        self.replay: Deque[Pending] = collections.deque()
        self.claims: Dict[str, Claim] = {}
        self.replay_due = 0.0
        self.timer: Any = None
        self.ready = False
        # Whether this session had an event confirmed.
        self.progress = False

    # The thread's loop: connect, run the session, fail over, back off.
    def run(self) -> None:
        backoff = 0.1
        while not self.stopping:
            try:
                backoff = self._cycle(backoff)
            except Exception:  # the thread must outlive any bug of ours
                log.exception("hookfleet-emit publisher error; retrying")
                time.sleep(1.0)
        try:
            self.em._spill_buffer()
        except Exception:
            log.exception("hookfleet-emit could not spill at stop")

    def _cycle(self, backoff: float) -> float:
        """One connection, then the wait before the next; returns the next backoff."""
        self.ready = self.progress = False
        self._session()
        self._after_session()
        if self.stopping:
            return backoff
        if self.progress:  # not after a session that only failed (unroutable)
            backoff = 0.1
        deadline = time.monotonic() + backoff
        while time.monotonic() < deadline and not self.stopping:
            self.em._spill_buffer()
            self.em._wake_event.wait(OFFLINE_SPILL_EVERY)
            self.em._wake_event.clear()
        return min(backoff * 2, 5.0)

    def _session(self) -> None:
        try:
            self.conn = SelectConnection(
                self.params,
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_close,
            )
            self.conn.ioloop.start()
        except Exception as e:  # never let the thread die
            log.error("hookfleet-emit connection failed: %s", e)

    def _on_open_error(self, conn: SelectConnection, err: BaseException) -> None:
        log.warning("hookfleet-emit cannot reach the broker: %s", err)
        conn.ioloop.stop()

    def _on_close(self, conn: SelectConnection, reason: BaseException) -> None:
        if not self.stopping:
            log.warning("hookfleet-emit lost the broker: %s", reason)
        conn.ioloop.stop()

    def _on_open(self, conn: SelectConnection) -> None:
        conn.channel(on_open_callback=self._on_channel)

    def _on_channel(self, ch: Any) -> None:
        self.channel = ch
        self.tag = 0
        ch.add_on_close_callback(lambda _ch, _r: self._close())
        # A mandatory publish that no queue takes comes back here, before its ack.
        ch.add_on_return_callback(self._on_return)
        ch.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_select_ok)

    def _on_select_ok(self, _frame: Any) -> None:
        # Idempotent; hookfleet declares the exchange exactly so.
        self.channel.exchange_declare(
            exchange=EXCHANGE, exchange_type="topic", durable=True, callback=self._on_ready
        )

    def _on_ready(self, _frame: Any) -> None:
        self.ready = True
        self.replay_due = 0.0
        self._pump()

    def _close(self) -> None:
        conn = self.conn
        if conn is None:
            return
        if conn.is_open:
            conn.close()  # _on_close stops the loop
        elif conn.is_closed:
            conn.ioloop.stop()

    def wake(self) -> None:
        """Called from emit() when the thread is parked (thread-safe)."""
        conn = self.conn
        if conn is not None and self.ready:
            try:
                conn.ioloop.add_callback_threadsafe(self._pump)
            except Exception:
                pass
        self.em._wake_event.set()

    def _on_return(self, _ch: Any, _method: Any, props: BasicProperties, _body: bytes) -> None:
        if props.message_id:
            self.returned.add(props.message_id)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        ok = isinstance(method, Basic.Ack)
        tag = method.delivery_tag
        if method.multiple:
            # The dict is in tag order: stop at the first tag past this one.
            tags = list(itertools.takewhile(lambda t: t <= tag, self.inflight))
        else:
            tags = [tag] if tag in self.inflight else []
        failed = False
        done: List[Pending] = []
        for t in tags:
            p = self.inflight[t][0]
            if not ok or p.id in self.returned:
                # Left in flight: spilled, in order, when the session ends.
                failed = True
                continue
            del self.inflight[t]
            done.append(p)
        self._confirmed(done)
        if failed:
            log.error(
                "hookfleet-emit: the broker %s an event; reconnecting",
                "refused" if not ok else "could not route",
            )
            self._close()

    def _confirmed(self, done: List[Pending]) -> None:
        self.progress = self.progress or bool(done)
        direct = replayed = own_replayed = 0
        for p in done:
            if p.source is None:
                direct += 1
                continue
            claim = self.claims.get(p.source)
            if claim is None:
                continue
            replayed += 1
            own_replayed += 1 if claim.own else 0
            if self.em._spill.confirmed(claim, p.line):
                del self.claims[p.source]
        self.em._count(
            confirmed=direct + replayed, replayed=replayed, own_done=direct + own_replayed
        )

    def _next(self) -> Optional[Pending]:
        if not self.replay:
            self.replay.extend(self.em._take(self.em.batch))
        return self.replay.popleft() if self.replay else None

    def _pump(self) -> None:
        if self.timer is not None and self.conn is not None:
            self.conn.ioloop.remove_timeout(self.timer)
        self.timer = None
        if self.conn is None or not self.ready or not self.channel.is_open:
            return
        now = time.monotonic()
        if self.stopping:  # close() flushed first: what is left is spilled
            self._close()
            return
        if self.inflight and now - next(iter(self.inflight.values()))[1] > CONFIRM_TIMEOUT:
            log.error("hookfleet-emit: no confirm within %ss; reconnecting", CONFIRM_TIMEOUT)
            self._close()
            return
        if (now >= self.replay_due or self.em._spill_pending) and not self.replay:
            self._claim_files()
            self.replay_due = now + REPLAY_EVERY
        sent = self._publish_some(now)
        busy = sent > 0 or bool(self.inflight)
        if not busy:
            self.em._parked = True
            if self.em._queue:  # pushed before `parked` was set
                self.em._parked = False
                busy = True
        self.timer = self.conn.ioloop.call_later(0.001 if busy else REPLAY_EVERY, self._pump)

    def _publish_some(self, now: float) -> int:
        """Publishes up to `batch` events, in one write to the socket."""
        window = 4 * self.em.batch
        conn = self.conn
        channel = self.channel.channel_number
        body_max = getattr(conn, "_body_max_length", 131_064)
        frames: List[bytes] = []
        while len(frames) < self.em.batch and len(self.inflight) < window:
            p = self._next()
            if p is None:
                break
            try:
                frames.append(publish_frames(channel, p, body_max))
            except Exception as e:
                self._unpublishable(p, e)
                continue
            self.tag += 1
            self.inflight[self.tag] = (p, now)
        if frames:
            conn._output_marshaled_frames([b"".join(frames)])  # type: ignore[union-attr]
        return len(frames)

    def _unpublishable(self, p: Pending, e: Exception) -> None:
        """An event the broker cannot take is dropped (and its spill line done)."""
        claim = self.claims.get(p.source or "")
        own = p.source is None or (claim is not None and claim.own)
        self.em._dropped(1, f"{p.event_type[:64]} {p.id[:64]}: {e}", own=own)
        if claim is not None and self.em._spill.confirmed(claim, p.line):
            del self.claims[claim.path]

    def _claim_files(self) -> None:
        spill = self.em._spill
        with spill.lock:
            self.em._spill_pending = False
        for path in spill.files():
            if path in self.claims:
                continue
            claim = spill.claim(path)
            if claim is None:
                continue
            if not claim.events:  # everything confirmed before, or empty
                claim.remaining = 1
                spill.confirmed(claim, -1)
                continue
            self.claims[path] = claim
            self.replay.extend(claim.events)

    def _after_session(self) -> None:
        """The connection is gone: spill what was in flight (file events stay in
        their files) and release the claimed files."""
        own: List[Pending] = [p for p, _ in self.inflight.values() if p.source is None]
        own.extend(p for p in self.replay if p.source is None)
        if self.conn is not None:
            try:
                self.conn.ioloop.close()  # its wake-up pipe, or each reconnect leaks two fds
            except Exception:
                pass
        self.inflight.clear()
        self.returned.clear()
        self.replay.clear()
        for claim in self.claims.values():
            claim.fh.close()
        self.claims.clear()
        self.channel = None
        self.conn = None
        self.timer = None
        if own:
            self.em._spill_events(own)
