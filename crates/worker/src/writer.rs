//! The attempt writer: collects finished attempts into batches, commits each batch
//! in one transaction, and only then acks the messages it stands for. A failed
//! write is retried with backoff, holding its messages unacked; the bounded
//! channel in front pushes back on the delivery tasks meanwhile.
use hookfleet_store::deliveries::{self, AttemptRecord};
use hookfleet_store::Pool;
use lapin::Acker;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A finished attempt waiting to be recorded and acked.
pub struct Completed {
    pub record: AttemptRecord,
    pub acker: Acker,
}

pub enum Msg {
    Done(Completed),
    /// Answered once everything received before it is written and acked.
    Flush(oneshot::Sender<()>),
}

/// Runs until every sender is dropped, then writes what is left.
pub async fn run(pool: Pool, mut rx: mpsc::Receiver<Msg>, batch_size: usize, batch_wait: Duration) {
    let mut batch: Vec<Completed> = Vec::with_capacity(batch_size);
    let mut flushes = Vec::new();
    loop {
        let Some(first) = rx.recv().await else { break };
        take(first, &mut batch, &mut flushes);
        let deadline = tokio::time::Instant::now() + batch_wait;
        while batch.len() < batch_size && flushes.is_empty() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => take(m, &mut batch, &mut flushes),
                _ => break,
            }
        }
        write(&pool, &mut batch).await;
        for f in flushes.drain(..) {
            let _ = f.send(());
        }
    }
    write(&pool, &mut batch).await;
    for f in flushes.drain(..) {
        let _ = f.send(());
    }
}

fn take(m: Msg, batch: &mut Vec<Completed>, flushes: &mut Vec<oneshot::Sender<()>>) {
    match m {
        Msg::Done(c) => batch.push(c),
        Msg::Flush(f) => flushes.push(f),
    }
}

async fn write(pool: &Pool, batch: &mut Vec<Completed>) {
    if batch.is_empty() {
        return;
    }
    let records: Vec<AttemptRecord> = batch.iter().map(|c| c.record.clone()).collect();
    let mut backoff = Duration::from_millis(100);
    loop {
        match deliveries::record_attempts(pool, &records).await {
            Ok(()) => break,
            Err(e) => {
                if batch.iter().all(|c| !c.acker.usable()) {
                    // The channel is gone: the broker redelivers these messages and
                    // the next attempt is recorded then.
                    tracing::warn!(
                        error = format!("{e:#}"),
                        n = batch.len(),
                        "Dropping attempt records of a closed channel."
                    );
                    batch.clear();
                    return;
                }
                tracing::warn!(error = format!("{e:#}"), retry_in = ?backoff, "Could not record attempts; retrying.");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    let acks = batch
        .drain(..)
        .map(|c| async move { hookfleet_broker::ack(&c.acker).await });
    for r in futures::future::join_all(acks).await {
        if let Err(e) = r {
            tracing::debug!(error = %e, "Ack failed; the broker will redeliver.");
        }
    }
}
