//! RabbitMQ for hookfleet.
//!
//! Layout:
//! - [`names`]: the exchange and queue names of the wire contract (docs/ARCHITECTURE.md §20).
//! - [`topology`]: idempotent declaration of every exchange and queue.
//! - [`connection`]: connecting (several addresses, TLS) with backoff, and noticing a lost connection.
//! - [`headers`]: reading and writing message headers.
//! - [`publish`]: publishing a batch without a round trip per message.
#![forbid(unsafe_code)]

pub mod connection;
pub mod headers;
pub mod names;
pub mod publish;
pub mod topology;

pub use connection::{
    ack, ack_multiple, close, confirmed, connect, connect_url, connect_with_backoff, nack_requeue,
    supervise, wait_closed,
};
pub use lapin;
pub use publish::{confirm_all, publish_all, publish_confirmed, Outgoing};
