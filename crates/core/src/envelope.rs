//! The event envelope of the wire contract (docs/ARCHITECTURE.md §20.1).
//!
//! Producers send `{"id"?, "type", "tenant_id"?, "timestamp"?, "data"}`; the router
//! turns it into an [`Envelope`] with every field filled in, and the body an
//! endpoint receives is [`Envelope::to_body`]. `data` is kept as raw JSON: it is
//! checked to be an object but never re-encoded, so the bytes a producer sent are the
//! bytes an endpoint receives.
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;

/// Default payload limit (256 KiB).
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// A valid, complete event: the body every webhook delivery carries.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Envelope {
    /// The event id, also sent as the `webhook-id` header: the key to dedupe on.
    #[schema(example = "evt_01JDX3MGVQ8K2Z7T4R6N1B9C5D")]
    pub id: String,
    /// The event type, a name from the catalog.
    #[serde(rename = "type")]
    #[schema(example = "match.found")]
    pub event_type: String,
    /// When the event happened (RFC 3339).
    #[schema(format = DateTime, example = "2026-11-28T12:00:00Z")]
    pub timestamp: String,
    /// The tenant; null in a single-tenant install.
    pub tenant_id: Option<String>,
    /// The event's payload, as the producer sent it; its schema is the event
    /// type's in the catalog.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
}

/// Why an envelope was refused; the text goes into the `x-invalid-reason` header.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum InvalidEnvelope {
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("missing required field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}` is invalid: {reason}")]
    BadField { field: &'static str, reason: String },
    #[error("field `type` is `{event_type}` but the routing key is `{routing_key}`")]
    TypeMismatch {
        event_type: String,
        routing_key: String,
    },
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    #[error("field `data` does not match the schema of `{event_type}`: {reason}")]
    DataSchema { event_type: String, reason: String },
}

/// An event as a producer publishes it (`POST /api/v1/events` or AMQP):
/// [`Envelope::parse`] fills in what is absent. Public for its schema in the
/// OpenAPI document (`NewEvent`).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = NewEvent, description = "An event to publish. `id` and `timestamp` are filled in when absent.")]
pub struct Incoming<'a> {
    /// The event id; generated (`evt_` and a ULID) when absent. Publishing
    /// the same id again is not a second event.
    #[serde(default)]
    #[schema(
        pattern = "^[A-Za-z0-9._:-]{1,128}$",
        example = "evt_01JDX3MGVQ8K2Z7T4R6N1B9C5D"
    )]
    id: Option<String>,
    /// The event type: a name from the catalog.
    #[serde(rename = "type", default)]
    #[schema(required, value_type = String, pattern = "^[A-Za-z0-9._-]{1,128}$", example = "match.found")]
    event_type: Option<String>,
    /// The tenant whose webhooks receive it; a tenant key's own tenant when
    /// absent (and only that one).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "acme")]
    tenant_id: Option<String>,
    /// When it happened (RFC 3339); now when absent.
    #[serde(default)]
    #[schema(format = DateTime, example = "2026-11-28T12:00:00Z")]
    timestamp: Option<String>,
    /// The payload: a JSON object matching the type's schema in the catalog.
    #[serde(borrow, default)]
    #[schema(required, value_type = Object)]
    data: Option<&'a RawValue>,
}

fn is_token(s: &str, max: usize, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' || extra.contains(&b)
        })
}

/// Checks an event type name: 1–128 characters of `A-Z a-z 0-9 . _ -`.
pub fn validate_event_type(t: &str) -> Result<(), String> {
    if is_token(t, 128, b"") {
        Ok(())
    } else {
        Err("must be 1-128 characters of letters, digits, `.`, `_` or `-`".into())
    }
}

/// Checks a tenant id: 1–64 characters of `A-Z a-z 0-9 . _ -`.
pub fn validate_tenant_id(t: &str) -> Result<(), String> {
    if is_token(t, 64, b"") {
        Ok(())
    } else {
        Err("must be 1-64 characters of letters, digits, `.`, `_` or `-`".into())
    }
}

fn validate_event_id(t: &str) -> Result<(), String> {
    if is_token(t, 128, b":") {
        Ok(())
    } else {
        Err("must be 1-128 characters of letters, digits, `.`, `_`, `-` or `:`".into())
    }
}

/// Now, as RFC 3339 with millisecond precision.
pub fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now())
}

/// `at`, as RFC 3339 (UTC) with millisecond precision.
pub fn rfc3339(at: std::time::SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    let at = at
        .replace_nanosecond(at.millisecond() as u32 * 1_000_000)
        .unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_default()
}

