//! The states hookfleet stores as text, one enum each: how an endpoint orders
//! its deliveries, its circuit breaker, and a delivery's status. Each has one
//! spelling, used in SQL (`as_str` / `FromStr`, stored in `text` columns with a
//! CHECK), in JSON (serde) and on the command line (`FromStr`, so clap's
//! `value_parser!` takes it).
use serde::{Deserialize, Serialize};

/// A text that names none of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must be one of {expected}, not `{value}`")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
    /// The spellings accepted, quoted: `` `parallel`, `fifo` ``.
    pub expected: String,
}

/// Declares a text-backed enum: `as_str`, `ALL`, `Display`, `FromStr`, serde.
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident, $kind:literal, { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and serialized spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        // By hand: the derive does not see the spellings through this
        // macro's `rename = $text` (it would write the variants' names).
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue {
                        kind: $kind,
                        value: crate::text::truncate(s, 40),
                        expected: [$(concat!("`", $text, "`")),+].join(", "),
                    }),
                }
            }
        }
    };
}

text_enum!(
    /// How an endpoint's deliveries are ordered (`endpoints.ordering`, V7);
    /// fixed when the endpoint is created.
    #[derive(Default)]
    Ordering, "ordering", {
        /// Delivered concurrently, retried through the retry tiers (the default).
        #[default]
        Parallel = "parallel",
        /// Delivered one at a time in publish order, retried in place.
        Fifo = "fifo",
    }
);

text_enum!(
    /// The circuit breaker of one endpoint (`endpoint_health.circuit`, V4; no
    /// row means closed).
    Circuit, "circuit", {
        /// Delivering.
        Closed = "closed",
        /// Not consumed until `next_probe_at`; messages wait in the queue.
        Open = "open",
        /// One probe delivery is deciding.
        HalfOpen = "half_open",
    }
);

text_enum!(
    /// A delivery's status (`deliveries.status`, V1).
    DeliveryStatus, "delivery status", {
        /// Not attempted yet, or failed with a retry scheduled.
        Pending = "pending",
        /// An attempt succeeded; never overwritten.
        Succeeded = "succeeded",
        /// Out of attempts (or 410 Gone, or its endpoint's queue missing): a
        /// dead letter, which a replay makes pending again.
        Failed = "failed",
        /// Kept in the dead letters.
        Dead = "dead",
    }
);

text_enum!(
    /// Why a message became a dead letter (`dead_letters.reason`, V15; null
    /// for the rows kept before it). Set by whoever dead-letters it, in the
    /// `x-dead-reason` header, or by the keeper of `hookfleet.unroutable`.
    DeadReason, "dead-letter reason", {
        /// The retry schedule was spent.
        AttemptsExhausted = "attempts_exhausted",
        /// The endpoint answered 410 Gone (and was disabled).
        Gone = "gone",
        /// A message in an endpoint queue that no router or API made (no
        /// `x-delivery-id`).
        Foreign = "foreign",
        /// The endpoint was deleted: left in its queue at the deletion, or a
        /// retry that expired after it (through `hookfleet.unroutable`).
        EndpointDeleted = "endpoint_deleted",
        /// The endpoint exists but its queue did not (deleted by hand, say):
        /// the delivery reached `hookfleet.unroutable`.
        QueueMissing = "queue_missing",
        /// A message in `hookfleet.unroutable` without hookfleet's headers (a
        /// foreign publish to `hookfleet.deliveries`).
        Unroutable = "unroutable",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_in_text_and_json() {
        fn check<T>(all: &[T])
        where
            T: Copy + PartialEq + std::fmt::Debug + std::str::FromStr + Serialize,
            T: for<'de> Deserialize<'de> + std::fmt::Display,
        {
            for v in all {
                let text = v.to_string();
                assert_eq!(text.parse::<T>().ok(), Some(*v));
                let json = serde_json::to_string(v).unwrap();
                assert_eq!(json, format!("\"{text}\""));
                assert_eq!(serde_json::from_str::<T>(&json).unwrap(), *v);
            }
        }
        check(Ordering::ALL);
        check(Circuit::ALL);
        // The OpenAPI schema lists the serialized spellings.
        let schema = serde_json::to_value(<Circuit as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(
            schema["enum"],
            serde_json::json!(["closed", "open", "half_open"])
        );
        check(DeliveryStatus::ALL);
        check(DeadReason::ALL);
    }

    #[test]
    fn the_spellings_are_the_stored_ones() {
        let texts = |all: &[&str]| all.join(",");
        let o: Vec<_> = Ordering::ALL.iter().map(|v| v.as_str()).collect();
        let c: Vec<_> = Circuit::ALL.iter().map(|v| v.as_str()).collect();
        let s: Vec<_> = DeliveryStatus::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(texts(&o), "parallel,fifo");
        assert_eq!(texts(&c), "closed,open,half_open");
        assert_eq!(texts(&s), "pending,succeeded,failed,dead");
        let e = "FIFO".parse::<Ordering>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "ordering must be one of `parallel`, `fifo`, not `FIFO`"
        );
    }
}
