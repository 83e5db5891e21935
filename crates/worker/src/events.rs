//! The operational events an attempt raises (docs/ARCHITECTURE.md §10):
//! `endpoint.disabled` and `endpoint.circuit_opened` from a health
//! [`Notice`], `delivery.exhausted` when a delivery runs out of attempts.
use crate::health::Notice;
use hookfleet_broker::{headers as h, names};
use hookfleet_core::envelope::{now_rfc3339, rfc3339};
use hookfleet_core::operational;
use hookfleet_store::registry::{RegEndpoint, Snapshot};
use lapin::Channel;
use std::time::Duration;

/// Publishes the event a health notice about `ep` raises.
pub async fn publish_notice(
    ch: &Channel,
    snap: &Snapshot,
    ep: &RegEndpoint,
    notice: Notice,
    last_error: Option<&str>,
) {
    let (event_type, data) = of_notice(notice, ep, last_error);
    publish(ch, snap, ep, event_type, data).await;
}

/// The event a health notice about `ep` raises: `(type, data)`.
pub fn of_notice(
    notice: Notice,
    ep: &RegEndpoint,
    last_error: Option<&str>,
) -> (&'static str, serde_json::Value) {
    match notice {
        Notice::Disabled { reason } => (
            operational::ENDPOINT_DISABLED,
            serde_json::json!({"endpoint_id": &*ep.id, "url": &*ep.url, "reason": reason, "disabled_at": now_rfc3339()}),
        ),
        Notice::CircuitOpened {
            failures,
            next_probe_in,
        } => (
            operational::ENDPOINT_CIRCUIT_OPENED,
            serde_json::json!({
                "endpoint_id": &*ep.id, "url": &*ep.url, "consecutive_failures": failures,
                "next_probe_at": rfc3339(std::time::SystemTime::now() + next_probe_in),
                "last_error": last_error,
            }),
        ),
    }
}

/// What a `delivery.exhausted` event says.
pub struct Exhausted<'a> {
    pub delivery_id: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub endpoint_id: &'a str,
    pub attempts: u32,
    pub last_error: Option<&'a str>,
}

impl Exhausted<'_> {
    pub fn data(&self) -> serde_json::Value {
        serde_json::json!({
            "delivery_id": self.delivery_id, "event_id": self.event_id, "event_type": self.event_type,
            "endpoint_id": self.endpoint_id, "attempts": self.attempts, "last_error": self.last_error,
        })
    }
}

/// Publishes an operational event about `ep` to `hookfleet.events`, like any
/// producer, with a confirm, when another webhook of its tenant subscribes to
/// it. Best effort: three tries, then a logged error (the state change it
/// reports is recorded in PostgreSQL either way).
pub async fn publish(
    ch: &Channel,
    snap: &Snapshot,
    ep: &RegEndpoint,
    event_type: &str,
    data: serde_json::Value,
) {
    let tenant_id = ep.tenant_id.as_deref();
    if !snap
        .matching(tenant_id, event_type)
        .any(|other| other.id != ep.id)
    {
        return;
    }
    let (id, body) = operational::envelope(event_type, tenant_id, data);
    for attempt in 1..=3 {
        let props = h::event_properties(&id);
        match crate::publish_confirmed(ch, names::EVENTS_EXCHANGE, event_type, &body, props).await {
            Ok(()) => {
                tracing::info!(event_id = %id, event_type, "Operational event published.");
                return;
            }
            Err(e) if attempt == 3 => {
                tracing::error!(event_id = %id, event_type, error = format!("{e:#}"), "Could not publish an operational event.");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200 * attempt)).await,
        }
    }
}
