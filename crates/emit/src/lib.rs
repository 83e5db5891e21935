//! The hookfleet producer SDK, usable from any tokio service or from plain sync code.
//!
//! ```no_run
//! use hookfleet_emit::{Emitter, EmitterConfig};
//! let emitter = Emitter::connect(EmitterConfig::default()).expect("spill directory");
//! emitter.emit_match_found(42, "dQw4w9WgXcQ", "9bZkp7q19f0", 0.95, Some(30.5), Some(45.2), Some("acme"));
//! emitter.flush(std::time::Duration::from_secs(5));
//! ```
//!
//! `emit` never blocks on the network and never returns an error: the event goes
//! into a bounded buffer drained by a background thread that publishes with
//! publisher confirms. When the buffer is full, or the broker is unreachable, events
//! go to an append-only spill file that is replayed once the broker is back, also
//! after a restart of the producer. The spill is bounded (`max_spill_bytes`):
//! past it events are dropped, counted and logged, never by filling the disk.
//! `flush` and `shutdown` wait (bounded) until everything emitted is confirmed.
//!
//! Layout: [`Event`] and the typed helpers here; [`spill`] the disk spill;
//! [`outbox`] the transactional outbox and its relay.
#![forbid(unsafe_code)]

pub mod outbox;
pub mod spill;

/// What `amqps://` addresses trust and present (`EmitterConfig::amqp_tls`).
pub use hookfleet_core::config::AmqpTls;

use crossbeam_queue::ArrayQueue;
use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::ExchangeKind;
use prometheus::{IntCounter, IntGauge};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How an [`Emitter`] connects and buffers.
#[derive(Debug, Clone)]
pub struct EmitterConfig {
    /// The broker: one URL, or several nodes of a cluster separated by commas
    /// (tried in order, as `amqp.url`).
    pub amqp_url: String,
    /// What `amqps://` addresses trust and present, as `amqp.tls`
    /// ([`AmqpTls::from_files`](hookfleet_core::config::AmqpTls::from_files));
    /// the default trusts the system's roots and sends no client certificate.
    pub amqp_tls: AmqpTls,
    /// Events held in memory before they spill to disk (a second and a half at
    /// 20,000 events/s; the queue's slots, 72 bytes each, are allocated up front).
    pub buffer: usize,
    /// Where spill files live; must survive a restart of the producer.
    pub spill_dir: PathBuf,
    /// Events published per burst of confirms.
    pub batch: usize,
    /// The most the spill directory's files may hold, in bytes (the files of
    /// an earlier run count too): an event that would go past it is dropped,
    /// counted in `dropped` and logged, so a long outage does not fill the
    /// disk. The Python SDK's `max_spill_bytes`, with the same default (1 GiB).
    pub max_spill_bytes: u64,
}

impl Default for EmitterConfig {
    fn default() -> Self {
        Self {
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            amqp_tls: Default::default(),
            buffer: 32_768,
            spill_dir: PathBuf::from("hookfleet-spill"),
            batch: 2000,
            max_spill_bytes: 1 << 30,
        }
    }
}

/// An id from the producer's own data: a number or a string.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Id {
    Int(i64),
    Str(String),
}
impl From<i64> for Id {
    fn from(v: i64) -> Self {
        Id::Int(v)
    }
}
impl From<i32> for Id {
    fn from(v: i32) -> Self {
        Id::Int(v.into())
    }
}
impl From<u32> for Id {
    fn from(v: u32) -> Self {
        Id::Int(v.into())
    }
}
impl From<&str> for Id {
    fn from(v: &str) -> Self {
        Id::Str(v.to_owned())
    }
}
impl From<String> for Id {
    fn from(v: String) -> Self {
        Id::Str(v)
    }
}

/// One event, as the wire contract's envelope (docs/ARCHITECTURE.md §20.1).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub tenant_id: Option<String>,
    pub timestamp: String,
    pub data: serde_json::Value,
}

impl Event {
    /// A new event with a fresh id and the current time.
    pub fn new(event_type: &str, data: serde_json::Value) -> Self {
        Self {
            id: hookfleet_core::ids::event_id(),
            event_type: event_type.to_owned(),
            tenant_id: None,
            timestamp: hookfleet_core::envelope::now_rfc3339(),
            data,
        }
    }

