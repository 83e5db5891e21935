//! Message headers hookfleet sets on deliveries and reads back.
use hookfleet_core::trace;
use lapin::types::{AMQPValue, FieldTable, ShortString};

/// W3C Trace Context, as an event's producer set it and as each hop passes
/// it on (docs/ARCHITECTURE.md §23).
pub use hookfleet_core::trace::{TRACEPARENT, TRACESTATE};

pub const DELIVERY_ID: &str = "x-delivery-id";
pub const EVENT_ID: &str = "x-event-id";
pub const ENDPOINT_ID: &str = "x-endpoint-id";
pub const TENANT_ID: &str = "x-tenant-id";
pub const EVENT_TYPE: &str = "x-event-type";
/// The attempt number the next delivery of this message will be (1-based).
pub const ATTEMPT: &str = "x-attempt";
/// Attempts made before a resend or replay gave the delivery a fresh budget: the
/// retry schedule counts from here, attempt numbers keep counting up.
pub const ATTEMPT_BASE: &str = "x-attempt-base";
/// Milliseconds since the epoch when the router received the event.
pub const RECEIVED_AT: &str = "x-received-at";
pub const LAST_ERROR: &str = "x-last-error";
pub const ATTEMPTS: &str = "x-attempts";
pub const INVALID_REASON: &str = "x-invalid-reason";
/// When a delivery was dead-lettered (RFC 3339).
pub const DEAD_AT: &str = "x-dead-at";
/// Why it was dead-lettered (`hookfleet_core::DeadReason`).
pub const DEAD_REASON: &str = "x-dead-reason";

/// Reads a string header.
pub fn get_str<'a>(t: Option<&'a FieldTable>, key: &str) -> Option<&'a str> {
    match t?.inner().get(key)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// Reads an integer header of any width.
pub fn get_i64(t: Option<&FieldTable>, key: &str) -> Option<i64> {
    match t?.inner().get(key)? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::Timestamp(n) => i64::try_from(*n).ok(),
        _ => None,
    }
}

/// Sets a string header.
pub fn set_str(t: &mut FieldTable, key: &str, value: &str) {
    t.insert(ShortString::from(key), AMQPValue::LongString(value.into()));
}

/// Sets an integer header.
pub fn set_i64(t: &mut FieldTable, key: &str, value: i64) {
    t.insert(ShortString::from(key), AMQPValue::LongLongInt(value));
}

/// The `traceparent` and `tracestate` a message carries.
pub fn trace_of(t: Option<&FieldTable>) -> trace::Headers {
    trace::Headers::new(get_str(t, TRACEPARENT), get_str(t, TRACESTATE))
}

/// Sets `traceparent` and `tracestate` (those present) on a message's headers.
pub fn set_trace(t: &mut FieldTable, h: &trace::Headers) {
    if let Some(tp) = &h.traceparent {
        set_str(t, TRACEPARENT, tp);
    }
    if let Some(ts) = &h.tracestate {
        set_str(t, TRACESTATE, ts);
    }
}

/// What a delivery message carries besides its body (the envelope).
#[derive(Debug, Clone, Copy)]
pub struct DeliveryMeta<'a> {
    pub delivery_id: &'a str,
    pub event_id: &'a str,
    pub endpoint_id: &'a str,
    pub event_type: &'a str,
    pub tenant_id: Option<&'a str>,
    /// The attempt number of the next delivery (1 for a new one).
    pub attempt: i64,
    /// Attempts before a resend's fresh budget (0 for a new delivery).
    pub attempt_base: i64,
    /// The trace the delivery continues, if any.
    pub trace: Option<&'a trace::Headers>,
}

/// The properties of an event published to `hookfleet.events` (by the API's
/// ingest, `hookfleet emit`, the `emit` SDK and the worker's operational
/// events): persistent (delivery mode 2), JSON, `message_id` = the event id,
/// which the router takes as the envelope's id when the body has none.
pub fn event_properties(event_id: &str) -> lapin::BasicProperties {
    lapin::BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(event_id.into())
}

/// [`event_properties`] with the producer's trace as `traceparent` and
/// `tracestate` headers (none when `trace` is `None`).
pub fn traced_event_properties(
    event_id: &str,
    trace: Option<&trace::Headers>,
) -> lapin::BasicProperties {
    let props = event_properties(event_id);
    match trace {
        Some(h) if h.traceparent.is_some() => {
            let mut t = FieldTable::default();
            set_trace(&mut t, h);
            props.with_headers(t)
        }
        _ => props,
    }
}

/// The properties of a delivery message, as the router, test sends and resends
/// publish it to `hookfleet.deliveries`: [`event_properties`] of its event, and
/// the headers the worker reads.
pub fn delivery_properties(m: &DeliveryMeta<'_>) -> lapin::BasicProperties {
    let mut t = FieldTable::default();
    set_str(&mut t, DELIVERY_ID, m.delivery_id);
    set_str(&mut t, EVENT_ID, m.event_id);
    set_str(&mut t, ENDPOINT_ID, m.endpoint_id);
    set_str(&mut t, EVENT_TYPE, m.event_type);
    if let Some(tenant) = m.tenant_id {
        set_str(&mut t, TENANT_ID, tenant);
    }
    set_i64(&mut t, ATTEMPT, m.attempt);
    if m.attempt_base > 0 {
        set_i64(&mut t, ATTEMPT_BASE, m.attempt_base);
    }
    set_i64(&mut t, RECEIVED_AT, hookfleet_core::ids::now_millis());
    if let Some(h) = m.trace {
        set_trace(&mut t, h);
    }
    event_properties(m.event_id).with_headers(t)
}
