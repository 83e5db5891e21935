//! What a portal page or action fails with, and the page that says so.
//!
//! The operations ([`super::ops`]) answer with a [`PortalError`]; a handler
//! either turns the kinds it expects into a form message (an invalid field, a
//! conflict) or passes the error on with `?`, and axum renders it as a message
//! page ([`IntoResponse`]).
use super::message;
use crate::error::ApiError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hookfleet_service::ServiceError;
use std::collections::BTreeMap;

/// Why a portal page or action could not be done.
#[derive(Debug)]
pub enum PortalError {
    /// Nothing of the tenant's is there (an unknown id, another tenant's
    /// webhook, an unknown page).
    NotFound,
    /// The input was refused; `field` names it when the operation says which.
    Invalid {
        field: Option<String>,
        message: String,
    },
    /// The input conflicts with what exists (409).
    Conflict {
        field: Option<String>,
        message: String,
    },
    /// The database or the broker is unreachable (503); the message says which.
    Unavailable(String),
    /// Any other refusal or failure, with the status the REST API gives it.
    Other { status: StatusCode, message: String },
}

pub type PortalResult<T> = Result<T, PortalError>;

impl PortalError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        PortalError::Invalid {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    /// The HTTP status of the page that shows it.
    pub fn status(&self) -> StatusCode {
        match self {
            PortalError::NotFound => StatusCode::NOT_FOUND,
            PortalError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            PortalError::Conflict { .. } => StatusCode::CONFLICT,
            PortalError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PortalError::Other { status, .. } => *status,
        }
    }

    /// The refusal of a form's input (invalid or conflicting): its field and
    /// message; `None` for every other error.
    fn refusal(&self) -> Option<(Option<&str>, &str)> {
        match self {
            PortalError::Invalid { field, message } | PortalError::Conflict { field, message } => {
                Some((field.as_deref(), message))
            }
            _ => None,
        }
    }

    /// An invalid input's message (not a conflict).
    pub fn invalid_message(&self) -> Option<&str> {
        match self {
            PortalError::Invalid { message, .. } => Some(message),
            _ => None,
        }
    }

    /// A refused form input as the form shows it: next to its field when it
    /// names one (every `events[…]` next to the events), else on top.
    pub fn field_errors(&self) -> Option<BTreeMap<String, String>> {
        let (field, message) = self.refusal()?;
        let (field, message) = match field {
            Some(f) if f.starts_with("events") => ("events", message.to_owned()),
            // Where inside the filter goes into the message: `filter.and[1].gte: …`.
            Some(f) if f.starts_with("filter.") => ("filter", format!("{f}: {message}")),
            Some(f) => (f, message.to_owned()),
            None => ("form", message.to_owned()),
        };
        Some(BTreeMap::from([(field.to_owned(), message)]))
    }
}

impl From<ApiError> for PortalError {
    fn from(e: ApiError) -> Self {
        let ApiError {
            status,
            message,
            field,
            ..
        } = e;
        match status {
            StatusCode::NOT_FOUND => PortalError::NotFound,
            StatusCode::UNPROCESSABLE_ENTITY => PortalError::Invalid { field, message },
            StatusCode::CONFLICT => PortalError::Conflict { field, message },
            StatusCode::SERVICE_UNAVAILABLE => PortalError::Unavailable(message),
            status => PortalError::Other { status, message },
        }
    }
}

impl From<ServiceError> for PortalError {
    /// Through the API's mapping ([`ApiError`]'s `From`), so a page fails with
    /// the status and message the REST API answers with.
    fn from(e: ServiceError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<anyhow::Error> for PortalError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::from(e).into()
    }
}

/// The message page of an error outside a form.
impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let back = Some(("/portal/", "Back to your webhooks"));
        let status = self.status();
        match self {
            PortalError::NotFound => message(
                status,
                "Not found",
                "There is nothing here for your account.",
                back,
            ),
            PortalError::Unavailable(m) => message(
                status,
                "Temporarily unavailable",
                &format!("{m} Try again in a few seconds."),
                None,
            ),
            PortalError::Invalid { message: m, .. }
            | PortalError::Conflict { message: m, .. }
            | PortalError::Other { message: m, .. } => {
                message(status, "Something went wrong", &m, back)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_keep_their_status_field_and_message() {
        for e in [
            ApiError::not_found("webhook"),
            ApiError::invalid("url", "must be https"),
            ApiError::conflict("taken"),
            ApiError::unavailable("the database"),
            ApiError::forbidden("no"),
        ] {
            let status = e.status;
            let p = PortalError::from(e);
            assert_eq!(p.status(), status);
        }
        let p = PortalError::from(ApiError::invalid("events[2]", "unknown type"));
        assert_eq!(
            p.field_errors(),
            Some(BTreeMap::from([("events".into(), "unknown type".into())]))
        );
        assert_eq!(PortalError::NotFound.field_errors(), None);
    }

    #[test]
    fn service_errors_keep_the_status_and_message_of_the_rest_api() {
        let cases = [
            (ServiceError::NotFound("webhook"), StatusCode::NOT_FOUND),
            (
                ServiceError::invalid("url", "must be https"),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                ServiceError::LimitReached("too many".into()),
                StatusCode::CONFLICT,
            ),
            (ServiceError::Conflict("taken".into()), StatusCode::CONFLICT),
            (
                ServiceError::Unavailable("the database"),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (ServiceError::Forbidden("no".into()), StatusCode::FORBIDDEN),
            (
                ServiceError::Internal(anyhow::anyhow!("boom")),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(PortalError::from(e).status(), status);
        }
        let p = PortalError::from(ServiceError::invalid("events[2]", "unknown type"));
        assert_eq!(
            p.field_errors(),
            Some(BTreeMap::from([("events".into(), "unknown type".into())]))
        );
        let PortalError::Unavailable(m) =
            PortalError::from(ServiceError::Unavailable("the database"))
        else {
            panic!("not unavailable");
        };
        let ApiError { message, .. } = ApiError::unavailable("the database");
        assert_eq!(m, message);
    }
}
