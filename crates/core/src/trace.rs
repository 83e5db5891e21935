//! W3C Trace Context across the hops of an event (docs/ARCHITECTURE.md §23):
//! the `traceparent` and `tracestate` headers that enter with an event and go
//! with it to the receiver, and the spans of each hop (`ingest`, `route`,
//! `attempt`, `replay`) that continue them.
//!
//! Tracing is on only when the process installed an exporter
//! (`telemetry.otlp_endpoint`, which calls [`enable`]). While it is off, no hop
//! creates a span and no header is parsed: a `traceparent` that came with an
//! event is passed on unchanged.
//!
//! The hop spans have the target [`TARGET`] (what the OpenTelemetry layer
//! exports) and one field, `trace_id`, recorded once the span knows its trace:
//! every log line written inside a hop carries it. The attributes operators
//! filter on are set with [`attr`] (OpenTelemetry attributes, not log fields).
use opentelemetry::trace::{
    SpanContext, SpanId, Status, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The target of every hop span, the one the OpenTelemetry layer exports.
pub const TARGET: &str = "hookfleet::trace";
/// W3C Trace Context: the parent of whatever continues the trace.
pub const TRACEPARENT: &str = "traceparent";
/// W3C Trace Context: vendor data, passed on as it came.
pub const TRACESTATE: &str = "tracestate";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns the hop spans on (called once the exporter is installed).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether hops make spans (an exporter is installed).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The W3C headers of a message or request, as they came or as they go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl Headers {
    pub fn new(traceparent: Option<&str>, tracestate: Option<&str>) -> Headers {
        Headers {
            traceparent: traceparent.map(str::to_owned),
            tracestate: tracestate.map(str::to_owned),
        }
    }
}

/// Parses a `traceparent` (version `00`, or a later version read as `00`
/// requires): `None` when it is malformed or names the invalid trace or span.
pub fn parse_traceparent(tp: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let tp = tp.trim();
    let mut parts = tp.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !hex(version, 2) || version == "ff" || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
        return None;
    }
    // Version 00 has exactly four parts; a later one may add more.
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()? & 0x01;
    let state = tracestate
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    let cx = SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, state);
    cx.is_valid().then_some(cx)
}

/// The `traceparent` of a span context.
pub fn format_traceparent(cx: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        cx.trace_id(),
        cx.span_id(),
        cx.trace_flags().to_u8()
    )
}

/// Makes `span` continue the trace of `incoming` (a new trace when it has
/// none or a malformed one) and records its `trace_id`. Call it before the
/// span is first entered.
pub fn continue_from(span: &tracing::Span, incoming: &Headers) {
    if span.is_disabled() {
        return;
    }
    let parent = incoming
        .traceparent
        .as_deref()
        .and_then(|tp| parse_traceparent(tp, incoming.tracestate.as_deref()));
    if let Some(parent) = parent {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        span.record("trace_id", tracing::field::display(sc.trace_id()));
    }
}

/// The headers that make the next hop a child of `span`: its `traceparent`
/// and the `tracestate` it inherited. `None` when the span has no valid
/// context (tracing off, or the span disabled).
pub fn headers_of(span: &tracing::Span) -> Option<Headers> {
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return None;
    }
    let state = sc.trace_state().header();
    Some(Headers {
        traceparent: Some(format_traceparent(&sc)),
        tracestate: (!state.is_empty()).then_some(state),
    })
}

/// The producer's current span as W3C headers, for the SDK and the outbox:
/// `None` when the producer has no OpenTelemetry span (no layer installed,
/// or no span entered).
pub fn current_headers() -> Option<Headers> {
    headers_of(&tracing::Span::current())
}

/// Sets an OpenTelemetry attribute on a hop span (a no-op on a disabled one).
pub fn attr(span: &tracing::Span, key: &'static str, value: impl Into<opentelemetry::Value>) {
    if !span.is_disabled() {
        span.set_attribute(key, value);
    }
}

/// Marks a hop span failed, with a short description.
pub fn error(span: &tracing::Span, description: impl Into<std::borrow::Cow<'static, str>>) {
    if !span.is_disabled() {
        span.set_status(Status::error(description));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = parse_traceparent(ok, Some("congo=t61rcWkgMzE")).expect("valid");
        assert_eq!(
            cx.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(cx.is_sampled());
        assert_eq!(cx.trace_state().header(), "congo=t61rcWkgMzE");
        assert_eq!(format_traceparent(&cx), ok);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(!parse_traceparent(unsampled, None)
            .expect("valid")
            .is_sampled());
        // A later version may carry more parts; its first four are read.
        assert!(parse_traceparent(&format!("01-{}-ext", &ok[3..]), None).is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad, None).is_none(), "{bad}");
        }
    }

    #[test]
    fn off_by_default_and_nothing_without_a_layer() {
        assert!(!enabled());
        assert!(current_headers().is_none());
        let span = tracing::Span::none();
        continue_from(
            &span,
            &Headers::new(
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                None,
            ),
        );
        assert!(headers_of(&span).is_none());
    }
}
