//! The rules of an endpoint's fields, each failure naming the field.
use crate::error::{ServiceError, ServiceResult};
use hookfleet_core::config::ApiSettings;
use hookfleet_core::{endpoint, Ordering};
use std::collections::BTreeMap;

pub const MAX_DESCRIPTION: usize = 1024;
pub const MAX_METADATA_BYTES: usize = 4096;
/// Event types one endpoint subscribes to at most.
const MAX_EVENT_TYPES: usize = 100;
/// Longest custom header name.
const MAX_HEADER_NAME: usize = 128;

/// `ordering`: `parallel` (the default) or `fifo`; `true` for FIFO.
pub fn parse_ordering(v: Option<&str>) -> ServiceResult<Ordering> {
    match v {
        None => Ok(Ordering::default()),
        Some(s) => s.parse().map_err(|_| {
            ServiceError::invalid(
                "ordering",
                format!(
                    "must be `parallel` or `fifo`, not `{}`",
                    hookfleet_core::text::truncate(s, 40)
                ),
            )
        }),
    }
}

/// Checks the delivery control settings; returns the retry schedule's stored form.
pub fn validate_control(
    rate_limit: Option<i32>,
    max_in_flight: Option<i32>,
    retry_schedule: Option<&[String]>,
) -> ServiceResult<Option<String>> {
    if let Some(r) = rate_limit {
        ServiceError::check("rate_limit", endpoint::validate_rate_limit(r))?;
    }
    if let Some(m) = max_in_flight {
        ServiceError::check("max_in_flight", endpoint::validate_max_in_flight(m))?;
    }
    retry_schedule
        .map(|d| ServiceError::check("retry_schedule", endpoint::validate_retry_schedule(d)))
        .transpose()
}

/// Checks a content filter (`hookfleet_core::filter`): the error's field is
/// where in the filter the problem is (`filter.and[1].gte`).
pub fn validate_filter(filter: &serde_json::Value) -> ServiceResult<()> {
    hookfleet_core::filter::Filter::compile(filter)
        .map(|_| ())
        .map_err(|e| ServiceError::invalid(e.field, e.message))
}

/// Headers that describe one connection or its framing, or talk to a proxy
/// (RFC 9110 §7.6.1, §7.8, §10.1.1, §11.7): never a webhook's custom header.
pub fn is_hop_by_hop(lower: &str) -> bool {
    matches!(
        lower,
        "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "upgrade"
            | "expect"
            | "transfer-encoding"
            | "host"
            | "content-length"
    ) || lower.starts_with("proxy-")
}

/// An HTTP field name: a non-empty token (RFC 9110 §5.1).
fn is_header_name(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An HTTP field value: no control character but tab (RFC 9110 §5.5).
fn is_header_value(v: &str) -> bool {
    v.bytes().all(|b| (b >= 32 && b != 127) || b == b'\t')
}

fn check_headers(api: &ApiSettings, h: &BTreeMap<String, String>) -> ServiceResult<()> {
    let bad = |m: String| Err(ServiceError::invalid("headers", m));
    if h.len() > api.max_custom_headers {
        return bad(format!(
            "at most {} headers (api.max_custom_headers)",
            api.max_custom_headers
        ));
    }
    for (k, v) in h {
        let lower = k.to_ascii_lowercase();
        if !is_header_name(k) || k.len() > MAX_HEADER_NAME {
            return bad(format!("`{k}` is not a valid header name"));
        }
        if lower.starts_with("webhook-") || ["content-type", "user-agent"].contains(&lower.as_str())
        {
            return bad(format!(
                "`{k}` is set by hookfleet and cannot be overridden"
            ));
        }
        if is_hop_by_hop(&lower) {
            return bad(format!("`{k}` is a hop-by-hop, framing or proxy header: HTTP sets it per connection, a webhook cannot"));
        }
        if !is_header_value(v) || v.len() > api.max_header_value_bytes {
            return bad(format!(
                "the value of `{k}` is not a valid header value of at most {} bytes (api.max_header_value_bytes)",
                api.max_header_value_bytes
            ));
        }
    }
    Ok(())
}

/// Checks the parts of an endpoint a caller can set; custom headers against
/// `api.max_custom_headers` and `api.max_header_value_bytes`.
pub fn validate_parts(
    api: &ApiSettings,
    url: Option<&str>,
    events: Option<&[String]>,
    description: Option<&str>,
    headers: Option<&BTreeMap<String, String>>,
    metadata: Option<&serde_json::Value>,
) -> ServiceResult<()> {
    if let Some(u) = url {
        ServiceError::check("url", endpoint::validate_url(u))?;
    }
    if let Some(ev) = events {
        ServiceError::check("events", endpoint::validate_event_filter(ev))?;
        if ev.len() > MAX_EVENT_TYPES {
            return Err(ServiceError::invalid(
                "events",
                format!("at most {MAX_EVENT_TYPES} event types"),
            ));
        }
    }
    if description.is_some_and(|d| d.len() > MAX_DESCRIPTION) {
        return Err(ServiceError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    if let Some(h) = headers {
        check_headers(api, h)?;
    }
    if let Some(m) = metadata {
        if !m.is_object() {
            return Err(ServiceError::invalid("metadata", "must be a JSON object"));
        }
        if m.to_string().len() > MAX_METADATA_BYTES {
            return Err(ServiceError::invalid(
                "metadata",
                format!("must be at most {MAX_METADATA_BYTES} bytes of JSON"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_is_parallel_or_fifo() {
        assert_eq!(parse_ordering(None).unwrap(), Ordering::Parallel);
        assert_eq!(
            parse_ordering(Some("parallel")).unwrap(),
            Ordering::Parallel
        );
        assert_eq!(parse_ordering(Some("fifo")).unwrap(), Ordering::Fifo);
        let e = parse_ordering(Some("lifo")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ordering: must be `parallel` or `fifo`, not `lifo`"
        );
    }

    #[test]
    fn filter_errors_name_the_field_inside_the_filter() {
        let f = serde_json::json!({"and": [{"path": "data.region", "eq": "eu"}, {"path": "data.score", "gte": true}]});
        match validate_filter(&f).unwrap_err() {
            ServiceError::Invalid { field, message } => {
                assert_eq!(field, "filter.and[1].gte");
                assert!(message.starts_with("expected a number"), "{message}");
            }
            e => panic!("{e:?}"),
        }
        let ok = serde_json::json!({"path": "data.region", "in": ["eu", "uk"]});
        assert!(validate_filter(&ok).is_ok());
    }

    #[test]
    fn header_names_and_values_follow_http() {
        assert!(is_header_name("X-Foo_1"));
        assert!(!is_header_name(""));
        assert!(!is_header_name("X Foo"));
        assert!(!is_header_name("X:Foo"));
        assert!(is_header_value("a b\tc é"));
        assert!(!is_header_value("a\nb"));
        assert!(!is_header_value("a\u{7f}"));
    }
}
