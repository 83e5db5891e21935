//! The OTLP exporter of the hop spans: OTLP/HTTP with protobuf
//! (`telemetry.otlp_endpoint`), sent by the reqwest client the worker already
//! uses, batched by the SDK's span processor on a thread of its own.
//!
//! The processor's thread is not a Tokio thread: each export is spawned onto
//! the process's runtime (reqwest needs its reactor) and the thread waits for
//! it. The exporter never blocks a role: when the batch queue is full, spans
//! are dropped by the SDK.
use anyhow::Context as _;
use hookfleet_core::config::TelemetrySettings;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
/// Whether the last export failed: a failing collector is logged once when
/// it starts failing and once when it answers again, not at every batch.
static FAILING: AtomicBool = AtomicBool::new(false);

/// Builds the exporter and its provider; `None` when `otlp_endpoint` is
/// empty. Must run inside the Tokio runtime.
pub(super) fn install(
    t: &TelemetrySettings,
) -> anyhow::Result<Option<opentelemetry_sdk::trace::Tracer>> {
    let Some(endpoint) = &t.otlp_endpoint else {
        return Ok(None);
    };
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(t.export_timeout)
            // The collector is the operator's: no proxy from the environment.
            .no_proxy()
            .build()
            .context("building the OTLP client")?,
        runtime: tokio::runtime::Handle::try_current()
            .context("the OTLP exporter needs the Tokio runtime")?,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(t.export_timeout)
        .build()
        .with_context(|| format!("telemetry.otlp_endpoint `{endpoint}`"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        // A trace that came with a traceparent keeps its producer's decision.
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            t.sample_ratio,
        ))))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(t.service_name.clone())
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build();
    let tracer = provider.tracer("hookfleet");
    let _ = PROVIDER.set(provider);
    Ok(Some(tracer))
}

/// Whether an exporter is installed.
pub(super) fn installed() -> bool {
    PROVIDER.get().is_some()
}

/// Exports what is buffered, then stops.
pub(super) fn shutdown() {
    if let Some(p) = PROVIDER.get() {
        if let Err(e) = p.shutdown() {
            eprintln!("hookfleet: exporting the last spans: {e}");
        }
    }
}

/// reqwest as the exporter's HTTP client, run on the process's runtime.
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Client {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let http = self.http.clone();
        let sent = self.runtime.spawn(async move {
            let resp = http.execute(request).await?;
            let mut out = http::Response::builder().status(resp.status());
            if let Some(h) = out.headers_mut() {
                *h = resp.headers().clone();
            }
            let body = resp.bytes().await?;
            Ok::<_, opentelemetry_http::HttpError>(out.body(body)?)
        });
        let result = sent.await?;
        report(&result);
        result
    }
}

/// Logs a collector that stops taking spans, and when it takes them again.
fn report(result: &Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError>) {
    let problem = match result {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!("the collector answered {}", r.status())),
        Err(e) => Some(e.to_string()),
    };
    match problem {
        Some(error) if !FAILING.swap(true, Ordering::Relaxed) => tracing::warn!(
            error,
            "Cannot export spans to telemetry.otlp_endpoint; spans are dropped until it takes them."
        ),
        None if FAILING.swap(false, Ordering::Relaxed) => {
            tracing::info!("Exporting spans to telemetry.otlp_endpoint again.")
        }
        _ => {}
    }
}
