"""The default emitter and `emit_event_sync`, the one function every module-level
helper calls (so a test can patch `<your package>.events.emit_event_sync`, as the
SoundHash guide's tests do).

The default emitter is made on first use from the environment:
- `HOOKFLEET_AMQP_URL`: the broker. When it is not set, events are logged as
  warnings and dropped: code under test runs without a broker and never fails.
- `HOOKFLEET_SPILL_DIR`: the spill directory (default `hookfleet-spill`).
- `HOOKFLEET_MAX_SPILL_BYTES`: its bound (default 1 GiB).
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, Optional

from ._catalog import InvalidEvent
from ._emitter import Emitter

log = logging.getLogger("hookfleet_emit")

_default: Optional[Emitter] = None
_lock = threading.Lock()


def _from_env() -> Emitter:
    url = os.environ.get("HOOKFLEET_AMQP_URL")
    if not url:
        return Emitter.disabled("HOOKFLEET_AMQP_URL is not set")
    return Emitter(
        url,
        spill_dir=os.environ.get("HOOKFLEET_SPILL_DIR", "hookfleet-spill"),
        max_spill_bytes=int(os.environ.get("HOOKFLEET_MAX_SPILL_BYTES", str(1 << 30))),
    )


def get_default() -> Emitter:
    """The emitter the module-level functions use (made from the environment)."""
    global _default
    em = _default
    if em is not None:
        return em
    with _lock:
        if _default is None:
            try:
                _default = _from_env()
            except Exception as e:  # e.g. a spill directory that cannot be made
                log.error("hookfleet-emit could not start: %s; events are dropped", e)
                _default = Emitter.disabled(f"hookfleet-emit could not start: {e}")
        return _default


def set_default(emitter: Optional[Emitter]) -> Optional[Emitter]:
    """Makes `emitter` the default (None: from the environment again on next use);
    returns the previous one."""
    global _default
    with _lock:
        previous, _default = _default, emitter
    return previous


def emit_event_sync(
    event_type: str,
    data: Dict[str, Any],
    tenant_id: Optional[str] = None,
    id: Optional[str] = None,
) -> Optional[str]:
    """Hands one event to the default emitter; returns its id. Never raises, except
    `InvalidEvent` in recording mode."""
    try:
        return get_default().emit(event_type, data, tenant_id, id)
    except InvalidEvent:
        raise
    except Exception:
        log.exception("hookfleet-emit: %s not emitted", event_type)
        return None


async def emit_event(
    event_type: str,
    data: Dict[str, Any],
    tenant_id: Optional[str] = None,
    id: Optional[str] = None,
) -> Optional[str]:
    """`emit_event_sync` for `await`: it does no I/O either, so it never yields."""
    return emit_event_sync(event_type=event_type, data=data, tenant_id=tenant_id, id=id)
