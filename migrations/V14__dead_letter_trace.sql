-- Issue #17: the W3C trace context a dead letter carried (its `traceparent`
-- and `tracestate` headers), so a replay continues the event's trace.
ALTER TABLE dead_letters ADD COLUMN traceparent text,
                         ADD COLUMN tracestate text;
