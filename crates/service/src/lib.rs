//! The service layer: every operation of hookfleet's management surface, with
//! no HTTP in it. The REST handlers (`hookfleet-api`), the tenant portal and
//! the CLI are adapters over it: each takes its input, calls an operation with
//! the [`Caller`] and typed input, and maps the one [`ServiceError`] to its own
//! surface (a JSON error, a form message, an exit code).
//!
//! Layout:
//! - [`error`]: [`ServiceError`], and how an outage is told from a bug.
//! - [`caller`]: who is calling (the admin or a tenant) and the scope that follows.
//! - [`endpoints`]: webhook (endpoint) administration: validation whose errors
//!   name the field, create, list, read, update, delete, and secrets.
//! - [`queues`]: the broker side of endpoint administration: an endpoint's
//!   queue, the retry tiers a custom schedule needs, and draining a deleted
//!   endpoint's queue.
//! - [`deliveries`]: delivery history, statistics, activity, resend and test sends.
//! - [`catalog`]: the event catalog: list, add, change, deprecate.
//! - [`tenants`]: tenants, API keys and portal links.
//! - [`dead_letters`]: listing, showing, purging, replay jobs and `/recover`.
//! - [`replay`]: the replay job itself: batches, pacing, cancellation.
//! - [`publisher`]: the shared confirmed publisher.
#![forbid(unsafe_code)]

pub mod caller;
pub mod catalog;
pub mod dead_letters;
pub mod deliveries;
mod endpoint_rules;
pub mod endpoints;
pub mod error;
pub mod publisher;
pub mod queues;
pub mod replay;
pub mod tenants;

pub use caller::Caller;
pub use error::{BrokerUnavailable, ServiceError, ServiceResult};
pub use publisher::Publisher;

use hookfleet_core::Settings;
use hookfleet_store::Pool;
use serde::Serialize;

/// What every operation works with. `publisher` is the API's shared one; the
/// CLI has none, and the broker work is done on a connection of its own.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub settings: &'a Settings,
    pub pool: &'a Pool,
    pub publisher: Option<&'a Publisher>,
}

impl<'a> Ctx<'a> {
    /// The context of a one-shot command (the CLI): no shared publisher.
    pub fn standalone(settings: &'a Settings, pool: &'a Pool) -> Self {
        Ctx {
            settings,
            pool,
            publisher: None,
        }
    }
}

/// Default and largest page sizes of every list.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 250;

/// `limit` of a list, clamped.
pub fn page_limit(limit: Option<i64>) -> i64 {
    limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

/// One page of a list. (Its OpenAPI schemas are one per item type:
/// `hookfleet_api::docs::WebhookPage` and the like.)
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass it as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The longest grace period of a secret rotation and the longest portal
/// link: seven days, in seconds.
pub const SEVEN_DAYS: i64 = hookfleet_core::bounds::ROTATION_GRACE_MAX.as_secs() as i64;
