//! Every Prometheus metric hookfleet exports, named once (`hookfleet_` prefix,
//! base units, `_total` counters, `_seconds` histograms). Label values are bounded
//! sets: never ids or URLs.
#![allow(clippy::expect_used)] // registration of these constant definitions cannot fail
use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec, Histogram, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec,
};
use std::sync::LazyLock;

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub static EVENTS_RECEIVED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "hookfleet_events_received_total",
        "Events the router consumed from hookfleet.router."
    )
    .expect("metric")
});
pub static EVENTS_ROUTED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "hookfleet_events_routed_total",
        "Valid events stored and fanned out."
    )
    .expect("metric")
});
pub static EVENTS_INVALID: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "hookfleet_events_invalid_total",
        "Events moved to hookfleet.events.invalid, by reason.",
        &["reason"]
    )
    .expect("metric")
});
pub static DELIVERIES_PUBLISHED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "hookfleet_deliveries_published_total",
        "Deliveries the router published (one per matching endpoint)."
    )
    .expect("metric")
});
pub static ATTEMPTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "hookfleet_attempts_total",
        "Delivery attempts by outcome: succeeded, retried, dead.",
        &["outcome"]
    )
    .expect("metric")
});
pub static ATTEMPT_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "hookfleet_attempt_duration_seconds",
        "HTTP attempt latency, by status class (2xx, 3xx, 4xx, 5xx, error).",
        &["status_class"],
        LATENCY_BUCKETS.to_vec()
    )
    .expect("metric")
});
pub static END_TO_END: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "hookfleet_delivery_latency_seconds",
        "From the router receiving an event to the endpoint answering 2xx.",
        LATENCY_BUCKETS.to_vec()
    )
    .expect("metric")
});
pub static IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "hookfleet_deliveries_in_flight",
        "Deliveries being attempted right now."
    )
    .expect("metric")
});
pub static RETRIES_SCHEDULED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "hookfleet_retries_scheduled_total",
        "Retries published, by tier.",
        &["tier"]
    )
    .expect("metric")
});
pub static BATCH_WRITE: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "hookfleet_batch_write_duration_seconds",
        "Postgres batch transactions, by kind (events, attempts).",
        &["kind"],
        LATENCY_BUCKETS.to_vec()
    )
    .expect("metric")
});
pub static RECONNECTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "hookfleet_reconnects_total",
        "Reconnections after a lost connection, by role.",
        &["role"]
    )
    .expect("metric")
});
pub static ENDPOINTS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "hookfleet_endpoints",
        "Endpoints in the registry, by state (active, paused).",
        &["state"]
    )
    .expect("metric")
});
pub static AMQP_CONNECTED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "hookfleet_amqp_connected",
        "1 while a role's RabbitMQ session is up, by role.",
        &["role"]
    )
    .expect("metric")
});
pub static CONSUMED_QUEUES: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "hookfleet_worker_consumed_queues",
        "Endpoint queues this worker consumes."
    )
    .expect("metric")
});

/// `2xx`…`5xx`, or `error` when no response came.
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "error",
    }
}

/// The text exposition of every registered metric.
pub fn render() -> String {
    use prometheus::Encoder as _;
    let mut buf = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
