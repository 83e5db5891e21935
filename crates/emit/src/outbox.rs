//! The transactional outbox, for producers that must not lose an event even if
//! they crash between their commit and the publish: [`emit_in_tx`] inserts the
//! event into `hookfleet_outbox` in the producer's own Postgres, inside its own
//! transaction; [`relay`] (`hookfleet outbox-relay`) publishes unsent rows in id
//! order with confirms and marks them sent. Replicas share the work with
//! `FOR UPDATE SKIP LOCKED`, so each row goes to the exchange once (a relay killed
//! between publish and commit republishes its batch; the event ids are the same).
//! A batch is marked sent before its publish, in the same transaction, so the
//! only failure left between publish and commit is the commit's own.
use crate::{Event, Pending};
use anyhow::Context as _;
use lapin::options::ConfirmSelectOptions;
use std::time::Duration;
use tokio_postgres::{GenericClient, NoTls};
use tokio_util::sync::CancellationToken;

/// The outbox table, created by [`create_table`] in the producer's database.
pub const CREATE_TABLE: &str = "
CREATE TABLE IF NOT EXISTS hookfleet_outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    text NOT NULL,
    event_type  text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX IF NOT EXISTS hookfleet_outbox_unsent ON hookfleet_outbox (id) WHERE sent_at IS NULL;
ALTER TABLE hookfleet_outbox ADD COLUMN IF NOT EXISTS traceparent text,
                             ADD COLUMN IF NOT EXISTS tracestate text;";

/// Creates the table, or adds the columns an older one lacks. A table that is
/// already complete is left alone, without DDL: `ALTER TABLE` takes an
/// `ACCESS EXCLUSIVE` lock even when every column exists, and a relay starting
/// (or reconnecting) beside others that are relaying would queue that lock
/// between their row locks and their `UPDATE`, which PostgreSQL resolves by
/// aborting one of them as a deadlock, after it has published its batch.
pub async fn create_table(client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    let complete: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_attribute
             WHERE attrelid = to_regclass('hookfleet_outbox')
               AND attname IN ('traceparent', 'tracestate') AND NOT attisdropped",
            &[],
        )
        .await?
        .get(0);
    if complete == 2 {
        return Ok(());
    }
    client.batch_execute(CREATE_TABLE).await
}

/// Adds an event to the outbox inside the caller's transaction: it is published
/// if and only if that transaction commits. Emitted inside an OpenTelemetry
/// span of the producer's, the row keeps the span's context and the relay
/// publishes the event with it (the `traceparent` and `tracestate` columns,
/// which [`create_table`], and so the relay at its start, adds to an older
/// table).
pub async fn emit_in_tx(
    tx: &tokio_postgres::Transaction<'_>,
    event: &Event,
) -> Result<(), tokio_postgres::Error> {
    let body = serde_json::to_string(event).unwrap_or_default();
    match hookfleet_core::trace::current_headers() {
        None => {
            tx.execute(
                "INSERT INTO hookfleet_outbox (event_id, event_type, body) VALUES ($1, $2, $3)",
                &[&event.id, &event.event_type, &body],
            )
            .await?
        }
        Some(trace) => {
            tx.execute(
                "INSERT INTO hookfleet_outbox (event_id, event_type, body, traceparent, tracestate)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &event.id,
                    &event.event_type,
                    &body,
                    &trace.traceparent,
                    &trace.tracestate,
                ],
            )
            .await?
        }
    };
    Ok(())
}

/// Publishes one batch of unsent rows; returns how many.
pub async fn relay_once(
    client: &mut tokio_postgres::Client,
    ch: &lapin::Channel,
    batch: i64,
) -> anyhow::Result<usize> {
    let tx = client.transaction().await?;
    // The rows are marked sent before the publish, in the same transaction, so
    // the transaction holds every lock it needs before anything leaves: nothing
    // but the commit itself can fail between the publish and the commit (a
    // failed publish rolls the marks back). `RETURNING` has no order; the
    // publish keeps the outbox's.
    let mut rows = tx
        .query(
            "UPDATE hookfleet_outbox o SET sent_at = now()
             FROM (SELECT id FROM hookfleet_outbox WHERE sent_at IS NULL
                   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) next
             WHERE o.id = next.id
             RETURNING o.id, o.event_id, o.event_type, o.body, o.traceparent, o.tracestate",
            &[&batch],
        )
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    rows.sort_unstable_by_key(|r| r.get::<_, i64>(0));
    let pending: Vec<Pending> = rows
        .iter()
        .map(|r| Pending {
            id: r.get(1),
            event_type: r.get(2),
            body: r.get::<_, String>(3).into_bytes(),
            trace: r
                .get::<_, Option<String>>(4)
                .map(|tp| hookfleet_core::trace::Headers {
                    traceparent: Some(tp),
                    tracestate: r.get(5),
                }),
        })
        .collect();
    crate::publish(ch, &pending).await?;
    tx.commit().await?;
    hookfleet_core::metrics::OUTBOX_RELAYED.inc_by(pending.len() as u64);
    Ok(pending.len())
}

/// Runs the relay until `shutdown`, reconnecting to either side with backoff.
pub async fn relay(
    db_url: &str,
    amqp: &hookfleet_core::config::AmqpTarget,
    batch: i64,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        match relay_session(db_url, amqp, batch, &shutdown).await {
            Ok(()) => break,
            Err(e) => {
                hookfleet_core::metrics::RECONNECTS
                    .with_label_values(&["outbox-relay"])
                    .inc();
                tracing::warn!(error = format!("{e:#}"), retry_in = ?backoff, "Outbox relay interrupted; reconnecting.");
                tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(backoff) => {} }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    Ok(())
}

async fn relay_session(
    db_url: &str,
    amqp: &hookfleet_core::config::AmqpTarget,
    batch: i64,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let (mut client, conn) = tokio_postgres::connect(db_url, NoTls)
        .await
        .context("connecting to the outbox database")?;
    let driver = tokio::spawn(conn);
    create_table(&client)
        .await
        .context("creating hookfleet_outbox")?;
    let broker = hookfleet_broker::connect(amqp, "hookfleet-outbox-relay").await?;
    let ch = broker.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    tracing::info!("Outbox relay running.");
    let connected = hookfleet_core::metrics::AMQP_CONNECTED.with_label_values(&["outbox-relay"]);
    connected.set(1);
    let mut next_cleanup = std::time::Instant::now();
    let result = loop {
        if shutdown.is_cancelled() {
            break Ok(());
        }
        if std::time::Instant::now() >= next_cleanup {
            // Sent rows are kept an hour (to see what went out), then removed.
            if let Err(e) = client
                .execute(
                    "DELETE FROM hookfleet_outbox WHERE sent_at < now() - interval '1 hour'",
                    &[],
                )
                .await
            {
                break Err(anyhow::Error::from(e).context("removing sent outbox rows"));
            }
            next_cleanup = std::time::Instant::now() + Duration::from_secs(60);
        }
        match relay_once(&mut client, &ch, batch).await {
            Ok(0) => {
                tokio::select! { _ = shutdown.cancelled() => break Ok(()), _ = tokio::time::sleep(Duration::from_millis(100)) => {} }
            }
            Ok(_) => {}
            Err(e) => break Err(e),
        }
    };
    connected.set(0);
    let _ = broker.close(200, "bye".into()).await;
    driver.abort();
    result
}
