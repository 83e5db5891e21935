//! The ops server every long-running process runs on `metrics.listen`: `/metrics`
//! (Prometheus text format), `/healthz` (the process is alive) and `/readyz` (the
//! registry is loaded, Postgres answers, and each role of this process holds a
//! RabbitMQ session; what a process lacks is not checked).
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use hookfleet_store::{Pool, Registry};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What `/readyz` checks.
#[derive(Clone, Default)]
pub struct Ops {
    /// hookfleet's database: must answer `SELECT 1`.
    pub pool: Option<Pool>,
    /// Must have loaded once.
    pub registry: Option<Arc<Registry>>,
    /// Each must hold a RabbitMQ session (`hookfleet_amqp_connected{role}`).
    pub roles: Vec<&'static str>,
}

/// Serves until `shutdown`.
pub async fn serve(listener: TcpListener, ops: Ops, shutdown: CancellationToken) {
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(|| async {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    hookfleet_core::metrics::render(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(ops);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "Ops server failed.");
    }
}

async fn readyz(State(ops): State<Ops>) -> (StatusCode, String) {
    let mut problems = Vec::new();
    if let Some(registry) = &ops.registry {
        if *registry.subscribe().borrow() == 0 {
            problems.push("endpoint registry not loaded".to_owned());
        }
    }
    if let Some(pool) = &ops.pool {
        let db =
            tokio::time::timeout(Duration::from_secs(2), hookfleet_store::pool::ping(pool)).await;
        if !matches!(db, Ok(Ok(()))) {
            problems.push("postgres unreachable".to_owned());
        }
    }
    for r in &ops.roles {
        if hookfleet_core::metrics::AMQP_CONNECTED
            .with_label_values(&[*r])
            .get()
            != 1
        {
            problems.push(format!("{r}: no RabbitMQ session"));
        }
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join(", ")),
        )
    }
}
