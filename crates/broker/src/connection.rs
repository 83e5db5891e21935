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
                // A channel-level (soft) error, such as a passive declare of a
                // queue that does not exist, closes that channel only: the
                // connection and the session's other channels are fine. Ending
                // the session for it once let one tenant's retry schedule keep
                // every router reconnecting (issue #14).
                Some(Event::Error(e)) if e.is_amqp_soft_error() => {
                    tracing::debug!(error = %e, "A RabbitMQ channel was closed by the broker; the connection stays.");
                }
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

/// Closes a connection, bounded to 5 s: a broker that does not answer close-ok
/// must not hold up a shutdown.
pub async fn close(conn: &Connection, reason: &str) {
    if tokio::time::timeout(Duration::from_secs(5), conn.close(200, reason.into()))
        .await
        .is_err()
    {
        tracing::warn!("RabbitMQ did not acknowledge the connection close within 5 s.");
    }
}

/// How long a publish may wait for its confirm before it counts as failed (the
/// message is then retried or redelivered: at-least-once either way).
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// Awaits a publisher confirm, bounded by [`CONFIRM_TIMEOUT`]; a nack is an error.
pub async fn confirmed(p: lapin::Result<lapin::PublisherConfirm>) -> anyhow::Result<()> {
    let conf = tokio::time::timeout(CONFIRM_TIMEOUT, p.context("publishing")?)
        .await
        .context("timed out waiting for the publish confirm")?
        .context("waiting for the publish confirm")?;
    check_confirmation(conf)
}

/// A nack, or an ack of a mandatory publish that came back unroutable, is an error.
pub(crate) fn check_confirmation(conf: lapin::Confirmation) -> anyhow::Result<()> {
    if conf.is_nack() {
        anyhow::bail!("the broker refused (nacked) a publish");
    }
    // A mandatory publish that no queue took is still acked; the returned message
    // is the only sign: https://www.rabbitmq.com/docs/confirms#when-publishes-are-confirmed
    if conf.take_message().is_some() {
        anyhow::bail!("the broker returned an unroutable publish (no queue bound)");
    }
    Ok(())
}

/// Runs `session` on a fresh connection, again and again, until `shutdown`: the
/// supervisor every long-running role shares. Each session ends when its
/// connection is lost (or on shutdown); the next one starts after a reconnect with
/// backoff. Keeps `hookfleet_amqp_connected{role}` and `hookfleet_reconnects_total`.
pub async fn supervise<F, Fut>(
    url: &str,
    role: &'static str,
    shutdown: &CancellationToken,
    mut session: F,
) where
    F: FnMut(std::sync::Arc<Connection>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    use hookfleet_core::metrics;
    let name = format!("hookfleet-{role}");
    let mut first = true;
    while !shutdown.is_cancelled() {
        let Some(conn) = connect_with_backoff(url, &name, shutdown).await else {
            break;
        };
        if !first {
            metrics::RECONNECTS.with_label_values(&[role]).inc();
        }
        first = false;
        let conn = std::sync::Arc::new(conn);
        metrics::AMQP_CONNECTED.with_label_values(&[role]).set(1);
        let result = session(conn.clone()).await;
        metrics::AMQP_CONNECTED.with_label_values(&[role]).set(0);
        if let Err(e) = result {
            tracing::warn!(
                role,
                error = format!("{e:#}"),
                "Session ended; reconnecting."
            );
        }
        close(&conn, "stopping").await;
        if !shutdown.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// How long an ack or a nack may take. On a connection that died without lapin
/// noticing yet, one may never resolve; unbounded, it held a worker's attempt
/// writer (and with it every later ack) for good (found by `make chaos`).
pub const ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Acks one message, bounded by [`ACK_TIMEOUT`]. On an error the broker
/// redelivers the message once its channel is gone.
pub async fn ack(acker: &lapin::Acker) -> anyhow::Result<()> {
    bounded(acker.ack(lapin::options::BasicAckOptions::default())).await
}

/// Returns one message to its queue, bounded by [`ACK_TIMEOUT`].
pub async fn nack_requeue(acker: &lapin::Acker) -> anyhow::Result<()> {
    bounded(acker.nack(lapin::options::BasicNackOptions {
        multiple: false,
        requeue: true,
    }))
    .await
}

async fn bounded<T>(f: impl std::future::Future<Output = lapin::Result<T>>) -> anyhow::Result<()> {
    match tokio::time::timeout(ACK_TIMEOUT, f).await {
        Ok(r) => r.map(|_| ()).map_err(anyhow::Error::from),
        Err(_) => anyhow::bail!(
            "RabbitMQ took the ack or nack in no {} s; the connection is presumed dead",
            ACK_TIMEOUT.as_secs()
        ),
    }
}