    pub fn tenant(mut self, tenant: Option<&str>) -> Self {
        self.tenant_id = tenant.map(str::to_owned);
        self
    }
}

/// A serialized event waiting to be published.
#[derive(Debug, Clone)]
pub struct Pending {
    pub event_type: String,
    pub id: String,
    pub body: Vec<u8>,
    /// The producer's span when it emitted the event (its W3C headers): the
    /// event continues that trace, also when it is spilled and replayed from
    /// disk (the spill line keeps them).
    pub trace: Option<hookfleet_core::trace::Headers>,
}

/// Counters of an emitter, for the host's Prometheus registry.
#[derive(Clone)]
pub struct EmitMetrics {
    pub emitted: IntCounter,
    pub confirmed: IntCounter,
    pub spilled: IntCounter,
    pub replayed: IntCounter,
    /// Events that could neither be buffered nor written to disk (the spill
    /// over `max_spill_bytes`, or the disk refusing).
    pub dropped: IntCounter,
    /// Bytes in the spill directory's files, replayed ones gone: grows while
    /// the broker is away, back to 0 once it has all been published.
    pub spill_bytes: IntGauge,
}

#[allow(clippy::expect_used)] // constant, valid metric names
fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("valid metric")
}

impl EmitMetrics {
    fn new() -> Self {
        Self {
            emitted: counter("hookfleet_emit_emitted_total", "Events handed to emit()."),
            confirmed: counter(
                "hookfleet_emit_confirmed_total",
                "Events confirmed by RabbitMQ.",
            ),
            spilled: counter(
                "hookfleet_emit_spilled_total",
                "Events written to the spill file.",
            ),
            replayed: counter(
                "hookfleet_emit_replayed_total",
                "Spilled events published after all.",
            ),
            dropped: counter(
                "hookfleet_emit_dropped_total",
                "Events lost: neither buffered nor spilled.",
            ),
            spill_bytes: IntGauge::new(
                "hookfleet_emit_spill_bytes",
                "Bytes in the spill directory's files, waiting to be replayed.",
            )
            .expect("valid metric"),
        }
    }

    /// Registers every counter, and the spill gauge, with `registry`.
    pub fn register(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        for c in [
            &self.emitted,
            &self.confirmed,
            &self.spilled,
            &self.replayed,
            &self.dropped,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(self.spill_bytes.clone()))
    }

    /// Emitted but not yet confirmed (nor dropped).
    pub fn outstanding(&self) -> u64 {
        self.emitted
            .get()
            .saturating_sub(self.confirmed.get() + self.dropped.get())
    }
}

/// An event as `emit` hands it over. The caller only moves its data into a box;
/// the background thread gives it an id and serializes it (`into_pending`), so
/// the caller's cost is one allocation and one queue slot, whatever the event.
trait Deferred: Send {
    fn into_pending(self: Box<Self>) -> serde_json::Result<Pending>;
}

/// An event the caller serialized already.
struct Ready(Pending);

impl Deferred for Ready {
    fn into_pending(self: Box<Self>) -> serde_json::Result<Pending> {
        Ok(self.0)
    }
}

/// A typed helper's event: its data, the tenant and the time of the call.
struct Typed<T> {
    event_type: &'static str,
    tenant_id: Option<String>,
    at: std::time::SystemTime,
    data: T,
}

impl<T: Serialize + Send> Deferred for Typed<T> {
    fn into_pending(self: Box<Self>) -> serde_json::Result<Pending> {
        let id = hookfleet_core::ids::event_id();
        let body = envelope_body(
            &id,
            self.event_type,
            self.tenant_id.as_deref(),
            &hookfleet_core::envelope::rfc3339(self.at),
            &self.data,
        )?;
        Ok(Pending {
            event_type: self.event_type.to_owned(),
            id,
            body,
            trace: None,
        })
    }
}

/// An event emitted inside a span of the producer's: it carries the span's
/// context (only then is there a second box).
struct Traced(Box<dyn Deferred>, hookfleet_core::trace::Headers);

