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
        "Endpoints in the registry, by state (active, paused, circuit_open: active with its circuit open or half-open).",
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

pub static QUEUE_MESSAGES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "hookfleet_queue_messages",
        "Messages ready in each shared hookfleet queue (router, retry tiers, dead, invalid, unroutable), polled by the router.",
        &["queue"]
    )
    .expect("metric")
});
pub static ENDPOINT_QUEUE_MAX: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "hookfleet_endpoint_queue_messages_max",
        "Messages ready in the busiest endpoint queue this worker is primary for (polled only for queues with deliveries in the last period); take the max over workers."
    )
    .expect("metric")
});
pub static DELIVERABLE_BACKLOG: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "hookfleet_deliverable_backlog",
        "Deliveries waiting for this worker's endpoints: messages ready in the queues it is primary for, plus the messages it holds unacknowledged. Paused and open-circuit endpoints are not consumed and not counted. Sum over workers: KEDA scales on it."
    )
    .expect("metric")
});
pub static WORKER_MEMBERS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "hookfleet_worker_members",
        "Live workers this worker sees in worker_members (they share the endpoint queues)."
    )
    .expect("metric")
});
pub static REGISTRY_UPDATES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "hookfleet_registry_updates_total",
        "Registry updates: endpoint (one endpoint read again after a notification naming it), full (the whole table read: at start, on the resync timer, after LISTEN reconnects).",
        &["kind"]
    )
    .expect("metric")
});
pub static DEAD_LETTERS_REPLAYED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "hookfleet_dead_letters_replayed_total",
        "Dead letters sent back to hookfleet.deliveries by this process (dlq replay, recover)."
    )
    .expect("metric")
});
pub static DEAD_LETTERS_KEPT: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "hookfleet_dead_letters_kept_total",
        "Dead letters moved from hookfleet.dead into PostgreSQL by this worker's keeper."
    )
    .expect("metric")
});
pub static DEAD_LETTERS_PURGED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "hookfleet_dead_letters_purged_total",
        "Dead letters removed by this process (dlq purge)."
    )
    .expect("metric")
});
pub static OUTBOX_RELAYED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "hookfleet_outbox_relayed_total",
        "Outbox rows published with a confirm and marked sent."
    )
    .expect("metric")
});
pub static CIRCUIT_OPENED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "hookfleet_circuit_opened_total",
        "Endpoint circuits this worker opened (first opening or a failed probe)."
    )
    .expect("metric")
});
pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "hookfleet_http_requests_total",
        "API requests answered, by route template, method and status code.",
        &["route", "method", "status"]
    )
    .expect("metric")
});
pub static HTTP_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "hookfleet_http_request_duration_seconds",
        "API request latency, from the request head to the response head, by route template and method.",
        &["route", "method"],
        LATENCY_BUCKETS.to_vec()
    )
    .expect("metric")
});
/// The `route` label of a request that matched no route: raw paths would make
/// the label set as large as what clients care to send.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// The `method` label of a method outside [`http_method`]'s list.
pub const OTHER_METHOD: &str = "other";

/// The `method` label: the standard methods as they are, anything else
/// `other` (a client can send any token as a method).
pub fn http_method(method: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or(OTHER_METHOD)
}

pub static BUILD_INFO: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "hookfleet_build_info",
        "Always 1; the version of the running binary.",
        &["version"]
    )
    .expect("metric")
});

/// Registers every metric a process with `roles` exports, with its label values
/// at zero, so dashboards and alerts see series before the first event (a rate
/// over a series that appears late misses its first increments). Also the
/// standard `process_*` metrics where the platform has them.
pub fn init(roles: &[&str]) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        BUILD_INFO
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        #[cfg(target_os = "linux")]
        {
            let _ = prometheus::register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ));
        }
    });
    for role in roles {
        AMQP_CONNECTED.with_label_values(&[*role]);
        RECONNECTS.with_label_values(&[*role]);
        match *role {
            "router" => {
                LazyLock::force(&EVENTS_RECEIVED);
                LazyLock::force(&EVENTS_ROUTED);
                LazyLock::force(&DELIVERIES_PUBLISHED);
                for r in crate::envelope::InvalidEnvelope::METRIC_LABELS {
                    EVENTS_INVALID.with_label_values(&[r]);
                }
                BATCH_WRITE.with_label_values(&["events"]);
            }
            "worker" => {
                for o in ["succeeded", "retried", "dead"] {
                    ATTEMPTS.with_label_values(&[o]);
                }
                LazyLock::force(&END_TO_END);
                LazyLock::force(&IN_FLIGHT);
                LazyLock::force(&CONSUMED_QUEUES);
                LazyLock::force(&DELIVERABLE_BACKLOG);
                LazyLock::force(&ENDPOINT_QUEUE_MAX);
                LazyLock::force(&WORKER_MEMBERS);
                LazyLock::force(&CIRCUIT_OPENED);
                LazyLock::force(&DEAD_LETTERS_KEPT);
                BATCH_WRITE.with_label_values(&["attempts"]);
            }
            "api" => {
                LazyLock::force(&DEAD_LETTERS_REPLAYED);
                LazyLock::force(&DEAD_LETTERS_PURGED);
                // Registered now; a series appears with the first request of
                // its route, method and status (too many to list at zero).
                LazyLock::force(&HTTP_REQUESTS);
                LazyLock::force(&HTTP_DURATION);
            }
            "outbox-relay" => {
                LazyLock::force(&OUTBOX_RELAYED);
            }
            _ => {}
        }
        if *role == "router" || *role == "worker" {
            for st in ["active", "paused", "circuit_open"] {
                ENDPOINTS.with_label_values(&[st]);
            }
            for k in ["endpoint", "full"] {
                REGISTRY_UPDATES.with_label_values(&[k]);
            }
        }
    }
}

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
