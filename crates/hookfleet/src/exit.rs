//! The exit codes, documented in `--help` ([`HELP`]) and the README.

/// The command did what it was asked.
pub const SUCCESS: u8 = 0;
/// It failed at run time: a service is unreachable, an id is unknown, a
/// signature does not verify, … (the message says what).
pub const FAILURE: u8 = 1;
/// The command line is wrong (clap's own code for usage errors).
pub const USAGE: u8 = 2;
/// PostgreSQL or RabbitMQ could not be reached by an operation of the service
/// layer (`EX_UNAVAILABLE` of sysexits.h): trying again later may succeed.
pub const UNAVAILABLE: u8 = 69;
/// The configuration is wrong or lacks a key this command needs
/// (`EX_CONFIG` of sysexits.h); the message names the key and its variable.
pub const CONFIG: u8 = 78;

/// The `--help` section that lists the codes.
pub const HELP: &str = "\
Exit codes:
  0   success
  1   failure at run time (the message says what failed)
  2   usage error: a wrong or missing command-line argument
  69  PostgreSQL or RabbitMQ is unreachable: retry later
  78  configuration error: a bad value, an unknown key, or a key this command
      needs is not set (the message names the key and its environment variable)";

/// The exit code for an error that ended a command.
pub fn code_of(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<hookfleet_core::config::ConfigError>()
        .is_some()
    {
        CONFIG
    } else if e.downcast_ref::<Usage>().is_some() {
        USAGE
    } else if e.chain().any(|c| {
        matches!(
            c.downcast_ref::<hookfleet_service::ServiceError>(),
            Some(hookfleet_service::ServiceError::Unavailable(_))
        )
    }) {
        UNAVAILABLE
    } else {
        FAILURE
    }
}

/// A usage error found after parsing (e.g. a secret given by no source).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_error() {
        let config = anyhow::Error::from(hookfleet_core::config::ConfigError::missing(
            "api.admin_key",
            "the API needs it",
        ))
        .context("starting");
        assert_eq!(code_of(&config), CONFIG);
        assert_eq!(code_of(&Usage("give --secret".into()).into()), USAGE);
        assert_eq!(code_of(&anyhow::anyhow!("broker down")), FAILURE);
        let down = anyhow::Error::from(hookfleet_service::ServiceError::Unavailable("PostgreSQL"))
            .context("creating the tenant");
        assert_eq!(code_of(&down), UNAVAILABLE);
        let invalid = hookfleet_service::ServiceError::invalid("id", "must not be empty");
        assert_eq!(code_of(&invalid.into()), FAILURE);
        assert_eq!(SUCCESS, 0);
    }
}
