//! Tracing to stderr: `RUST_LOG`, else `log.level`; `log.format` text or JSON.
//! With `telemetry.otlp_endpoint`, also the hop spans (`hookfleet::trace`)
//! exported over OTLP/HTTP (see [`otlp`]); every log line written inside a hop
//! then carries its `trace_id`.

use hookfleet_core::config::{LogFormat, TelemetrySettings};

mod otlp;

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
/// (`listen`, `verify`) pass the defaults: `info`, text, no telemetry.
///
/// With `telemetry.otlp_endpoint` set, the hop spans are exported too, and
/// the log's level filter lets them through (`RUST_LOG=warn` still logs the
/// trace id of a warning written inside a hop). Export problems are logged,
/// never fatal: a collector that is down costs the spans, not the process.
pub fn init(level: &str, format: LogFormat, telemetry: Option<&TelemetrySettings>) {
    use tracing_subscriber::filter::{FilterExt as _, LevelFilter, Targets};
    use tracing_subscriber::layer::{Layer as _, SubscriberExt as _};
    use tracing_subscriber::util::SubscriberInitExt as _;
    let env = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let tracer = telemetry.and_then(|t| match otlp::install(t) {
        Ok(tracer) => tracer,
        Err(e) => {
            eprintln!("hookfleet: tracing is off: {e:#}");
            None
        }
    });
    let Some(tracer) = tracer else {
        // Telemetry off: the subscriber exactly as it was before tracing existed.
        let b = tracing_subscriber::fmt()
            .with_env_filter(env())
            .with_writer(std::io::stderr);
        match format {
            LogFormat::Json => b.json().finish().with(library_cap()).init(),
            LogFormat::Text => b.finish().with(library_cap()).init(),
        }
        return;
    };
    let hops = Targets::new().with_target(hookfleet_core::trace::TARGET, LevelFilter::INFO);
    let registry = tracing_subscriber::registry().with(library_cap());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Json => registry
            .with(fmt.json().with_filter(env().or(hops.clone())))
            .with(otel(&tracer, hops.clone()))
            .init(),
        LogFormat::Text => registry
            .with(fmt.with_filter(env().or(hops.clone())))
            .with(otel(&tracer, hops.clone()))
            .init(),
    }
    if otlp::installed() {
        hookfleet_core::trace::enable();
        if let Some(t) = telemetry {
            tracing::info!(
                endpoint = t.otlp_endpoint.as_deref().unwrap_or_default(),
                service_name = %t.service_name,
                sample_ratio = t.sample_ratio,
                "Exporting traces over OTLP."
            );
        }
    }
}

/// Exports the spans still buffered and stops the exporter (at exit, while
/// the runtime still runs).
pub fn shutdown() {
    otlp::shutdown();
}

/// The exporting layer: only the hop spans, without thread or source-location
/// attributes.
fn otel<S>(
    tracer: &opentelemetry_sdk::trace::Tracer,
    hops: tracing_subscriber::filter::Targets,
) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer as _;
    tracing_opentelemetry::layer()
        .with_tracer(tracer.clone())
        .with_threads(false)
        .with_location(false)
        .with_filter(hops)
}
