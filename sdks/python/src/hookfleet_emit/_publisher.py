"""The background publisher: one daemon thread per emitter, one pika
SelectConnection, publisher confirms pipelined (up to `4 * batch` in flight).

Order of publishing, so that events reach the broker in emit order: events of a
failed connection first (they are spilled, into a file named by their emit time),
then the spill files, oldest first, then the in-memory buffer.

A nack, a returned (unroutable) event or a confirm that takes over 30 s fails the
connection: what is unconfirmed is spilled, and the thread reconnects with a
backoff from 100 ms to 5 s. While the broker is away, the buffer is moved to disk
every 50 ms.

The thread shares the GIL with the callers of emit(), so its work per event is
kept to a few Python operations: a batch is taken from the buffer in one C call,
framed in one pass (`_frames.batch_frames`) and written at once; the events in
flight are a list in delivery-tag order, so a confirm of many settles them with
one slice and one count.
"""
from __future__ import annotations

import collections
import logging
import os
import time
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional, Tuple, Union

import pika
from pika.adapters.select_connection import SelectConnection
from pika.spec import Basic, BasicProperties

from ._envelope import SEP, Item, pending, unjson
from ._frames import EXCHANGE, batch_frames, publish_frames
from ._spill import Claim, Pending

if TYPE_CHECKING:
    from ._emitter import Emitter

log = logging.getLogger("hookfleet_emit")

CONFIRM_TIMEOUT = 30.0
REPLAY_EVERY = 1.0
OFFLINE_SPILL_EVERY = 0.05
# While busy, the thread publishes what was buffered every PUMP_EVERY seconds.
PUMP_EVERY = 0.001

# An event in flight: emitted by this process (an Item, a str, framed from the
# buffer) or read from a spill file (a Pending, with its file and line).
Event = Union[Item, Pending]


