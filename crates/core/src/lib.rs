//! Domain core of hookfleet: what every role shares and nothing that does I/O.
//!
//! Layout:
//! - [`bounds`]: limits that the configuration, the API and the CLI share, defined once.
//! - [`config`]: the one `Settings` struct, layered defaults < file < environment, validated.
//! - [`endpoint`]: validation of endpoint URLs and subscriptions.
//! - [`filter`]: content filters on endpoints: compiled once, evaluated per event without allocating.
//! - [`envelope`]: the event envelope of the wire contract (docs/ARCHITECTURE.md §20.1) and its validation.
//! - [`signing`]: Standard Webhooks secrets and signatures (§2.2).
//! - [`sealing`]: signing secrets encrypted at rest (AES-256-GCM), with key rotation.
//! - [`retry`]: the retry schedule and its tiers (§2.3).
//! - [`ids`]: prefixed, time-ordered identifiers.
//! - [`operational`]: the events hookfleet publishes about endpoints (disabled, circuit opened, delivery exhausted).
//! - [`net`]: which target addresses deliveries may reach (SSRF policy).
//! - [`metrics`]: every Prometheus metric, named once.
//! - [`text`]: small text helpers (bounded strings for headers and records).
//! - [`shard`]: which workers consume which endpoint queues (rendezvous hashing over slots).
//! - [`status`]: the states stored as text: `Ordering`, `Circuit`, `DeliveryStatus`.
//! - [`trace`]: W3C Trace Context across the hops, and the hop spans (off unless an exporter is installed).
#![forbid(unsafe_code)]

pub mod bounds;
pub mod config;
pub mod endpoint;
pub mod envelope;
pub mod filter;
pub mod ids;
pub mod metrics;
pub mod net;
pub mod operational;
pub mod retry;
pub mod sealing;
pub mod shard;
pub mod signing;
pub mod status;
pub mod text;
pub mod trace;

pub use config::Settings;
pub use envelope::{Envelope, InvalidEnvelope};
pub use ids::{DeliveryId, EndpointId, EventId};
pub use retry::RetrySchedule;
pub use signing::Secret;
pub use status::{Circuit, DeadReason, DeliveryStatus, Ordering};
