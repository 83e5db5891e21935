//! Identifiers: a short prefix naming the kind, then a ULID (time-ordered, so
//! newest-first listings and index locality come for free). Within a process the
//! ULIDs are monotonic, so ids made in the same millisecond still sort in order.
use std::sync::{LazyLock, Mutex};

static GENERATOR: LazyLock<Mutex<ulid::Generator>> =
    LazyLock::new(|| Mutex::new(ulid::Generator::new()));

fn next() -> ulid::Ulid {
    let mut g = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    // Overflow needs 2^80 ids in one millisecond; fall back to a fresh random one.
    g.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

/// A new event id, `evt_<ulid>`.
pub fn event_id() -> String {
    format!("evt_{}", next())
}

/// A new endpoint id, `ep_<ulid>`.
pub fn endpoint_id() -> String {
    format!("ep_{}", next())
}

/// A new delivery id, `dlv_<ulid>`.
pub fn delivery_id() -> String {
    format!("dlv_{}", next())
}

/// Milliseconds since the Unix epoch, for latency headers carried across processes.
pub fn now_millis() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}
