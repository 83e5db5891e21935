//! Connecting to RabbitMQ, with backoff, and noticing when the connection is lost.
//!
//! `amqp.url` may name several addresses (a cluster's nodes): a connection tries
//! them in order, and [`supervise`] starts with the one after the address of a
//! lost connection. `amqps://` addresses talk TLS (rustls) with what
//! `amqp.tls` says to trust and present.
use anyhow::Context as _;
use futures::StreamExt as _;
use hookfleet_core::config::{AmqpTarget, AmqpTls};
use lapin::tcp::{AsyncTcpStream, RustlsConnector, RustlsConnectorConfig};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties, Event};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long one address may take to connect (TCP, TLS and the AMQP handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to the first address of `target` that takes the connection.
pub async fn connect(target: &AmqpTarget, name: &str) -> anyhow::Result<Connection> {
    connect_from(target, 0, name).await.map(|(conn, _)| conn)
}

/// Connects to one URL (or a comma-separated list) with no TLS settings of its
/// own: for tools and tests that hold a plain URL.
pub async fn connect_url(url: &str, name: &str) -> anyhow::Result<Connection> {
    let target = AmqpTarget::parse(url).map_err(|e| anyhow::anyhow!("amqp.url: {e}"))?;
    connect(&target, name).await
}

/// Tries the addresses in order from `start`, wrapping around; returns the
/// connection and the index of the address that took it.
async fn connect_from(
    target: &AmqpTarget,
    start: usize,
    name: &str,
) -> anyhow::Result<(Connection, usize)> {
    let n = target.addresses.len();
    let mut failures: Vec<anyhow::Error> = Vec::new();
    for k in 0..n {
        let i = (start + k) % n;
        let addr = &target.addresses[i];
        match connect_one(addr, &target.tls, name).await {
            Ok(conn) => {
                if !failures.is_empty() {
                    tracing::info!(
                        address = AmqpTarget::display_address(addr),
                        "Connected to RabbitMQ at another address of amqp.url."
                    );
                }
                return Ok((conn, i));
            }
            Err(e) => {
                if n > 1 {
                    tracing::debug!(
                        address = AmqpTarget::display_address(addr),
                        error = format!("{e:#}"),
                        "RabbitMQ address unreachable; trying the next one."
                    );
                }
                failures.push(e);
            }
        }
    }
    // The last failure is returned as it is (callers recognise a lapin::Error
    // in its chain as a broker outage), with the others in its context.
    let last = failures
        .pop()
        .ok_or_else(|| anyhow::anyhow!("amqp.url names no address"))?;
    if failures.is_empty() {
        return Err(last);
    }
    let others: Vec<String> = failures.iter().map(|e| format!("{e:#}")).collect();
    Err(last.context(format!(
        "no address of amqp.url took the connection (the others: {})",
        others.join("; ")
    )))
}

/// The largest frame asked for unless `amqp.url` says (`?frame_max=`). lapin
/// gives each connection two buffers of 32 frames of the size agreed, and
/// RabbitMQ offers 128 KiB: 8 MiB per connection in every process. At 32 KiB
/// they are 2 MiB; a larger message goes in more frames.
pub const FRAME_MAX: u32 = 32 * 1024;

/// One connection attempt to one address, bounded by [`CONNECT_TIMEOUT`].
async fn connect_one(url: &str, tls: &AmqpTls, name: &str) -> anyhow::Result<Connection> {
    let shown = AmqpTarget::display_address(url);
    let mut uri: AMQPUri = url
        .parse()
        .map_err(|e: String| anyhow::anyhow!("amqp.url: {shown}: {e}"))?;
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let attempt = async {
        match uri.scheme {
            AMQPScheme::AMQP => Ok(Connection::connect_uri(uri, props).await?),
            AMQPScheme::AMQPS => connect_tls(uri, props, tls).await,
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .with_context(|| format!("timed out connecting to RabbitMQ at {shown} (amqp.url)"))?
        .with_context(|| format!("connecting to RabbitMQ at {shown} (amqp.url)"))
}

/// An `amqps://` connection: TCP, then a rustls handshake that checks the
/// broker's certificate against `amqp.tls.ca_file` (or the system's roots) for
/// `amqp.tls.server_name` (or the URL's host), then AMQP.
async fn connect_tls(
    uri: AMQPUri,
    props: ConnectionProperties,
    tls: &AmqpTls,
) -> anyhow::Result<Connection> {
    let connector = tls_connector(tls)?;
    let server_name = tls
        .server_name
        .clone()
        .unwrap_or_else(|| uri.authority.host.clone());
    let runtime = lapin::runtime::default_runtime()?;
    let conn = Connection::connector(
        uri,
        runtime,
        async move |uri: AMQPUri, runtime| {
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((uri.authority.host.as_str(), uri.authority.port))
                    .await?
                    .collect();
            let plain = AsyncTcpStream::connect(&runtime, addrs).await?;
            plain
                .into_rustls(&connector, &server_name)
                .await
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "TLS handshake failed ({e}); check that the broker's certificate \
                             chains to amqp.tls.ca_file (or the system's roots) and names \
                             `{server_name}` (amqp.tls.server_name, else the URL's host), and \
                             whether the broker wants a client certificate \
                             (amqp.tls.cert_file, amqp.tls.key_file)"
                        ),
                    )
                    .into()
                })
        },
        props,
    )
    // The lapin::Error stays in the chain: callers tell a broker outage from
    // other failures by it (service::ServiceError, the CLI's exit code 69).
    .await?;
    Ok(conn)
}

