//! Identifiers: a short prefix naming the kind, then a ULID (time-ordered, so
//! newest-first listings and index locality come for free).

/// A new event id, `evt_<ulid>`.
pub fn event_id() -> String {
    format!("evt_{}", ulid::Ulid::new())
}

/// A new endpoint id, `ep_<ulid>`.
pub fn endpoint_id() -> String {
    format!("ep_{}", ulid::Ulid::new())
}

/// A new delivery id, `dlv_<ulid>`.
pub fn delivery_id() -> String {
    format!("dlv_{}", ulid::Ulid::new())
}

/// Milliseconds since the Unix epoch, for latency headers carried across processes.
pub fn now_millis() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}
