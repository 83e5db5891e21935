//! The deliverable backlog (`hookfleet_deliverable_backlog`, which KEDA scales
//! on) and the busiest endpoint queue, measured at a cost that follows the
//! traffic (docs/ARCHITECTURE.md §21): an endpoint is polled only while it is
//! busy (a message arrived since the last poll, or some are still held), and
//! only by its slot's primary worker. An idle endpoint's consumer has free
//! prefetch, so its queue is empty; paused and open-circuit endpoints are not
//! consumed, so their backlog is not counted.
use crate::gate::Gate;
use hookfleet_broker::{names, topology};
use hookfleet_core::metrics;
use lapin::{Channel, Connection};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// The endpoints that had messages since the last poll.
#[derive(Clone, Default)]
pub(crate) struct Busy(Arc<Mutex<HashSet<String>>>);

impl Busy {
    pub(crate) fn mark(&self, id: &str) {
        crate::lock(&self.0).insert(id.to_owned());
    }

    fn take(&self) -> HashSet<String> {
        std::mem::take(&mut *crate::lock(&self.0))
    }

    fn extend(&self, ids: Vec<String>) {
        crate::lock(&self.0).extend(ids);
    }
}

/// Passive declares in flight at once on the stats channel. The session
/// polls between its other work (registry and membership changes), so a poll
/// must be short: thousands of busy queues one round trip at a time took
/// seconds under load, and a SIGKILLed worker's share waited for the poll to
/// end before the survivors took it (docs/BENCHMARKS.md, session 12).
const PIPELINED: usize = 64;

/// One poll. `lookup` gives a consumed endpoint's gate and whether this
/// worker is its primary; `stats` is a channel of its own (a failed passive
/// declare closes it, and it is opened again).
pub(crate) async fn poll(
    conn: &Connection,
    stats: &mut Stats,
    busy: &Busy,
    lookup: impl Fn(&str) -> Option<(Arc<Gate>, bool)>,
) {
    let mut backlog: i64 = 0;
    let mut busiest: u32 = 0;
    let mut still = Vec::new();
    let mut count = |id: String, gate: &Gate, ready: u32| {
        gate.idle();
        let held = gate.held();
        backlog += i64::from(held) + i64::from(ready);
        busiest = busiest.max(ready);
        if held > 0 || ready > 0 {
            still.push(id);
        }
    };
    let mut primaries = Vec::new();
    for id in busy.take() {
        match lookup(&id) {
            Some((gate, true)) => primaries.push((id, gate)),
            Some((gate, false)) => count(id, &gate, 0),
            None => {} // no longer consumed here
        }
    }
    while !primaries.is_empty() {
        let rest = primaries.split_off(primaries.len().min(PIPELINED));
        let chunk = std::mem::replace(&mut primaries, rest);
        let ready = ready_all(conn, stats, &chunk).await;
        for ((id, gate), ready) in chunk.into_iter().zip(ready) {
            count(id, &gate, ready);
        }
    }
    busy.extend(still);
    metrics::DELIVERABLE_BACKLOG.set(backlog);
    metrics::ENDPOINT_QUEUE_MAX.set(i64::from(busiest));
}

/// The channel of the passive declares, replaced after
/// `topology::DECLARES_PER_CHANNEL` of them (lapin remembers each queue
/// declared on a channel until it closes).
#[derive(Default)]
pub(crate) struct Stats {
    ch: Option<Channel>,
    uses: usize,
}

/// Messages ready in each endpoint's queue, their passive declares pipelined
/// on one channel; 0 for one that cannot be read now (a missing queue closes
/// the channel, and the others in flight on it read 0 this time).
async fn ready_all(conn: &Connection, stats: &mut Stats, eps: &[(String, Arc<Gate>)]) -> Vec<u32> {
    let worn = stats.uses >= topology::DECLARES_PER_CHANNEL;
    if worn || !stats.ch.as_ref().is_some_and(|c| c.status().connected()) {
        if let Some(old) = stats.ch.take().filter(|c| c.status().connected()) {
            let _ = old.close(200, "replaced".into()).await;
        }
        stats.ch = conn.create_channel().await.ok();
        stats.uses = 0;
    }
    let Some(ch) = stats.ch.as_ref() else {
        return vec![0; eps.len()];
    };
    stats.uses += eps.len();
    let queues: Vec<String> = eps
        .iter()
        .map(|(id, _)| names::endpoint_queue(id))
        .collect();
    futures::future::join_all(queues.iter().map(|q| topology::inspect(ch, q)))
        .await
        .into_iter()
        .zip(eps)
        .map(|(r, (id, _))| match r {
            Ok(q) => q.message_count(),
            Err(e) => {
                tracing::debug!(endpoint_id = %id, error = %e, "Could not read an endpoint queue's depth.");
                0
            }
        })
        .collect()
}
