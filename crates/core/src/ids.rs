//! Identifiers: a short prefix naming the kind, then a ULID (time-ordered, so
//! newest-first listings and index locality come for free). Within a process the
//! ULIDs are monotonic, so ids made in the same millisecond still sort in order.
use std::sync::{LazyLock, Mutex};

static GENERATOR: LazyLock<Mutex<ulid::Generator>> =
    LazyLock::new(|| Mutex::new(ulid::Generator::new()));

fn next() -> ulid::Ulid {
    let mut g = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    // Overflow needs 2^80 ids in one millisecond; fall back to a fresh random one.
    g.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

/// A new event id, `evt_<ulid>`.
pub fn event_id() -> String {
    format!("evt_{}", next())
}

/// A new endpoint id, `ep_<ulid>`.
pub fn endpoint_id() -> String {
    format!("ep_{}", next())
}

/// A new delivery id, `dlv_<ulid>`.
pub fn delivery_id() -> String {
    format!("dlv_{}", next())
}

/// A new request id, `req_<ulid>`, for an API request that brought no usable
/// `x-request-id` of its own.
pub fn request_id() -> String {
    format!("req_{}", next())
}

/// Milliseconds since the Unix epoch, for latency headers carried across processes.
pub fn now_millis() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Declares an id type: a `String` that says which kind of id it holds, so
/// that an endpoint id cannot be passed where a delivery id is expected. It
/// reads as a `&str` (`Deref`, `AsRef`, `Display`) and is the plain string in
/// JSON; making one from a string is explicit (`From`).
macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// An endpoint's id, `ep_<ulid>` (a webhook's id in the API).
    EndpointId
);
id_type!(
    /// A delivery's id, `dlv_<ulid>`: one event to one endpoint.
    DeliveryId
);
id_type!(
    /// An event's id: producer-chosen, or `evt_<ulid>`. Unique per tenant.
    EventId
);

#[cfg(test)]
mod id_type_tests {
    use super::*;

    #[test]
    fn ids_read_as_strings_and_serialize_as_them() {
        let e = EndpointId::from("ep_1");
        assert_eq!(e.as_str(), "ep_1");
        assert_eq!(&*e, "ep_1");
        assert_eq!(e.to_string(), "ep_1");
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"ep_1\"");
        let d: DeliveryId = serde_json::from_str("\"dlv_1\"").unwrap();
        assert_eq!(d.into_string(), "dlv_1");
        let mut m = std::collections::HashMap::new();
        m.insert(EventId::from("evt_1"), 1);
        assert_eq!(m.get("evt_1"), Some(&1));
    }
}
