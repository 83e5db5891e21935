//! Fuzzing of the REST API's input (issue #6): a kept corpus of hostile inputs
//! (`tests/fuzz/api_corpus.jsonl`) and, with proptest, random JSON built from
//! the API's own field names, sent to every endpoint that takes a body. Any
//! answer is fine but a 5xx, a hang, or an error without its `code`; a 422
//! names its field. `HOOKFLEET_FUZZ_CASES` sets the random cases per route (CI
//! runs 64; `make fuzz` runs 2,000). A failing input is printed, to be added
//! to the corpus once fixed.
use hookfleet::Roles;
use hookfleet_tests::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::time::Duration;

/// The field names the API knows, so random objects reach the validators.
const FIELDS: &[&str] = &[
    "url",
    "events",
    "description",
    "is_active",
    "headers",
    "metadata",
    "secret",
    "rate_limit",
    "max_in_flight",
    "retry_schedule",
    "type",
    "data",
    "tenant_id",
    "id",
    "timestamp",
    "since",
    "until",
    "endpoint_id",
    "event_type",
    "error",
    "delivery_id",
    "limit",
    "rate",
    "all",
    "dry_run",
    "name",
    "schema",
    "example",
    "deprecated",
    "by",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
        prop::sample::select(vec![
            "*",
            "user.created",
            "http://127.0.0.1:9/x",
            "whsec_",
            "5s",
            "2026-11-28T12:00:00Z",
            "acme",
            "",
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        let key = prop_oneof![
            3 => prop::sample::select(FIELDS.to_vec()).prop_map(str::to_owned),
            1 => any::<String>(),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..7)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Sends one request; fails on a 5xx, a timeout or a malformed error.
async fn check(api: &Api, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<(), String> {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = api
        .http
        .request(m, format!("{}{}", api.base, path))
        .bearer_auth(&api.key)
        .timeout(Duration::from_secs(30))
        .header("content-type", "application/json");
    if let Some(b) = body.clone() {
        req = req.body(b);
    }
    let what = || {
        format!(
            "{method} {path} {}",
            body.as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
        )
    };
    let resp = req.send().await.map_err(|e| format!("{}: {e}", what()))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    if status >= 500 {
        return Err(format!("{} → {status} {text}", what()));
    }
    if status >= 400 {
        let e: Value = serde_json::from_str(&text)
            .map_err(|_| format!("{} → {status}, not JSON: {text}", what()))?;
        if !e["error"]["code"].is_string() {
            return Err(format!("{} → {status} without error.code: {text}", what()));
        }
        if status == 422 && !e["error"]["field"].is_string() {
            return Err(format!("{} → 422 without error.field: {text}", what()));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_input_corpus_and_random_json_never_cause_a_server_error() {
    let env = TestEnv::new(&[]).await;
    let (_app, base) = env.start_api(Roles::NONE).await;
    let api = Api::new(&base, ADMIN_KEY);
    let (s, w) = api
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/x", "events": ["*"]})),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    let id = w["id"].as_str().unwrap().to_owned();

    let corpus = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/api_corpus.jsonl"
    ))
    .unwrap();
    let mut failures = Vec::new();
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let c: Value = serde_json::from_str(line).unwrap();
        let body = match (&c["raw"], &c["body"]) {
            (Value::String(raw), _) => Some(raw.as_bytes().to_vec()),
            (_, Value::Null) => None,
            (_, b) => Some(serde_json::to_vec(b).unwrap()),
        };
        let (m, p) = (c["method"].as_str().unwrap(), c["path"].as_str().unwrap());
        if let Err(e) = check(&api, m, p, body).await {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "corpus: {failures:#?}");

    let cases: u32 = std::env::var("HOOKFLEET_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let routes = [
        ("POST", "/api/v1/webhooks".to_owned()),
        ("PATCH", format!("/api/v1/webhooks/{id}")),
        ("POST", "/api/v1/events".to_owned()),
        ("POST", "/api/v1/webhooks/events".to_owned()),
        ("POST", "/api/v1/dead-letters/replay".to_owned()),
        ("POST", format!("/api/v1/webhooks/{id}/recover")),
        ("POST", "/api/v1/tenants".to_owned()),
    ];
    let handle = tokio::runtime::Handle::current();
    for (method, path) in routes {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let result = tokio::task::block_in_place(|| {
            runner.run(&json_value(), |v| {
                let body = serde_json::to_vec(&v).unwrap();
                handle
                    .block_on(check(&api, method, &path, Some(body)))
                    .map_err(TestCaseError::fail)
            })
        });
        if let Err(e) = result {
            panic!("{method} {path}: {e}");
        }
    }
}