impl Deferred for Traced {
    fn into_pending(self: Box<Self>) -> serde_json::Result<Pending> {
        let Traced(event, trace) = *self;
        let mut p = event.into_pending()?;
        p.trace = Some(trace);
        Ok(p)
    }
}

impl Deferred for Event {
    fn into_pending(self: Box<Self>) -> serde_json::Result<Pending> {
        let body = serde_json::to_vec(&*self)?;
        Ok(Pending {
            event_type: self.event_type,
            id: self.id,
            body,
            trace: None,
        })
    }
}

/// The envelope of docs/ARCHITECTURE.md §20.1, written in one pass without building a
/// `serde_json::Value`.
fn envelope_body<T: Serialize + ?Sized>(
    id: &str,
    event_type: &str,
    tenant_id: Option<&str>,
    timestamp: &str,
    data: &T,
) -> serde_json::Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Envelope<'a, T: ?Sized> {
        id: &'a str,
        #[serde(rename = "type")]
        event_type: &'a str,
        tenant_id: Option<&'a str>,
        timestamp: &'a str,
        data: &'a T,
    }
    // One allocation for the body, sized for a typical event (no regrowth).
    let mut body = Vec::with_capacity(384);
    serde_json::to_writer(
        &mut body,
        &Envelope {
            id,
            event_type,
            tenant_id,
            timestamp,
            data,
        },
    )?;
    Ok(body)
}

/// The hand-off between callers and the background publisher: a lock-free
/// bounded queue, so `emit` costs no syscall. The publisher polls it on a 1 ms
/// timer while events flow and parks when idle; `emit` wakes it only then.
struct Handoff {
    queue: ArrayQueue<Box<dyn Deferred>>,
    parked: AtomicBool,
    wake: Notify,
}

