//! `hookfleet listen`: a local receiver for development. It verifies every
//! delivery with the `standardwebhooks` crate (an implementation independent of
//! ours) and prints it readably; `--fail N` and `--status CODE` rehearse retries.
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Listener behaviour.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    pub secret: Option<String>,
    /// Answer 500 to the first N requests.
    pub fail: u64,
    /// Answer this status to every request.
    pub status: Option<u16>,
}

struct Listener {
    opts: ListenOptions,
    verifier: Option<standardwebhooks::Webhook>,
    seen: AtomicU64,
    attempts: Mutex<HashMap<String, u32>>,
}

/// Serves until `shutdown`, printing each delivery to stdout.
pub async fn serve(
    listener: TcpListener,
    opts: ListenOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let verifier = match &opts.secret {
        Some(s) => Some(
            standardwebhooks::Webhook::new(s).map_err(|e| anyhow::anyhow!("--secret: {e:?}"))?,
        ),
        None => None,
    };
    let state = Arc::new(Listener {
        opts,
        verifier,
        seen: AtomicU64::new(0),
        attempts: Mutex::new(HashMap::new()),
    });
    let app = axum::Router::new().fallback(receive).with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

async fn receive(State(l): State<Arc<Listener>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = l.seen.fetch_add(1, Ordering::Relaxed) + 1;
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_owned();
    let attempt = {
        let mut a = l.attempts.lock().unwrap_or_else(|p| p.into_inner());
        let c = a.entry(id.clone()).or_default();
        *c += 1;
        *c
    };
    let verified = match &l.verifier {
        Some(v) => match v.verify(&body, &headers) {
            Ok(()) => "signature OK".to_owned(),
            Err(e) => format!("signature FAILED ({e:?})"),
        },
        None => "signature not checked (no --secret)".to_owned(),
    };
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let event_type = json
        .as_ref()
        .and_then(|j| j["type"].as_str())
        .unwrap_or("?")
        .to_owned();
    let status = if let Some(s) = l.opts.status {
        StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    } else if n <= l.opts.fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    };
    let pretty = json
        .map(|j| serde_json::to_string_pretty(&j).unwrap_or_default())
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    println!(
        "── {event_type}  id={id}  attempt={attempt}  {verified}  → {}\n{pretty}",
        status.as_u16()
    );
    status
}
