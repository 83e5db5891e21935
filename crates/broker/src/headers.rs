//! Message headers hookfleet sets on deliveries and reads back.
use lapin::types::{AMQPValue, FieldTable, ShortString};

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
