//! What the API says about its own requests: one middleware, outermost around
//! every route (the portal, `/docs` and unmatched paths included), that
//!
//! - gives each request an id: the client's `x-request-id` when it is 1 to
//!   [`MAX_REQUEST_ID`] visible ASCII characters, else a new `req_<ulid>`; the
//!   id is returned in the response's `x-request-id`, and every log line of
//!   the handler carries it (the `request` span);
//! - counts the request in `hookfleet_http_requests_total{route,method,status}`
//!   and times it in `hookfleet_http_request_duration_seconds{route,method}`,
//!   where `route` is the route template (`/api/v1/webhooks/{id}`), never the
//!   raw path, and `unmatched` for a path no route takes;
//! - logs one INFO line, `HTTP request.`, with the id, method, route, path
//!   (without the query: portal links carry their token there), status and
//!   latency.
//!
//! The time is from the request head to the response head: a streamed body is
//! not waited for (the API streams none).
//!
//! tower-http's request-id and trace layers were not used: its request-id layer
//! keeps whatever id the client sends (any header bytes, any length), and its
//! trace layer's `on_response` does not see the matched route, which the
//! metrics need; this is the three of them in one place, with no new crate.
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use hookfleet_core::metrics;
use std::time::Instant;
use tracing::Instrument as _;

/// The header that carries the request id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The longest client request id kept (a UUID is 36, a W3C trace id 32).
pub const MAX_REQUEST_ID: usize = 128;
/// The longest path written to the access log.
const MAX_LOGGED_PATH: usize = 256;

pub async fn telemetry(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(req.headers().get(&REQUEST_ID));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| metrics::UNMATCHED_ROUTE.to_owned());
    let method = metrics::http_method(req.method().as_str());
    let path = logged_path(req.uri().path()).to_owned();
    // Handlers (and anything they call) that read the header see the id that
    // is logged and returned, not a refused one.
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(REQUEST_ID, v);
    }
    let span = tracing::info_span!("request", request_id = %id);
    let mut resp = next.run(req).instrument(span).await;
    let elapsed = start.elapsed();
    let status = resp.status();
    // The code itself ("404"): a bounded set, from 100 to 999.
    metrics::HTTP_REQUESTS
        .with_label_values(&[route.as_str(), method, status.as_str()])
        .inc();
    metrics::HTTP_DURATION
        .with_label_values(&[route.as_str(), method])
        .observe(elapsed.as_secs_f64());
    tracing::info!(
        request_id = %id,
        method,
        route = %route,
        path = %path,
        status = status.as_u16(),
        latency_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3,
        "HTTP request."
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// The client's id when it is usable: 1 to [`MAX_REQUEST_ID`] bytes, each a
/// visible ASCII character (`!` to `~`: no space, control or non-ASCII byte,
/// which would break log lines or let a client forge fields in them). Else a
/// new `req_<ulid>`.
pub fn request_id(given: Option<&HeaderValue>) -> String {
    match given.map(HeaderValue::as_bytes) {
        Some(b) if acceptable(b) => String::from_utf8_lossy(b).into_owned(),
        _ => hookfleet_core::ids::request_id(),
    }
}

fn acceptable(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len()) && id.iter().all(|c| (b'!'..=b'~').contains(c))
}

/// The path as logged: percent-encoded already (so plain ASCII), cut to
/// [`MAX_LOGGED_PATH`] bytes.
fn logged_path(path: &str) -> &str {
    match path.char_indices().nth(MAX_LOGGED_PATH) {
        Some((i, _)) => &path[..i],
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_request_id_is_kept_only_when_short_and_visible_ascii() {
        let given = |s: &[u8]| request_id(Some(&HeaderValue::from_bytes(s).unwrap()));
        assert_eq!(given(b"abc-123"), "abc-123");
        let uuid = "0b5f1c3e-8d2a-4c6b-9e7f-123456789abc";
        assert_eq!(given(uuid.as_bytes()), uuid);
        let longest = "x".repeat(MAX_REQUEST_ID);
        assert_eq!(given(longest.as_bytes()), longest);
        for refused in [
            "x".repeat(MAX_REQUEST_ID + 1).into_bytes(),
            b"two words".to_vec(),
            b"tab\there".to_vec(),
            b"caf\xc3\xa9".to_vec(),
            b"\xff".to_vec(),
            b"".to_vec(),
        ] {
            let id = given(&refused);
            assert!(
                id.starts_with("req_") && id.len() == 30,
                "{:?} is replaced, got {id}",
                String::from_utf8_lossy(&refused)
            );
        }
        assert!(request_id(None).starts_with("req_"));
        assert_ne!(request_id(None), request_id(None));
    }

    #[test]
    fn logged_paths_are_bounded() {
        assert_eq!(logged_path("/api/v1/webhooks"), "/api/v1/webhooks");
        let long = format!("/{}", "a".repeat(1000));
        assert_eq!(logged_path(&long).len(), MAX_LOGGED_PATH);
    }
}
