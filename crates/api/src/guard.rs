//! One middleware around every route, for what no handler should have to
//! remember:
//!
//! - A path parameter that decodes to a NUL or to bytes that are not UTF-8
//!   (`/api/v1/webhooks/ep%00x`, `%FF`) is refused before any handler runs
//!   (PostgreSQL cannot store a NUL in text): on `/api` a 422 naming the
//!   parameter, in the portal its "Not found" page. A query parameter holding
//!   a NUL gets the same on portal pages (the API's own query extractor names
//!   it already).
//! - Every error answered under `/api` has the JSON error shape, including the
//!   ones axum answers itself (a body over the size limit, a method the route
//!   does not have), which are plain text or empty otherwise.
use crate::error::{nul_parameter, ApiError};
use axum::extract::{MatchedPath, Request};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn guard(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let api = path.starts_with("/api/");
    let portal = path == crate::portal::BASE || path.starts_with("/portal/");
    if let Some(param) = bad_segment(path, req.extensions().get::<MatchedPath>()) {
        if portal {
            return crate::portal::not_found_page();
        }
        return ApiError::invalid(&param, "must be UTF-8 text without the character %00")
            .into_response();
    }
    if portal && req.uri().query().and_then(nul_parameter).is_some() {
        return crate::portal::not_found_page();
    }
    let resp = next.run(req).await;
    if api && (resp.status().is_client_error() || resp.status().is_server_error()) {
        return as_json(resp).await;
    }
    resp
}

/// The parameter of the first path segment that does not decode to text
/// without NUL: its name in the route template (`id`, `delivery_id`), else
/// `path`.
fn bad_segment(path: &str, matched: Option<&MatchedPath>) -> Option<String> {
    if !path.contains('%') {
        return None;
    }
    let template: Vec<&str> = matched
        .map(|m| m.as_str().split('/').collect())
        .unwrap_or_default();
    for (i, seg) in path.split('/').enumerate() {
        let ok = String::from_utf8(percent_decode(seg)).is_ok_and(|s| !s.contains('\0'));
        if ok {
            continue;
        }
        // `{*rest}` takes the rest of the path: it is the parameter of every
        // segment from its own on.
        let name = template
            .get(i)
            .or_else(|| template.last().filter(|t| t.starts_with("{*")))
            .and_then(|t| t.strip_prefix('{'))
            .and_then(|t| t.strip_suffix('}'))
            .map(|t| t.trim_start_matches('*').to_owned());
        return Some(name.unwrap_or_else(|| "path".to_owned()));
    }
    None
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// An error response that is not JSON yet, as [`ApiError`]'s shape, keeping its
/// status and headers (`Allow`, `Retry-After`).
async fn as_json(resp: Response) -> Response {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let status = parts.status;
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "request body exceeds the size limit".to_owned(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this path does not take that method (see the Allow header)".to_owned(),
        ),
        StatusCode::NOT_FOUND => ("not_found", "not found".to_owned()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send Content-Type: application/json".to_owned(),
        ),
        s if s.is_server_error() => ("internal", "internal error".to_owned()),
        s => (
            "bad_request",
            if text.is_empty() {
                s.canonical_reason().unwrap_or("bad request").to_owned()
            } else {
                text
            },
        ),
    };
    let mut out = ApiError::new(status, code, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_parameter_of_a_bad_segment() {
        // Without a matched route (MatchedPath has no public constructor; the
        // e2e tests see the names): `path`.
        let m = |p: &str| bad_segment(p, None);
        assert_eq!(m("/api/v1/webhooks/ep_1"), None);
        assert_eq!(m("/api/v1/webhooks/ep%2F1"), None);
        assert_eq!(m("/api/v1/webhooks/ep%00x").as_deref(), Some("path"));
        assert_eq!(m("/api/v1/webhooks/%FF").as_deref(), Some("path"));
        assert_eq!(percent_decode("a%41%4"), b"aA%4".to_vec());
    }
}
