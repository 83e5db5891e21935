//! Every error the API answers: `{"error": {"code", "message", "field"?}}` with
//! the right status. Database and broker outages are 503, never a 500 with a trace.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
pub use hookfleet_service::ServiceError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                message,
            )
        }
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid `Authorization: Bearer <key>`",
        )
    }
    pub fn forbidden(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn unavailable(what: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{what} is unreachable; retry later"),
        )
    }
}

/// The body of every error answer: what [`ApiError`] serializes to, and the
/// `Error` schema of the OpenAPI document.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = Error, description = "Every error the API answers.")]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, and where.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `validation_error`, `not_found`, `unauthorized`,
    /// `forbidden`, `conflict`, `limit_reached`, `malformed_json`,
    /// `bad_request`, `payload_too_large`, `unsupported_media_type`,
    /// `unavailable`, `internal`, ….
    #[schema(example = "validation_error")]
    pub code: String,
    /// For people.
    #[schema(example = "must be an https:// URL")]
    pub message: String,
    /// The input at fault (a body key such as `headers.X-Foo`, a parameter,
    /// a header): only in validation errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "url")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("5"));
        }
        resp
    }
}

impl From<ServiceError> for ApiError {
    /// The one mapping of the service layer's error to the API's answer.
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(what) => ApiError::not_found(what),
            ServiceError::Invalid { field, message } => ApiError::invalid(&field, message),
            ServiceError::LimitReached(m) => {
                ApiError::new(StatusCode::CONFLICT, "limit_reached", m)
            }
            ServiceError::Conflict(m) => ApiError::conflict(m),
            ServiceError::Unavailable(what) => ApiError::unavailable(what),
            ServiceError::Forbidden(m) => ApiError::forbidden(&m),
            ServiceError::Internal(e) => {
                // Logged once here, answered without internals.
                tracing::error!(error = format!("{e:#}"), "Request failed.");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl From<anyhow::Error> for ApiError {
    /// A database or broker outage is a 503 ([`ServiceError`]'s `From`).
    fn from(e: anyhow::Error) -> Self {
        ServiceError::from(e).into()
    }
}

/// JSON body extractor whose rejections are our error shape: 400 for malformed
/// JSON, 413 over the size limit, 415 without a JSON content type, 422 for a body
/// of the wrong shape (naming the field serde names).
pub struct JsonBody<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/") && v.contains("json"));
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send Content-Type: application/json",
            ));
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "request body exceeds the size limit",
                ))
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    e.body_text(),
                ))
            }
        };
        parse_json(&bytes).map(JsonBody)
    }
}

/// Deserializes a JSON body: 400 when it is not JSON, 422 naming the offending
/// key when it has the wrong shape (`headers.X-Foo`, `grace_period_seconds`, an
/// unknown key by its own name; `body` for the body as a whole). A `\u0000`
/// anywhere is refused first, naming the key that holds it.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if hookfleet_core::text::has_nul_escape(bytes) {
        let field = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| nul_path(&v, ""))
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "body".to_owned());
        return Err(ApiError::invalid(
            &field,
            "text must not contain the character \\u0000",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let malformed = |e: &serde_json::Error| {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", e.to_string())
    };
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => match de.end() {
            Ok(()) => Ok(v),
            Err(e) => Err(malformed(&e)),
        },
        Err(e) if e.inner().is_syntax() || e.inner().is_eof() => Err(malformed(e.inner())),
        Err(e) => {
            let msg = e.inner().to_string();
            Err(ApiError::invalid(
                &rejected_field(&e.path().to_string(), &msg, "body"),
                msg,
            ))
        }
    }
}

/// Where the first NUL of a JSON document is, written like a deserialization
/// error's path (`tenant_id`, `headers.X-Foo`, `filter.or[1].eq`): the string
/// that holds it, or the object that holds a key with one. `Some("")` is the
/// document itself.
fn nul_path(v: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) => s.contains('\0').then(|| at.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_path(x, &format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, x)| {
            if k.contains('\0') {
                Some(at.to_owned())
            } else if at.is_empty() {
                nul_path(x, k)
            } else {
                nul_path(x, &format!("{at}.{k}"))
            }
        }),
        _ => None,
    }
}

/// The key a deserialization error is about: the path to where it happened
/// (`is_active`, `headers.X-Foo`, `events[2]`; an unknown key ends it),
/// completed by the key serde names for a missing field (absent, so not in the
/// path); `whole` (`body`, `query`) when that leaves nothing to name (an empty
/// key).
fn rejected_field(path: &str, msg: &str, whole: &str) -> String {
    let base = if path == "." || path == "?" { "" } else { path };
    let named = ["unknown field `", "missing field `", "duplicate field `"]
        .iter()
        .find_map(|p| msg.split_once(p))
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name);
    let field = match named {
        // An empty key: nothing to name but the whole.
        Some("") => String::new(),
        // An unknown key is the path's last segment already.
        Some(n) if base == n || base.ends_with(&format!(".{n}")) => base.to_owned(),
        Some(n) if base.is_empty() => n.to_owned(),
        Some(n) => format!("{base}.{n}"),
        None => base.to_owned(),
    };
    if field.is_empty() {
        whole.to_owned()
    } else {
        field
    }
}

