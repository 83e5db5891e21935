//! Bounds that the configuration, the API and the CLI all check, each defined
//! once so that they cannot drift apart.
use std::ops::RangeInclusive;
use std::time::Duration;

const DAY: u64 = 86_400;

/// How long a portal link may open the portal: `api.portal_link_ttl`, the API's
/// `ttl_seconds`, `hookfleet tenant portal-link --ttl`.
pub const PORTAL_LINK_TTL_SECS: RangeInclusive<u64> = 60..=7 * DAY;

/// How long the old signing secrets of a rotation may keep signing: the API's
/// `grace_period_seconds`, `hookfleet endpoint rotate-secret --grace`.
pub const ROTATION_GRACE_MAX: Duration = Duration::from_secs(7 * DAY);

/// A rotation's grace period when none is given.
pub const ROTATION_GRACE_DEFAULT: Duration = Duration::from_secs(DAY);

/// Whether `d` is a valid portal link lifetime.
pub fn portal_link_ttl_ok(d: Duration) -> bool {
    PORTAL_LINK_TTL_SECS.contains(&d.as_secs())
}