/// The rustls client for `amqp.tls`: its CA alone when set, else the system's
/// roots; with the client certificate when one is set.
fn tls_connector(tls: &AmqpTls) -> anyhow::Result<RustlsConnector> {
    let config = match &tls.ca_certs {
        Some(certs) => RustlsConnectorConfig::default().with_parsable_certificates(certs.clone()),
        None => RustlsConnectorConfig::new_with_native_certs().context(
            "loading the system's root certificates for amqps:// (or set amqp.tls.ca_file)",
        )?,
    };
    match &tls.client_cert {
        Some(c) => config
            .connector_with_single_cert(c.chain.clone(), c.key.clone_key())
            .context("amqp.tls.cert_file and amqp.tls.key_file: the key does not go with the certificate, or no root certificate of amqp.tls.ca_file is usable"),
        None => config
            .connector_with_no_client_auth()
            .context("amqp.tls.ca_file: no usable root certificate"),
    }
}

/// Connects, retrying with exponential backoff (200 ms to 5 s) until it works or
/// `shutdown` fires (then `None`).
pub async fn connect_with_backoff(
    target: &AmqpTarget,
    name: &str,
    shutdown: &CancellationToken,
) -> Option<Connection> {
    connect_from_with_backoff(target, 0, name, shutdown)
        .await
        .map(|(conn, _)| conn)
}

/// [`connect_with_backoff`] starting at address `start`; returns the index of
/// the address that took the connection too.
async fn connect_from_with_backoff(
    target: &AmqpTarget,
    start: usize,
    name: &str,
    shutdown: &CancellationToken,
) -> Option<(Connection, usize)> {
    let mut backoff = Duration::from_millis(200);
    loop {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = connect_from(target, start, name) => r,
        };
        match attempt {
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
    target: &AmqpTarget,
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
    // After a lost connection the next address is tried first: the node that
    // dropped it is the likeliest to be down.
    let mut start = 0;
    while !shutdown.is_cancelled() {
        let Some((conn, at)) = connect_from_with_backoff(target, start, &name, shutdown).await
        else {
            break;
        };
        start = at + 1;
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

/// Acks `acker`'s message and every unacked one delivered before it on its
/// channel (`multiple`), bounded by [`ACK_TIMEOUT`]. Only for a consumer that
/// knows all of those are done with.
pub async fn ack_multiple(acker: &lapin::Acker) -> anyhow::Result<()> {
    bounded(acker.ack(lapin::options::BasicAckOptions { multiple: true })).await
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