/// Query string extractor with our error shape: 422 naming the parameter.
pub struct QueryParams<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for QueryParams<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        if let Some(name) = nul_parameter(q) {
            return Err(ApiError::invalid(
                &name,
                "parameters must not contain the character %00",
            ));
        }
        let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(q.as_bytes()));
        match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(v) => Ok(QueryParams(v)),
            Err(e) => {
                let msg = e.inner().to_string();
                Err(ApiError::invalid(
                    &rejected_field(&e.path().to_string(), &msg, "query"),
                    format!("query parameter: {msg}"),
                ))
            }
        }
    }
}

/// The name of the first query parameter whose value holds a NUL (`query`
/// when it is the name itself).
pub fn nul_parameter(query: &str) -> Option<String> {
    if !query.contains("%00") && !query.contains('\0') {
        return None;
    }
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        .map(|(k, _)| {
            if k.contains('\0') || k.is_empty() {
                "query".to_owned()
            } else {
                k.into_owned()
            }
        })
}

/// Runs `work` in a task of its own and waits for it. A client that disconnects
/// cancels the handler, never the work: it runs to completion, so nothing is left
/// half done.
pub async fn detached<T, F>(work: F) -> ApiResult<T>
where
    F: std::future::Future<Output = Result<T, ServiceError>> + Send + 'static,
    T: Send + 'static,
{
    Ok(hookfleet_service::error::detached(work).await?)
}

#[cfg(test)]
mod tests {
    use super::{parse_json, rejected_field, ApiError, ServiceError};
    use axum::http::StatusCode;

    /// A NUL in a JSON body is refused with the key that holds it (the answer
    /// used to name only `body`).
    #[test]
    fn a_nul_in_the_body_names_its_field() {
        let cases: [(&[u8], &str); 7] = [
            (br#"{"tenant_id":"a\u0000b","limit":1}"#, "tenant_id"),
            (
                br#"{"url":"x","headers":{"X-Foo":"\u0000"}}"#,
                "headers.X-Foo",
            ),
            (br#"{"events":["a","b\u0000"]}"#, "events[1]"),
            (
                br#"{"filter":{"or":[{"path":"data.a"},{"path":"data.b","eq":"e\u0000u"}]}}"#,
                "filter.or[1].eq",
            ),
            (br#"{"headers":{"X\u0000":"v"}}"#, "headers"),
            (br#""\u0000""#, "body"),
            (br#"{"a":"\u0000""#, "body"),
        ];
        for (body, field) in cases {
            let e = parse_json::<serde_json::Value>(body).unwrap_err();
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(
                e.field.as_deref(),
                Some(field),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn every_service_error_has_its_status_and_code() {
        let cases: Vec<(ServiceError, StatusCode, &str)> = vec![
            (
                ServiceError::NotFound("webhook"),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                ServiceError::invalid("url", "bad"),
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
            ),
            (
                ServiceError::LimitReached("full".into()),
                StatusCode::CONFLICT,
                "limit_reached",
            ),
            (
                ServiceError::Conflict("dup".into()),
                StatusCode::CONFLICT,
                "conflict",
            ),
            (
                ServiceError::Unavailable("RabbitMQ"),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
            (
                ServiceError::Forbidden("no".into()),
                StatusCode::FORBIDDEN,
                "forbidden",
            ),
            (
                ServiceError::Internal(anyhow::anyhow!("bug")),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
        ];
        for (e, status, code) in cases {
            let a = ApiError::from(e);
            assert_eq!((a.status, a.code), (status, code), "{}", a.message);
        }
        let a = ApiError::from(ServiceError::invalid("url", "bad"));
        assert_eq!(
            (a.field.as_deref(), a.message.as_str()),
            (Some("url"), "bad")
        );
        let a = ApiError::from(ServiceError::NotFound("webhook"));
        assert_eq!(a.message, "webhook not found");
        let a = ApiError::from(ServiceError::Unavailable("the database"));
        assert_eq!(a.message, "the database is unreachable; retry later");
    }

    #[test]
    fn the_field_is_the_offending_key() {
        let f = |p: &str, m: &str| rejected_field(p, m, "body");
        assert_eq!(
            f("is_active", "provided string was not `true` or `false`"),
            "is_active"
        );
        assert_eq!(
            f(
                "grace",
                "unknown field `grace`, expected `grace_period_seconds`"
            ),
            "grace"
        );
        assert_eq!(f(".", "missing field `url`"), "url");
        assert_eq!(f("retry", "missing field `url`"), "retry.url");
        assert_eq!(f(".", "unknown field ``, expected `event_type`"), "body");
        assert_eq!(f(".", "invalid type: string, expected a map"), "body");
    }
}
