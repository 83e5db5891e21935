"""hookfleet's Python emit SDK: the SoundHash guide's calls, never blocking and
never raising.

    from hookfleet_emit import emit_match_found
    emit_match_found(match_id=42, query_video_id="q", matched_video_id="m",
                     confidence=0.95, tenant_id="acme")

The module-level functions use a default emitter configured from
`HOOKFLEET_AMQP_URL` (see `events`); `Emitter` is there for explicit use, and
`Emitter.recording()` / `recording()` for a producer's tests.

Layout: `_emitter` the caller's side (buffer, counters, recording); `_publisher`
the background thread (pika, confirms); `_spill` the spill directory; `_catalog`
the wire contract's checks and the catalog schemas; `_helpers` the typed calls;
`events` the default emitter; `pytest_plugin` the `hookfleet_recorder` fixture.
"""
from __future__ import annotations

import atexit
import contextlib
from typing import Any, Dict, Iterator, Optional

from . import _metrics, events
from ._catalog import InvalidEvent
from ._emitter import Emitter, Metrics, RecordedEvent, _flush_at_exit
from ._envelope import new_event_id
from ._helpers import Helpers, Id
from .events import emit_event, emit_event_sync, get_default, set_default

__all__ = [
    "Emitter",
    "InvalidEvent",
    "Metrics",
    "RecordedEvent",
    "Id",
    "emit",
    "emit_event",
    "emit_event_sync",
    "emit_match_found",
    "emit_video_processed",
    "emit_job_failed",
    "emit_user_created",
    "emit_subscription_updated",
    "emit_api_limit_reached",
    "flush",
    "get_default",
    "set_default",
    "recording",
    "new_event_id",
    "events",
]


class _Default(Helpers):
    def _send(
        self, event_type: str, data: Dict[str, Any], tenant_id: Optional[str]
    ) -> Optional[str]:
        # Looked up at each call, so that patching events.emit_event_sync works.
        return events.emit_event_sync(event_type=event_type, data=data, tenant_id=tenant_id)


_default_helpers = _Default()
emit_match_found = _default_helpers.emit_match_found
emit_video_processed = _default_helpers.emit_video_processed
emit_job_failed = _default_helpers.emit_job_failed
emit_user_created = _default_helpers.emit_user_created
emit_subscription_updated = _default_helpers.emit_subscription_updated
emit_api_limit_reached = _default_helpers.emit_api_limit_reached


def emit(
    event_type: str,
    data: Dict[str, Any],
    tenant_id: Optional[str] = None,
    id: Optional[str] = None,
) -> Optional[str]:
    """Any catalog type, with its data; returns the event id."""
    return events.emit_event_sync(event_type=event_type, data=data, tenant_id=tenant_id, id=id)


def flush(timeout: float = 10.0) -> bool:
    """Waits (bounded) until the default emitter's events are confirmed."""
    return get_default().flush(timeout)


@contextlib.contextmanager
def recording() -> Iterator[Emitter]:
    """Makes a recording emitter the default for the block, and yields it."""
    rec = Emitter.recording()
    previous = set_default(rec)
    try:
        yield rec
    finally:
        set_default(previous)


# At a normal exit, what is pending is sent (HOOKFLEET_EXIT_FLUSH_TIMEOUT, 5 s).
atexit.register(_flush_at_exit)
_metrics.register()
