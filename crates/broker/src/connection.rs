//! Connecting to RabbitMQ, with backoff, and noticing when the connection is lost.
use anyhow::Context as _;
use futures::StreamExt as _;
use lapin::{Connection, ConnectionProperties, Event};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One connection attempt, bounded to 10 s.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    tokio::time::timeout(Duration::from_secs(10), Connection::connect(url, props))
        .await
        .context("timed out connecting to RabbitMQ (amqp.url)")?
        .context("connecting to RabbitMQ (amqp.url)")
}

/// Connects, retrying with exponential backoff (200 ms to 5 s) until it works or
/// `shutdown` fires (then `None`).
pub async fn connect_with_backoff(
    url: &str,
    name: &str,
    shutdown: &CancellationToken,
) -> Option<Connection> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match connect(url, name).await {
            Ok(c) => return Some(c),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), retry_in = ?backoff, "RabbitMQ unreachable; retrying.")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Resolves when the connection reports an error or stops being connected.
pub async fn wait_closed(conn: &Connection) {
    let mut events = conn.events_listener();
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(Event::Error(e)) => {
                    tracing::warn!(error = %e, "RabbitMQ connection lost.");
                    return;
                }
                None => return,
                Some(_) => {}
            },
            _ = poll.tick() => if !conn.status().connected() { return },
        }
    }
}
