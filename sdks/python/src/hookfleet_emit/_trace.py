"""The caller's trace context (W3C Trace Context, docs/ARCHITECTURE.md §23), taken
at `emit()` time, in the caller's thread, when the `opentelemetry` API package is
importable (`pip install ./sdks/python[otel]`).

`suffix` is None without opentelemetry: emit() then pays one `is None` test and
builds the same item as before. With it, `suffix()` returns "" unless a valid span
is current, and otherwise the item's trace fields, `\\0<traceparent>\\0<tracestate>\\0`
(tracestate may be empty), which the publisher turns into the AMQP headers
`traceparent` and `tracestate` (`_frames`) and the spill into the line's trace
fields (`_spill`).

The headers are written by OpenTelemetry's own W3C propagator
(`TraceContextTextMapPropagator`), not the global one (`opentelemetry.propagate`):
hookfleet reads W3C Trace Context only, and the global propagator may be B3, or add
`baggage`, which hookfleet would not pass on.
"""
from __future__ import annotations

import logging
from typing import Callable, Dict, Optional

from ._envelope import trace_fields

log = logging.getLogger("hookfleet_emit")

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

suffix: Optional[Callable[[], str]]

try:
    from opentelemetry.context import get_current
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # opentelemetry is optional
    suffix = None
else:
    _inject = TraceContextTextMapPropagator().inject
    _failed = False

    def _suffix() -> str:
        """The current span's trace fields for an item, or "" (no span, or the
        propagator failed: the event goes without its trace, never raises)."""
        global _failed
        try:
            ctx = get_current()
            if not ctx:  # nothing attached: the usual no-span case
                return ""
            carrier: Dict[str, str] = {}
            _inject(carrier, ctx)
        except Exception as e:
            if not _failed:  # once: a broken propagator must not flood the log
                _failed = True
                log.error("hookfleet-emit could not read the trace context: %s", e)
            return ""
        tp = carrier.get(TRACEPARENT)  # none for an invalid (or no) span
        ts = carrier.get(TRACESTATE, "")
        if not tp or "\x00" in tp:  # a NUL would tear the item (no valid one has it)
            return ""
        if "\x00" in ts:
            ts = ""
        return trace_fields(tp, ts)

    suffix = _suffix
