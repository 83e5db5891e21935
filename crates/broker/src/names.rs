//! Names fixed by the wire contract (docs/ARCHITECTURE.md §20).
use std::time::Duration;

/// Topic exchange producers publish to; routing key = event type.
pub const EVENTS_EXCHANGE: &str = "hookfleet.events";
/// The router's queue, bound to every event type.
pub const ROUTER_QUEUE: &str = "hookfleet.router";
/// The ordered router's queue: a single active consumer, bound only to the event
/// types FIFO endpoints subscribe to.
pub const ORDERED_ROUTER_QUEUE: &str = "hookfleet.router.ordered";
/// Direct exchange of deliveries; routing key = endpoint id.
pub const DELIVERIES_EXCHANGE: &str = "hookfleet.deliveries";
/// Alternate exchange (and queue) keeping deliveries whose endpoint queue is gone.
pub const UNROUTABLE: &str = "hookfleet.unroutable";
/// Exhausted deliveries.
pub const DEAD_QUEUE: &str = "hookfleet.dead";
/// Envelopes the router refused, with the reason in `x-invalid-reason`.
pub const INVALID_QUEUE: &str = "hookfleet.events.invalid";

/// `hookfleet.endpoint.<id>`: one queue per endpoint.
pub fn endpoint_queue(endpoint_id: &str) -> String {
    format!("hookfleet.endpoint.{endpoint_id}")
}

/// `hookfleet.retry.<delay>`: the queue of one retry tier, and the fanout
/// exchange of the same name that feeds it. Publishing to the exchange with the
/// endpoint id as routing key keeps that key for the dead-lettering back to
/// `hookfleet.deliveries` when the TTL expires.
pub fn retry_tier(delay: Duration) -> String {
    format!(
        "hookfleet.retry.{}",
        hookfleet_core::retry::tier_name(delay)
    )
}
