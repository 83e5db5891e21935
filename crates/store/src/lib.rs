//! Postgres for hookfleet.
//!
//! Layout:
//! - [`pool`]: the connection pool, with bounded waits so a down database is an
//!   error, never a hang.
//! - [`migrate`]: the SQL files of `migrations/`, applied under an advisory lock.
//! - [`endpoints`]: the endpoint repository used by the CLI and the API.
//! - [`registry`]: the in-memory registry of endpoints and event types that router
//!   and workers route from, refreshed by `NOTIFY hookfleet_config` and a periodic resync.
//! - [`catalog`]: event types with their compiled JSON Schemas.
//! - [`dead_letters`]: dead letters kept from `hookfleet.dead`: the keeper's batch
//!   insert, scoped listing, replay bookkeeping and purge.
//! - [`health`]: `endpoint_health`, the circuit breaker state workers share.
//! - [`deliveries`]: the router's batch insert of events and deliveries, and the
//!   workers' batch write of attempts.
//! - [`history`]: reads of the delivery history (pages, one delivery with its
//!   payload, statistics, activity) for the API and the portal.
//! - [`event_types`]: the catalog's rows: list, add, change.
//! - [`tenants`]: tenants and their API keys.
//! - [`key_cache`]: the API's in-memory copy of the live API keys, kept by
//!   `NOTIFY hookfleet_keys`, and revocation that waits for every copy.
//! - [`portal_sessions`]: portal sign-ins and used portal links.
#![forbid(unsafe_code)]

pub mod catalog;
pub mod dead_letters;
pub mod deliveries;
pub mod endpoints;
pub mod event_types;
pub mod health;
pub mod history;
pub mod key_cache;
pub mod members;
pub mod migrate;
pub mod pool;
pub mod portal_sessions;
pub mod registry;
pub mod retention;
pub mod tenants;

pub use hookfleet_core::Circuit;
pub use pool::Pool;
pub use registry::{Registry, Snapshot};