class Publisher:
    def __init__(self, emitter: Emitter) -> None:
        self.em = emitter
        self.params = pika.URLParameters(emitter.amqp_url)
        self.params.connection_attempts = 1
        self.params.socket_timeout = 5
        # Names the connection in the broker's management UI and rabbitmqctl.
        self.params.client_properties = {"connection_name": f"hookfleet-emit pid {os.getpid()}"}
        self.stopping = False
        self.conn: Optional[SelectConnection] = None
        self.channel: Any = None
        self.tag = 0
        # Published and unconfirmed, in delivery-tag order, from index `head`
        # (whose tag is `head_tag`); None where a confirm came out of order.
        self.inflight: List[Optional[Event]] = []
        self.head = 0
        self.head_tag = 1
        # Replayed events (Pending) in `inflight`: confirms of own events alone
        # are only counted.
        self.replaying = 0
        # Nacked or returned: spilled when the session ends.
        self.failed: List[Event] = []
        # (first delivery tag, time) of each write, for the confirm timeout.
        self.writes: Deque[Tuple[int, float]] = collections.deque()
        # Method frames by routing key, for this channel.
        self.methods: Dict[str, bytes] = {}
        self.returned: set[str] = set()
        # Next to publish: events of claimed spill files.
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
        self.head_tag = 1
        self.methods = {}
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
        inflight = self.inflight
        head = self.head
        i = head + tag - self.head_tag
        if i < head or i >= len(inflight):
            return  # settled already
        if method.multiple or i == head:
            done = inflight[head : i + 1]
            head = i + 1
            while head < len(inflight) and inflight[head] is None:
                head += 1  # confirmed out of order, before
            self.head_tag += head - self.head
            if head == len(inflight):
                inflight.clear()
                head = 0
            elif head > 4096 and 2 * head > len(inflight):
                del inflight[:head]
                head = 0
            self.head = head
        else:  # a single confirm ahead of the oldest
            done = [inflight[i]]
            inflight[i] = None
        self._settle(done, ok)

    def _settle(self, done: List[Optional[Event]], ok: bool) -> None:
        if ok and not self.replaying and not self.returned:
            # The usual case: own events, all taken; None was settled before.
            n = len(done) - done.count(None)
            if n:
                self.progress = True
                self.em._count(confirmed=n, own_done=n)
            return
        failed = False
        confirmed: List[Pending] = []
        direct = 0
        for ev in done:
            if ev is None:
                continue
            if isinstance(ev, Pending):
                self.replaying -= 1
                if ok and ev.id not in self.returned:
                    confirmed.append(ev)
                else:
                    failed = True  # it stays in its file, which is replayed again
            elif ok and unjson(ev.split(SEP, 3)[2]) not in self.returned:
                direct += 1
            else:
                failed = True
                self.failed.append(ev)  # spilled, in order, when the session ends
        self._confirmed(direct, confirmed)
        if failed:
            log.error(
                "hookfleet-emit: the broker %s an event; reconnecting",
                "refused" if not ok else "could not route",
            )
            self._close()

    def _confirmed(self, direct: int, done: List[Pending]) -> None:
        self.progress = self.progress or direct > 0 or bool(done)
        replayed = own_replayed = 0
        for p in done:
            claim = self.claims.get(p.source or "")
            if claim is None:
                continue
            replayed += 1
            own_replayed += 1 if claim.own else 0
            if self.em._spill.confirmed(claim, p.line):
                del self.claims[claim.path]
        self.em._count(
            confirmed=direct + replayed, replayed=replayed, own_done=direct + own_replayed
        )

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
        unconfirmed = self.head < len(self.inflight)
        writes = self.writes
        while len(writes) > 1 and writes[1][0] <= self.head_tag:
            writes.popleft()  # all its events are confirmed
        if unconfirmed and writes and now - writes[0][1] > CONFIRM_TIMEOUT:
            log.error("hookfleet-emit: no confirm within %ss; reconnecting", CONFIRM_TIMEOUT)
            self._close()
            return
        if (now >= self.replay_due or self.em._spill_pending) and not self.replay:
            self._claim_files()
            self.replay_due = now + REPLAY_EVERY
        sent = self._publish_some(now)
        busy = sent > 0 or self.head < len(self.inflight)
        if not busy:
            self.em._parked = True
            if self.em._queue:  # pushed before `parked` was set
                self.em._parked = False
                busy = True
        self.timer = self.conn.ioloop.call_later(PUMP_EVERY if busy else REPLAY_EVERY, self._pump)

    def _publish_some(self, now: float) -> int:
        """Publishes up to `batch` events, in one write to the socket: events of
        claimed spill files, else the buffer's."""
        room = min(self.em.batch, 4 * self.em.batch - (len(self.inflight) - self.head))
        if room <= 0:
            return 0
        conn = self.conn
        channel = self.channel.channel_number
        body_max = getattr(conn, "_body_max_length", 131_064)
        sent: List[Event]
        if self.replay:
            frames: List[bytes] = []
            sent = []
            while self.replay and len(sent) < room:
                p = self.replay.popleft()
                try:
                    frames.append(publish_frames(channel, p, body_max))
                except Exception as e:
                    self._unpublishable(p, e)
                    continue
                sent.append(p)
            self.replaying += len(sent)
            data = b"".join(frames)
        else:
            items = self.em._take(room)
            if not items:
                return 0
            data, sent_items, bad = batch_frames(channel, items, body_max, self.methods)
            for item, why in bad:
                _, event_type, event_id = item.split(SEP, 3)[:3]
                self.em._dropped(1, f"{event_type[:64]} {event_id[:64]}: {why}")
            sent = sent_items  # type: ignore[assignment]
        if not sent:
            return 0
        self.writes.append((self.tag + 1, now))
        self.tag += len(sent)
        self.inflight += sent
        conn._output_marshaled_frames([data])  # type: ignore[union-attr]
        return len(sent)

    def _unpublishable(self, p: Pending, e: Exception) -> None:
        """A replayed event the broker cannot take is dropped (and its spill line
        done)."""
        claim = self.claims.get(p.source or "")
        own = claim is not None and claim.own
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
        unconfirmed = self.failed + [ev for ev in self.inflight[self.head :] if ev is not None]
        own = [pending(ev) for ev in unconfirmed if not isinstance(ev, Pending)]
        if self.conn is not None:
            try:
                self.conn.ioloop.close()  # its wake-up pipe, or each reconnect leaks two fds
            except Exception:
                pass
        self.inflight = []
        self.head = 0
        self.head_tag = 1
        self.replaying = 0
        self.failed = []
        self.writes.clear()
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