impl Envelope {
    /// Validates a producer's message. `routing_key` and `message_id` come from the
    /// AMQP properties (empty/`None` when absent).
    pub fn parse(
        body: &[u8],
        routing_key: &str,
        message_id: Option<&str>,
        max_bytes: usize,
    ) -> Result<Self, InvalidEnvelope> {
        if body.len() > max_bytes {
            return Err(InvalidEnvelope::TooLarge {
                size: body.len(),
                limit: max_bytes,
            });
        }
        let inc: Incoming<'_> =
            serde_json::from_slice(body).map_err(|e| InvalidEnvelope::NotJson(e.to_string()))?;
        let event_type = inc.event_type.ok_or(InvalidEnvelope::Missing("type"))?;
        validate_event_type(&event_type).map_err(|reason| InvalidEnvelope::BadField {
            field: "type",
            reason,
        })?;
        if !routing_key.is_empty() && routing_key != event_type {
            return Err(InvalidEnvelope::TypeMismatch {
                event_type,
                routing_key: routing_key.to_owned(),
            });
        }
        let data = inc.data.ok_or(InvalidEnvelope::Missing("data"))?;
        if !data.get().starts_with('{') {
            return Err(InvalidEnvelope::BadField {
                field: "data",
                reason: "must be a JSON object".into(),
            });
        }
        if crate::text::has_nul_escape(data.get().as_bytes()) {
            return Err(InvalidEnvelope::BadField {
                field: "data",
                reason: "contains the character \\u0000, which cannot be stored".into(),
            });
        }
        if let Some(t) = &inc.tenant_id {
            validate_tenant_id(t).map_err(|reason| InvalidEnvelope::BadField {
                field: "tenant_id",
                reason,
            })?;
        }
        let id = match inc.id {
            Some(id) => {
                validate_event_id(&id).map_err(|reason| InvalidEnvelope::BadField {
                    field: "id",
                    reason,
                })?;
                id
            }
            None => match message_id.filter(|m| validate_event_id(m).is_ok()) {
                Some(m) => m.to_owned(),
                None => crate::ids::event_id(),
            },
        };
        let timestamp = match inc.timestamp {
            Some(ts) => {
                time::OffsetDateTime::parse(&ts, &Rfc3339).map_err(|e| {
                    InvalidEnvelope::BadField {
                        field: "timestamp",
                        reason: format!("not an RFC 3339 time: {e}"),
                    }
                })?;
                ts
            }
            None => now_rfc3339(),
        };
        Ok(Self {
            id,
            event_type,
            timestamp,
            tenant_id: inc.tenant_id,
            data: data.to_owned(),
        })
    }

    /// The JSON body POSTed to endpoints.
    pub fn to_body(&self) -> Vec<u8> {
        // Serializing plain strings and a RawValue cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl InvalidEnvelope {
    /// Every value of [`InvalidEnvelope::metric_label`].
    pub const METRIC_LABELS: [&'static str; 7] = [
        "too_large",
        "not_json",
        "missing_field",
        "bad_field",
        "type_mismatch",
        "unknown_type",
        "schema_mismatch",
    ];

    /// The `reason` label of `hookfleet_events_invalid_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            InvalidEnvelope::TooLarge { .. } => "too_large",
            InvalidEnvelope::NotJson(_) => "not_json",
            InvalidEnvelope::Missing(_) => "missing_field",
            InvalidEnvelope::BadField { .. } => "bad_field",
            InvalidEnvelope::TypeMismatch { .. } => "type_mismatch",
            InvalidEnvelope::UnknownType(_) => "unknown_type",
            InvalidEnvelope::DataSchema { .. } => "schema_mismatch",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Envelope, InvalidEnvelope> {
        Envelope::parse(body.as_bytes(), "", None, 1024)
    }

    #[test]
    fn fills_in_defaults_and_keeps_data_bytes() {
        let e = Envelope::parse(
            br#"{"type":"match.found","data":{"b": 1,  "a":2}}"#,
            "match.found",
            Some("m1"),
            1024,
        )
        .unwrap();
        assert_eq!(e.id, "m1");
        assert_eq!(e.tenant_id, None);
        assert_eq!(e.data.get(), r#"{"b": 1,  "a":2}"#);
        let body: serde_json::Value = serde_json::from_slice(&e.to_body()).unwrap();
        assert_eq!(body["type"], "match.found");
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(body.get("tenant_id").unwrap().is_null());
        let generated = parse(r#"{"type":"a","data":{}}"#).unwrap();
        assert!(generated.id.starts_with("evt_"));
    }

    #[test]
    fn refuses_bad_envelopes() {
        use InvalidEnvelope::*;
        assert!(matches!(parse("{not json"), Err(NotJson(_))));
        assert!(parse("[]").is_err());
        assert_eq!(parse(r#"{"data":{}}"#).unwrap_err(), Missing("type"));
        assert_eq!(parse(r#"{"type":"a"}"#).unwrap_err(), Missing("data"));
        assert!(matches!(
            parse(r#"{"type":"a","data":[1]}"#),
            Err(BadField { field: "data", .. })
        ));
        assert!(matches!(parse(r#"{"type":7,"data":{}}"#), Err(NotJson(_))));
        assert!(matches!(
            parse(r#"{"type":"a b","data":{}}"#),
            Err(BadField { field: "type", .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"a","data":{},"tenant_id":""}"#),
            Err(BadField {
                field: "tenant_id",
                ..
            })
        ));
        assert!(matches!(
            parse(r#"{"type":"a","data":{},"timestamp":"yesterday"}"#),
            Err(BadField {
                field: "timestamp",
                ..
            })
        ));
        assert!(matches!(
            parse(r#"{"type":"a","data":{},"id":"x y"}"#),
            Err(BadField { field: "id", .. })
        ));
        assert!(matches!(
            Envelope::parse(br#"{"type":"a","data":{}}"#, "b", None, 1024),
            Err(TypeMismatch { .. })
        ));
        let big = format!(r#"{{"type":"a","data":{{"x":"{}"}}}}"#, "x".repeat(2000));
        assert!(matches!(parse(&big), Err(TooLarge { .. })));
    }
}
