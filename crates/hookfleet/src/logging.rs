//! Tracing to stderr: `RUST_LOG`, else `log.level`; `log.format` text or JSON.

use hookfleet_core::config::LogFormat;

/// Libraries that log what they send at debug or trace level: the database
/// client logs statement parameters (signing secrets among them), the broker
/// client message frames. Whatever `RUST_LOG` or `log.level` ask, nothing
/// below `info` from them reaches a log.
const CAPPED_AT_INFO: &[&str] = &[
    "tokio_postgres",
    "postgres_protocol",
    "postgres_types",
    "deadpool",
    "deadpool_postgres",
    "lapin",
    "amq_protocol",
    "amq_protocol_types",
    "refinery",
    "refinery_core",
];

/// The cap of [`CAPPED_AT_INFO`], applied on top of the level filter (a
/// directive of `RUST_LOG` cannot lift it).
fn library_cap() -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    CAPPED_AT_INFO
        .iter()
        .fold(Targets::new().with_default(LevelFilter::TRACE), |t, lib| {
            t.with_target(*lib, LevelFilter::INFO)
        })
}

/// Installs the global subscriber. Commands that load no configuration
/// (`listen`, `verify`) pass the defaults: `info`, text.
pub fn init(level: &str, format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().finish().with(library_cap()).init(),
        LogFormat::Text => b.finish().with(library_cap()).init(),
    }
}
