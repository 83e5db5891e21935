//! The one error of every operation. Callers branch on it: the API maps it to
//! a status and an error code, the portal to a form message, the CLI to an
//! exit message.
//!
//! An outage (PostgreSQL or RabbitMQ unreachable) is [`ServiceError::Unavailable`],
//! told apart from a bug ([`ServiceError::Internal`]) where the error is made
//! from an `anyhow` chain.

/// What went wrong, in the terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The thing (`webhook`, `tenant`, `delivery`, …) does not exist in the
    /// caller's scope.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// An input field is wrong; `field` names it as the caller sent it.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A configured limit would be passed.
    #[error("{0}")]
    LimitReached(String),
    /// The request conflicts with what exists (a duplicate, a payload gone).
    #[error("{0}")]
    Conflict(String),
    /// PostgreSQL or RabbitMQ (the name) is unreachable; retry later.
    #[error("{0} is unreachable; retry later")]
    Unavailable(&'static str),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Anything else: a bug or an unexpected state, with its cause.
    #[error(transparent)]
    Internal(anyhow::Error),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// `Err(Invalid)` naming `field` when `r` is an error message.
    pub fn check<T>(field: &str, r: Result<T, String>) -> ServiceResult<T> {
        r.map_err(|m| Self::invalid(field, m))
    }
}

/// RabbitMQ could not take a publish or declaration (the cause inside).
#[derive(Debug, thiserror::Error)]
#[error("RabbitMQ unavailable: {0:#}")]
pub struct BrokerUnavailable(pub anyhow::Error);

impl From<anyhow::Error> for ServiceError {
    /// A pool or connection failure of PostgreSQL, or any failure to reach
    /// RabbitMQ, is an outage (logged here, once); anything else is internal.
    fn from(e: anyhow::Error) -> Self {
        if e.chain()
            .any(|c| c.is::<BrokerUnavailable>() || c.is::<lapin::Error>())
        {
            tracing::warn!(error = format!("{e:#}"), "RabbitMQ unavailable.");
            return ServiceError::Unavailable("RabbitMQ");
        }
        let db_down = e.chain().any(|c| {
            c.downcast_ref::<deadpool_postgres::PoolError>().is_some()
                || c.downcast_ref::<tokio_postgres::Error>()
                    .is_some_and(|pe| pe.is_closed() || pe.code().is_none())
        });
        if db_down {
            tracing::warn!(error = format!("{e:#}"), "Postgres unavailable.");
            return ServiceError::Unavailable("the database");
        }
        ServiceError::Internal(e)
    }
}

impl From<BrokerUnavailable> for ServiceError {
    fn from(e: BrokerUnavailable) -> Self {
        anyhow::Error::from(e).into()
    }
}

impl From<hookfleet_store::dead_letters::BadFilter> for ServiceError {
    fn from(e: hookfleet_store::dead_letters::BadFilter) -> Self {
        ServiceError::invalid(e.field, e.message)
    }
}

/// Runs `work` in a task of its own and waits for it: a caller that goes away
/// (an HTTP client disconnecting cancels its handler) never leaves the work
/// half done. The task stays in the caller's span, so what it logs carries
/// the API request's id.
pub async fn detached<T, F>(work: F) -> ServiceResult<T>
where
    F: std::future::Future<Output = ServiceResult<T>> + Send + 'static,
    T: Send + 'static,
{
    use tracing::Instrument as _;
    match tokio::spawn(work.in_current_span()).await {
        Ok(r) => r,
        Err(join) => Err(ServiceError::Internal(anyhow::anyhow!(
            "background task failed: {join}"
        ))),
    }
}
