//! Operational events: what hookfleet itself publishes about a tenant's
//! endpoints, like any event, to the tenant's webhooks that subscribe to them.
//! They are never delivered to the endpoint they are about, and a delivery of
//! one that runs out of attempts raises no `delivery.exhausted`, so a failing
//! endpoint cannot feed events about itself back into itself.
use serde_json::value::RawValue;

/// An endpoint was disabled (410 Gone, or `circuit.auto_disable_after`).
pub const ENDPOINT_DISABLED: &str = "endpoint.disabled";
/// An endpoint's circuit opened: its deliveries wait for a probe.
pub const ENDPOINT_CIRCUIT_OPENED: &str = "endpoint.circuit_opened";
/// A delivery spent its attempts and went to the dead letters.
pub const DELIVERY_EXHAUSTED: &str = "delivery.exhausted";

pub const TYPES: [&str; 3] = [
    ENDPOINT_DISABLED,
    ENDPOINT_CIRCUIT_OPENED,
    DELIVERY_EXHAUSTED,
];

pub fn is_operational(event_type: &str) -> bool {
    TYPES.contains(&event_type)
}

/// The endpoint an operational event is about: `data.endpoint_id`.
pub fn about_endpoint(event_type: &str, data: &RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct About {
        endpoint_id: String,
    }
    if !is_operational(event_type) {
        return None;
    }
    serde_json::from_str::<About>(data.get())
        .ok()
        .map(|a| a.endpoint_id)
}

/// A complete envelope for an operational event: `(event id, body)`.
pub fn envelope(
    event_type: &str,
    tenant_id: Option<&str>,
    data: serde_json::Value,
) -> (String, Vec<u8>) {
    let id = crate::ids::event_id();
    let body = serde_json::json!({
        "id": id,
        "type": event_type,
        "tenant_id": tenant_id,
        "timestamp": crate::envelope::now_rfc3339(),
        "data": data,
    });
    (id, serde_json::to_vec(&body).unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_an_event_is_about() {
        let data = RawValue::from_string(r#"{"endpoint_id":"ep_1","reason":"x"}"#.into()).unwrap();
        assert_eq!(
            about_endpoint(ENDPOINT_DISABLED, &data),
            Some("ep_1".into())
        );
        assert_eq!(about_endpoint("user.created", &data), None);
        let (id, body) = envelope(
            DELIVERY_EXHAUSTED,
            Some("acme"),
            serde_json::json!({"endpoint_id": "ep_1"}),
        );
        let env = crate::Envelope::parse(&body, DELIVERY_EXHAUSTED, Some(&id), 1 << 20).unwrap();
        assert_eq!(env.tenant_id.as_deref(), Some("acme"));
    }
}
