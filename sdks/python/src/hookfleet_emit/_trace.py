"""The caller's trace context (W3C Trace Context, docs/ARCHITECTURE.md §23), taken
at `emit()` time, in the caller's thread, when the `opentelemetry` API package is
importable (`pip install ./sdks/python[otel]`).

emit() does `ctx = current()` and, when `ctx` is not empty, appends
`suffix(ctx)` to its item: "" unless a valid span is current, otherwise the
item's trace fields, `\\0<traceparent>\\0<tracestate>\\0` (tracestate may be empty),
which the publisher turns into the AMQP headers `traceparent` and `tracestate`
(`_frames`) and the spill into the line's trace fields (`_spill`). Without
opentelemetry, `current` is None and emit() pays one `is None` test.

The headers are written by OpenTelemetry's own W3C propagator
(`TraceContextTextMapPropagator`), not the global one (`opentelemetry.propagate`):
hookfleet reads W3C Trace Context only, and the global propagator may be B3, or add
`baggage`, which hookfleet would not pass on.
"""
from __future__ import annotations

import contextvars
import logging
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from ._envelope import trace_fields

log = logging.getLogger("hookfleet_emit")

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

current: Optional[Callable[[], Mapping[str, object]]] = None
_failed = False
# The last context read and its fields: the propagator's output depends on the
# span context alone, and a Context is immutable (attaching a span makes a new
# one), so the events emitted in one span pay for it once (3.6 us a call, mostly
# formatting the ids). Held strongly, so `is` cannot match a new object at the
# old one's address; one tuple, replaced whole, for threads.
_last: Tuple[Any, str] = (None, "")

try:
    from opentelemetry import context as _otel_context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # opentelemetry is optional
    pass
else:
    _inject = TraceContextTextMapPropagator().inject

    def _current_getter() -> Callable[[], Mapping[str, object]]:
        """`opentelemetry.context.get_current`, or, with the default runtime context
        (contextvars), its ContextVar's own `get`: one C call instead of two Python
        calls (40 ns instead of 130 on every emit() without a span). The attribute
        is private, so anything else falls back to the public function."""
        var = getattr(getattr(_otel_context, "_RUNTIME_CONTEXT", None), "_current_context", None)
        if isinstance(var, contextvars.ContextVar):
            get: Callable[[], Mapping[str, object]] = var.get
            return get
        return _otel_context.get_current

    current = _current_getter()


def suffix(ctx: Any) -> str:
    """The trace fields of a span current in `ctx` (an OpenTelemetry Context that is
    not empty; only called when `current` is not None), or "" (no valid span, or
    the propagator failed: the event goes without its trace, and nothing raises)."""
    global _last, _failed
    last = _last
    if last[0] is ctx:
        return last[1]
    carrier: Dict[str, str] = {}
    try:
        _inject(carrier, ctx)
    except Exception as e:
        if not _failed:  # once: a broken propagator must not flood the log
            _failed = True
            log.error("hookfleet-emit could not read the trace context: %s", e)
        return ""
    tp = carrier.get(TRACEPARENT, "")  # none for an invalid (or no) span
    ts = carrier.get(TRACESTATE, "")
    if not tp or "\x00" in tp:  # a NUL would tear the item (no valid one has it)
        fields = ""
    else:
        fields = trace_fields(tp, "" if "\x00" in ts else ts)
    _last = (ctx, fields)
    return fields