impl Handoff {
    fn push(&self, p: Box<dyn Deferred>) -> Result<(), Box<dyn Deferred>> {
        self.queue.push(p)?;
        if self.parked.load(Ordering::Relaxed) && self.parked.swap(false, Ordering::SeqCst) {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The next queued event, serialized; one that cannot be is counted as
    /// dropped and skipped.
    fn pop(&self, metrics: &EmitMetrics) -> Option<Pending> {
        loop {
            match self.queue.pop()?.into_pending() {
                Ok(p) => return Some(p),
                Err(e) => {
                    tracing::error!(error = %e, "Event could not be serialized; dropped.");
                    metrics.dropped.inc();
                }
            }
        }
    }

    /// The next event: polled for up to 20 ms; then, if `park`, waits to be woken
    /// (at most 1 s). `None` when nothing came.
    async fn recv(&self, park: bool, metrics: &EmitMetrics) -> Option<Pending> {
        for _ in 0..20 {
            if let Some(p) = self.pop(metrics) {
                return Some(p);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if !park {
            return None;
        }
        self.parked.store(true, Ordering::SeqCst);
        // An event pushed before `parked` was set would not wake us: look again.
        if self.queue.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.wake.notified()).await;
        }
        self.parked.store(false, Ordering::SeqCst);
        self.pop(metrics)
    }
}

struct Inner {
    sink: Sink,
    metrics: EmitMetrics,
}

/// Where emitted events go.
enum Sink {
    /// The background publisher, through the hand-off queue or the spill file.
    Broker {
        handoff: Arc<Handoff>,
        spill: Arc<spill::Spill>,
        stop: tokio_util::sync::CancellationToken,
    },
    /// [`Emitter::recording`]: kept in memory for a producer's tests.
    Recording(std::sync::Mutex<Vec<RecordedEvent>>),
}

impl Drop for Inner {
    /// The last handle gone: the background thread publishes what is buffered
    /// (or spills it) and stops.
    fn drop(&mut self) {
        if let Sink::Broker { stop, .. } = &self.sink {
            stop.cancel();
        }
    }
}

/// An event kept by a [`Emitter::recording`] emitter: the envelope as it would
/// have been published.
pub type RecordedEvent = Event;

/// Publishes events to `hookfleet.events` without ever blocking or failing its
/// caller. Cheap to clone; all clones share one background publisher.
#[derive(Clone)]
pub struct Emitter {
    inner: Arc<Inner>,
}

impl Emitter {
    /// Starts the background publisher thread. Fails only when the spill
    /// directory cannot be created.
    pub fn connect(config: EmitterConfig) -> std::io::Result<Emitter> {
        let metrics = EmitMetrics::new();
        let spill = Arc::new(spill::Spill::open(
            &config.spill_dir,
            config.max_spill_bytes,
            metrics.spill_bytes.clone(),
        )?);
        let handoff = Arc::new(Handoff {
            queue: ArrayQueue::new(config.buffer.max(1)),
            parked: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let stop = tokio_util::sync::CancellationToken::new();
        let bg = Background {
            config,
            handoff: handoff.clone(),
            spill: spill.clone(),
            metrics: metrics.clone(),
            stop: stop.clone(),
        };
        std::thread::Builder::new().name("hookfleet-emit".into()).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(bg.run()),
                Err(e) => tracing::error!(error = %e, "hookfleet-emit could not start its runtime; events stay spilled."),
            }
        })?;
        Ok(Emitter {
            inner: Arc::new(Inner {
                sink: Sink::Broker {
                    handoff,
                    spill,
                    stop,
                },
                metrics,
            }),
        })
    }

    /// An emitter for a producer's own tests: the same API, no broker, no
    /// thread, no files. Every event is checked against the wire contract (an
    /// envelope the router would quarantine panics, naming the reason), counted
    /// as confirmed, and kept in memory for [`Emitter::assert_emitted`] and
    /// [`Emitter::recorded`].
    pub fn recording() -> Emitter {
        Emitter {
            inner: Arc::new(Inner {
                sink: Sink::Recording(std::sync::Mutex::new(Vec::new())),
                metrics: EmitMetrics::new(),
            }),
        }
    }

    /// Emits one event. Never blocks on the network, never fails: when the buffer
    /// is full the event is appended to the spill file instead.
    pub fn emit(&self, event: Event) {
        self.inner.metrics.emitted.inc();
        self.hand_over(Box::new(event));
    }

    /// Emits `data` (any serializable value) as an event of `event_type`: the
    /// envelope is written in one pass, without building a `serde_json::Value`.
    /// The data is serialized by the caller; the typed helpers, which own their
    /// data, leave even that to the background thread.
    pub fn emit_serialize<T: Serialize>(
        &self,
        event_type: &str,
        data: &T,
        tenant_id: Option<&str>,
    ) {
        self.inner.metrics.emitted.inc();
        let id = hookfleet_core::ids::event_id();
        let now = hookfleet_core::envelope::now_rfc3339();
        match envelope_body(&id, event_type, tenant_id, &now, data) {
            Ok(body) => self.hand_over(Box::new(Ready(Pending {
                event_type: event_type.to_owned(),
                id,
                body,
                trace: None,
            }))),
            Err(e) => {
                tracing::error!(error = %e, "Event could not be serialized; dropped.");
                self.inner.metrics.dropped.inc();
            }
        }
    }

    /// The typed helpers' path: the data is moved, not serialized, by the caller.
    fn emit_typed<T: Serialize + Send + 'static>(
        &self,
        event_type: &'static str,
        data: T,
        tenant_id: Option<&str>,
    ) {
        self.inner.metrics.emitted.inc();
        self.hand_over(Box::new(Typed {
            event_type,
            tenant_id: tenant_id.map(str::to_owned),
            at: std::time::SystemTime::now(),
            data,
        }));
    }

    fn hand_over(&self, event: Box<dyn Deferred>) {
        // The producer's current OpenTelemetry span, if it has one: the
        // event continues its trace (nothing to do without one).
        let event = match hookfleet_core::trace::current_headers() {
            Some(trace) => Box::new(Traced(event, trace)),
            None => event,
        };
        let m = &self.inner.metrics;
        let (handoff, spill) = match &self.inner.sink {
            Sink::Broker { handoff, spill, .. } => (handoff, spill),
            Sink::Recording(events) => {
                match event.into_pending() {
                    Ok(p) => lock(events).push(record(&p)),
                    Err(e) => {
                        panic!("hookfleet-emit (recording): the event cannot be serialized: {e}")
                    }
                }
                m.confirmed.inc();
                return;
            }
        };
        let Err(event) = handoff.push(event) else {
            return;
        };
        // The buffer is full: the caller serializes and spills this one itself
        // (a spill that is full or refused logs why).
        let spilled = match event.into_pending() {
            Ok(p) => spill.append(std::slice::from_ref(&p)) == 1,
            Err(e) => {
                tracing::error!(error = %e, "Event could not be serialized; dropped.");
                false
            }
        };
        if spilled {
            m.spilled.inc();
        } else {
            m.dropped.inc();
        }
    }

