//! A hookfleet receiver: verify the signature, drop duplicates, answer 204 at
//! once, do the work afterwards. Run: PORT=9000 WEBHOOK_SECRET=whsec_… cargo run
use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode, Router};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

struct Receiver {
    webhook: standardwebhooks::Webhook,
    seen: Mutex<HashSet<String>>,
    work: mpsc::UnboundedSender<serde_json::Value>,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    // Verify the raw bytes, before any parsing; this also checks the timestamp
    // is within 5 minutes of now.
    if let Err(e) = r.webhook.verify(&body, &headers) {
        println!("rejected {id} {e:?}");
        return StatusCode::BAD_REQUEST;
    }
    // webhook-id stays the same across retries and replays: the dedupe key.
    if !r.seen.lock().unwrap().insert(id.clone()) {
        println!("duplicate {id}");
        return StatusCode::NO_CONTENT;
    }
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    println!("verified {id} {}", event["type"].as_str().unwrap_or("?"));
    let _ = r.work.send(event);
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "9000".into());
    let secret = std::env::var("WEBHOOK_SECRET").expect("WEBHOOK_SECRET=whsec_…");
    let webhook = standardwebhooks::Webhook::new(&secret).expect("a whsec_ secret");
    let (work, mut queue) = mpsc::unbounded_channel::<serde_json::Value>();
    // The slow part runs after the 204 went out.
    tokio::spawn(async move {
        while let Some(event) = queue.recv().await {
            let _ = (event["type"].as_str(), &event["data"]); // handle the event here
        }
    });
    let state = Arc::new(Receiver {
        webhook,
        seen: Mutex::new(HashSet::new()),
        work,
    });
    let app = Router::new().fallback(receive).with_state(state);
    let addr = format!("127.0.0.1:{port}");
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!("listening on {addr}");
    axum::serve(listener, app).await.expect("serve");
}