    /// Emits `data` as an event of `event_type`.
    pub fn emit_data(&self, event_type: &str, data: serde_json::Value, tenant_id: Option<&str>) {
        self.emit(Event::new(event_type, data).tenant(tenant_id));
    }

    /// Waits until everything emitted so far is confirmed, or `timeout` passes;
    /// returns whether it all was. Callable from sync and async code alike.
    pub fn flush(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while self.inner.metrics.outstanding() > 0 {
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Flushes (bounded by `timeout`), then stops the background publisher. What
    /// is not confirmed by then stays in the spill file for the next start.
    pub fn shutdown(self, timeout: Duration) -> bool {
        let done = self.flush(timeout);
        if let Sink::Broker { stop, .. } = &self.inner.sink {
            stop.cancel();
        }
        done
    }

    pub fn metrics(&self) -> &EmitMetrics {
        &self.inner.metrics
    }
}

/// The assertions of a [`Emitter::recording`] emitter, for producers' tests. On a
/// broker emitter nothing is recorded: `recorded` is empty.
impl Emitter {
    /// Every event emitted so far, in order.
    pub fn recorded(&self) -> Vec<RecordedEvent> {
        match &self.inner.sink {
            Sink::Recording(events) => lock(events).clone(),
            Sink::Broker { .. } => Vec::new(),
        }
    }

    /// The events of one type, in order.
    pub fn recorded_of_type(&self, event_type: &str) -> Vec<RecordedEvent> {
        let mut all = self.recorded();
        all.retain(|e| e.event_type == event_type);
        all
    }

    /// Forgets what was recorded.
    pub fn clear_recorded(&self) {
        if let Sink::Recording(events) = &self.inner.sink {
            lock(events).clear();
        }
    }

    /// Asserts that an event of `event_type` was emitted whose `data` holds every
    /// field of `fields` with the same value (other fields may differ; nested
    /// objects are compared the same way). Returns the first such event; panics
    /// with every event of that type when there is none.
    #[track_caller]
    #[allow(clippy::panic)] // an assertion
    pub fn assert_emitted(&self, event_type: &str, fields: serde_json::Value) -> RecordedEvent {
        let of_type = self.recorded_of_type(event_type);
        if let Some(e) = of_type.iter().find(|e| contains(&e.data, &fields)) {
            return e.clone();
        }
        let seen: Vec<String> = of_type.iter().map(|e| e.data.to_string()).collect();
        panic!(
            "no `{event_type}` event with data containing {fields} was emitted; {} `{event_type}` event(s) were: [{}]; all types emitted: {:?}",
            of_type.len(),
            seen.join(", "),
            self.recorded().iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>()
        );
    }

    /// Asserts that no event of `event_type` was emitted.
    #[track_caller]
    pub fn assert_not_emitted(&self, event_type: &str) {
        let of_type = self.recorded_of_type(event_type);
        assert!(
            of_type.is_empty(),
            "expected no `{event_type}` event, {} were emitted: {:?}",
            of_type.len(),
            of_type
                .iter()
                .map(|e| e.data.to_string())
                .collect::<Vec<_>>()
        );
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Checks a recorded event against the wire contract as the router would.
#[allow(clippy::panic)] // a recording emitter is for tests: a bad event must fail them
fn record(p: &Pending) -> RecordedEvent {
    let (event_type, body) = (p.event_type.as_str(), p.body.as_slice());
    if let Err(e) = hookfleet_core::envelope::Envelope::parse(
        body,
        event_type,
        Some(&p.id),
        hookfleet_core::envelope::DEFAULT_MAX_PAYLOAD_BYTES,
    ) {
        panic!("hookfleet-emit (recording): this `{event_type}` event would be quarantined: {e}");
    }
    match serde_json::from_slice(body) {
        Ok(e) => e,
        Err(e) => panic!("hookfleet-emit (recording): unreadable envelope: {e}"),
    }
}

/// `actual` holds every field of `expected` (objects recursively), or equals it.
fn contains(actual: &serde_json::Value, expected: &serde_json::Value) -> bool {
    match (actual, expected) {
        (serde_json::Value::Object(a), serde_json::Value::Object(e)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| contains(av, v))),
        _ => actual == expected,
    }
}

// The SoundHash guide's calls, one per catalog type, with its parameters.
#[allow(clippy::too_many_arguments)]
impl Emitter {
    /// `match.found`: after saving a new match.
    pub fn emit_match_found(
        &self,
        match_id: impl Into<Id>,
        query_video_id: impl Into<Id>,
        matched_video_id: impl Into<Id>,
        confidence: f64,
        segment_start: Option<f64>,
        segment_end: Option<f64>,
        tenant_id: Option<&str>,
    ) {
        #[derive(Serialize)]
        struct Data {
            match_id: Id,
            query_video_id: Id,
            matched_video_id: Id,
            confidence: f64,
            segment_start: Option<f64>,
            segment_end: Option<f64>,
        }
        let data = Data {
            match_id: match_id.into(),
            query_video_id: query_video_id.into(),
            matched_video_id: matched_video_id.into(),
            confidence,
            segment_start,
            segment_end,
        };
        self.emit_typed("match.found", data, tenant_id);
    }

    /// `video.processed`: after a video is processed.
    pub fn emit_video_processed(
        &self,
        video_id: impl Into<Id>,
        video_url: Option<&str>,
        title: Option<&str>,
        duration: Option<f64>,
        fingerprint_count: Option<i64>,
        processing_time_seconds: Option<f64>,
        tenant_id: Option<&str>,
    ) {
        #[derive(Serialize)]
        struct Data {
            video_id: Id,
            video_url: Option<String>,
            title: Option<String>,
            duration: Option<f64>,
            fingerprint_count: Option<i64>,
            processing_time_seconds: Option<f64>,
        }
        let data = Data {
            video_id: video_id.into(),
            video_url: video_url.map(str::to_owned),
            title: title.map(str::to_owned),
            duration,
            fingerprint_count,
            processing_time_seconds,
        };
        self.emit_typed("video.processed", data, tenant_id);
    }

    /// `job.failed`: when a background job fails.
    pub fn emit_job_failed(
        &self,
        job_id: impl Into<Id>,
        job_type: &str,
        target_id: Option<Id>,
        error_message: &str,
        attempt_count: Option<i64>,
        tenant_id: Option<&str>,
    ) {
        #[derive(Serialize)]
        struct Data {
            job_id: Id,
            job_type: String,
            target_id: Option<Id>,
            error_message: String,
            attempt_count: Option<i64>,
        }
        let data = Data {
            job_id: job_id.into(),
            job_type: job_type.to_owned(),
            target_id,
            error_message: error_message.to_owned(),
            attempt_count,
        };
        self.emit_typed("job.failed", data, tenant_id);
    }

    /// `user.created`: after creating a user account.
    pub fn emit_user_created(
        &self,
        user_id: impl Into<Id>,
        username: &str,
        email: Option<&str>,
        tenant_id: Option<&str>,
    ) {
        #[derive(Serialize)]
        struct Data {
            user_id: Id,
            username: String,
            email: Option<String>,
        }
        let data = Data {
            user_id: user_id.into(),
            username: username.to_owned(),
            email: email.map(str::to_owned),
        };
        self.emit_typed("user.created", data, tenant_id);
    }

    /// `subscription.updated`: when a subscription's plan or status changes.
    pub fn emit_subscription_updated(
        &self,
        subscription_id: impl Into<Id>,
        user_id: impl Into<Id>,
        plan_tier: &str,
        status: &str,
        previous_plan: Option<&str>,
        tenant_id: Option<&str>,
    ) {
        #[derive(Serialize)]
        struct Data {
            subscription_id: Id,
            user_id: Id,
            plan_tier: String,
            status: String,
            previous_plan: Option<String>,
        }
        let data = Data {
            subscription_id: subscription_id.into(),
            user_id: user_id.into(),
            plan_tier: plan_tier.to_owned(),
            status: status.to_owned(),
            previous_plan: previous_plan.map(str::to_owned),
        };
        self.emit_typed("subscription.updated", data, tenant_id);
    }

    /// `api_limit.reached`: when usage approaches or exceeds a limit.
    pub fn emit_api_limit_reached(
        &self,
        user_id: impl Into<Id>,
        limit_type: &str,
        current_usage: i64,
        limit_value: i64,
        reset_at: Option<&str>,
        tenant_id: Option<&str>,
    ) {
        #[derive(Serialize)]
        struct Data {
            user_id: Id,
            limit_type: String,
            current_usage: i64,
            limit_value: i64,
            reset_at: Option<String>,
        }
        let data = Data {
            user_id: user_id.into(),
            limit_type: limit_type.to_owned(),
            current_usage,
            limit_value,
            reset_at: reset_at.map(str::to_owned),
        };
        self.emit_typed("api_limit.reached", data, tenant_id);
    }
}

/// The background publisher: one connection, confirms per batch, spill while the
/// broker is away, replay once it is back.
struct Background {
    config: EmitterConfig,
    handoff: Arc<Handoff>,
    spill: Arc<spill::Spill>,
    metrics: EmitMetrics,
    stop: tokio_util::sync::CancellationToken,
}

impl Background {
    async fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        while !self.stop.is_cancelled() {
            match self.session().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), retry_in = ?backoff, "hookfleet-emit: broker unavailable; spilling to disk.");
                    // While the broker is away everything buffered goes to disk, so a
                    // crash of the producer loses nothing already emitted.
                    let end = Instant::now() + backoff;
                    while Instant::now() < end && !self.stop.is_cancelled() {
                        self.drain_to_spill();
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.drain_to_spill();
    }

    fn drain_to_spill(&mut self) {
        let mut batch = Vec::new();
        while let Some(p) = self.handoff.pop(&self.metrics) {
            batch.push(p);
        }
        self.spill_batch(&batch);
    }

    fn spill_batch(&self, batch: &[Pending]) {
        if batch.is_empty() {
            return;
        }
        // What does not fit under max_spill_bytes, or what the disk refuses,
        // is dropped; the spill logs why.
        let written = self.spill.append(batch);
        self.metrics.spilled.inc_by(written as u64);
        self.metrics.dropped.inc_by((batch.len() - written) as u64);
    }

    /// One connection's life: connect, then publish the buffer in batches with
    /// pipelined confirms (and the spill directory's events once a second),
    /// until the connection fails or the emitter closes; what is not confirmed
    /// then is spilled. Kept as one function: the batches in flight are a
    /// local that every branch of its loop settles or spills.
    async fn session(&mut self) -> anyhow::Result<()> {
        let target = hookfleet_core::config::AmqpTarget::parse(&self.config.amqp_url)
            .map_err(|e| anyhow::anyhow!("EmitterConfig::amqp_url: {e}"))?
            .with_tls(self.config.amqp_tls.clone());
        let conn = hookfleet_broker::connect(&target, "hookfleet-emit").await?;
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.exchange_declare(
            hookfleet_broker::names::EVENTS_EXCHANGE.into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
        tracing::info!("hookfleet-emit connected.");
        // Up to MAX_INFLIGHT batches are published before the oldest one's confirms
        // are awaited: the broker's confirm latency does not cap the rate.
        const MAX_INFLIGHT: usize = 4;
        let mut inflight: std::collections::VecDeque<(Vec<Pending>, Vec<lapin::PublisherConfirm>)> =
            Default::default();
        let mut next_replay = Instant::now();
        let result = loop {
            if Instant::now() >= next_replay {
                if let Err(e) = self.settle(&mut inflight, 0).await {
                    break Err(e);
                }
                if let Err(e) = self.replay(&ch).await {
                    break Err(e);
                }
                next_replay = Instant::now() + Duration::from_secs(1);
            }
            let first = tokio::select! {
                _ = self.stop.cancelled() => {
                    // Publish what is buffered, then stop.
                    let mut rest = Vec::new();
                    while let Some(p) = self.handoff.pop(&self.metrics) { rest.push(p); }
                    match start_publish(&ch, &rest).await {
                        Ok(c) => inflight.push_back((rest, c)),
                        Err(e) => { self.spill_batch(&rest); break Err(e) }
                    }
                    if let Err(e) = self.settle(&mut inflight, 0).await {
                        break Err(e);
                    }
                    hookfleet_broker::close(&conn, "bye").await;
                    return Ok(());
                }
                p = self.handoff.recv(inflight.is_empty(), &self.metrics) => p,
            };
            let Some(first) = first else {
                if let Err(e) = self.settle(&mut inflight, 0).await {
                    break Err(e);
                }
                continue;
            };
            let mut batch = vec![first];
            while batch.len() < self.config.batch {
                match self.handoff.pop(&self.metrics) {
                    Some(p) => batch.push(p),
                    None => break,
                }
            }
            match start_publish(&ch, &batch).await {
                Ok(c) => inflight.push_back((batch, c)),
                Err(e) => {
                    self.spill_batch(&batch);
                    break Err(e);
                }
            }
            if let Err(e) = self.settle(&mut inflight, MAX_INFLIGHT).await {
                break Err(e);
            }
        };
        // Whatever was not confirmed goes to disk (possibly published too: the
        // router's per-event dedupe makes a replayed duplicate harmless).
        for (b, _) in inflight.drain(..) {
            self.spill_batch(&b);
        }
        result
    }

    /// Awaits the oldest in-flight batches until at most `keep` remain.
    async fn settle(
        &self,
        inflight: &mut std::collections::VecDeque<(Vec<Pending>, Vec<lapin::PublisherConfirm>)>,
        keep: usize,
    ) -> anyhow::Result<()> {
        while inflight.len() > keep {
            let Some((batch, confirms)) = inflight.pop_front() else {
                break;
            };
            if let Err(e) = await_confirms(confirms).await {
                self.spill_batch(&batch);
                return Err(e);
            }
            self.metrics.confirmed.inc_by(batch.len() as u64);
        }
        Ok(())
    }

    /// Publishes every closed spill file, deleting each once all its events are confirmed.
    async fn replay(&self, ch: &lapin::Channel) -> anyhow::Result<()> {
        for file in self.spill.take_files()? {
            let events = spill::read(&file)?;
            for chunk in events.chunks(self.config.batch.max(1)) {
                publish(ch, chunk).await?;
            }
            self.spill.remove(&file)?;
            self.metrics.replayed.inc_by(events.len() as u64);
            self.metrics.confirmed.inc_by(events.len() as u64);
            tracing::info!(
                events = events.len(),
                "hookfleet-emit: replayed spilled events."
            );
        }
        Ok(())
    }
}

/// Publishes a batch and waits for every confirm.
async fn publish(ch: &lapin::Channel, batch: &[Pending]) -> anyhow::Result<()> {
    await_confirms(start_publish(ch, batch).await?).await
}

/// Publishes a batch (all frames queued at once); the confirms are awaited separately.
async fn start_publish(
    ch: &lapin::Channel,
    batch: &[Pending],
) -> anyhow::Result<Vec<lapin::PublisherConfirm>> {
    let msgs = batch.iter().map(|p| hookfleet_broker::Outgoing {
        exchange: hookfleet_broker::names::EVENTS_EXCHANGE,
        routing_key: &p.event_type,
        // Mandatory: an event no queue takes (hookfleet never started on this
        // vhost) comes back and counts as a failure, so it is kept, not lost.
        mandatory: true,
        payload: &p.body,
        properties: hookfleet_broker::headers::traced_event_properties(&p.id, p.trace.as_ref()),
    });
    hookfleet_broker::publish_all(ch, msgs)
        .await
        .into_iter()
        .map(|r| r.map_err(anyhow::Error::from))
        .collect()
}

async fn await_confirms(confirms: Vec<lapin::PublisherConfirm>) -> anyhow::Result<()> {
    hookfleet_broker::confirm_all(confirms.into_iter().map(Ok).collect()).await
}
