//! The generated OpenAPI document (docs/ARCHITECTURE.md §26) as a running API
//! serves it: clean under openapi-spec-validator and Redocly's `recommended`
//! rules, one webhook per catalog type with that type's schema, and every
//! documented operation routed.
use hookfleet::Roles;
use hookfleet_tests::{Api, TestEnv, ADMIN_KEY};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn lint_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi-lint")
}

async fn fetch(base: &str) -> Value {
    let resp = reqwest::get(format!("{base}/api/v1/openapi.json"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.unwrap()
}

/// The served document, once `name` is (or is no longer) among its
/// webhooks: the catalog is cached for two seconds.
async fn document_when(base: &str, name: &str, present: bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let doc = fetch(base).await;
        if doc["webhooks"][name].is_object() == present {
            return doc;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`{name}` present={present} never held: {}",
            doc["webhooks"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A type whose schema has its own `$defs`, a `$schema` and an `$id`: what
/// the document must rebase to stay valid.
fn invoice_paid() -> Value {
    json!({
        "name": "invoice.paid",
        "description": "An invoice was paid in full.",
        "schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://example.com/schemas/invoice.paid",
            "type": "object",
            "required": ["invoice_id", "amount"],
            "properties": {
                "invoice_id": {"type": "string"},
                "amount": {"$ref": "#/$defs/money"},
            },
            "$defs": {"money": {
                "type": "object",
                "required": ["cents", "currency"],
                "properties": {"cents": {"type": "integer"}, "currency": {"type": "string", "minLength": 3, "maxLength": 3}},
            }},
        },
        "example": {"invoice_id": "inv_1", "amount": {"cents": 1250, "currency": "EUR"}},
    })
}

/// Creating an event type adds its webhook to the served document, with the
/// type's schema as `data` inside the envelope and the Standard Webhooks
/// headers; deprecating it takes it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_has_a_webhook_per_catalog_type() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::NONE).await;
    let api = Api::new(&base, ADMIN_KEY);
    let (s, t) = api
        .call("POST", "/api/v1/webhooks/events", Some(invoice_paid()))
        .await;
    assert_eq!(s, 201, "{t}");

    let doc = document_when(&base, "invoice.paid", true).await;
    assert_eq!(doc["openapi"], "3.1.0");
    // The catalog of migration V2 is there too.
    assert!(doc["webhooks"]["match.found"]["post"].is_object());

    let op = &doc["webhooks"]["invoice.paid"]["post"];
    assert_eq!(op["operationId"], "webhook_invoice.paid");
    assert!(op["description"]
        .as_str()
        .unwrap()
        .starts_with("An invoice was paid in full."));
    let headers: Vec<(&str, bool)> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["in"], "header");
            (
                p["name"].as_str().unwrap(),
                p["required"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        headers,
        [
            ("webhook-id", true),
            ("webhook-timestamp", true),
            ("webhook-signature", true),
            ("traceparent", false)
        ]
    );
    assert_eq!(
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/event.invoice.paid"
    );
    // The envelope's schema, with this type's `type` and `data`.
    let payload = &doc["components"]["schemas"]["event.invoice.paid"];
    let envelope = &doc["components"]["schemas"]["Envelope"];
    assert_eq!(payload["required"], envelope["required"]);
    assert_eq!(payload["properties"]["id"], envelope["properties"]["id"]);
    let part = &payload["properties"];
    assert_eq!(part["type"]["const"], "invoice.paid");
    // The catalog's schema, its own reference pointing where it now is.
    let data = &part["data"];
    assert_eq!(data["required"], json!(["invoice_id", "amount"]));
    assert_eq!(
        data["$defs"]["money"]["properties"]["currency"]["maxLength"],
        3
    );
    let pointer = data["properties"]["amount"]["$ref"].as_str().unwrap();
    assert_eq!(
        pointer,
        "#/components/schemas/event.invoice.paid/properties/data/$defs/money"
    );
    assert_eq!(
        doc.pointer(pointer.trim_start_matches('#')).unwrap()["required"],
        json!(["cents", "currency"])
    );
    assert!(data.get("$schema").is_none() && data.get("$id").is_none());
    assert_eq!(payload["examples"][0]["data"], invoice_paid()["example"]);

    // `hookfleet openapi` prints the same document: with --webhooks from the
    // configured database's catalog; without, needing no configuration.
    let cli = |args: &[&str], with_config: bool| {
        let mut c = Command::new(hookfleet_tests::hookfleet_bin());
        c.args(args);
        if with_config {
            c.env("HOOKFLEET__DATABASE__URL", &env.db_url)
                .env("HOOKFLEET__AMQP__URL", &env.amqp_url);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(cli(&["openapi", "--webhooks"], true), doc);
    let plain = cli(&["openapi"], false);
    assert!(plain.get("webhooks").is_none());
    assert_eq!(plain["paths"], doc["paths"]);

    // Deprecated, it is no longer delivered, so no longer described.
    let (s, _) = api
        .call(
            "PATCH",
            "/api/v1/webhooks/events/invoice.paid",
            Some(json!({"deprecated": true})),
        )
        .await;
    assert_eq!(s, 200);
    let doc = document_when(&base, "invoice.paid", false).await;
    assert!(doc["components"]["schemas"]["event.invoice.paid"].is_null());
    app.stop().await.unwrap();
}

/// Every operation the document names answers on its path and method (a
/// 401 without a key, or the page): none is the router's "route not found"
/// or a 405. With the unit test `docs::openapi_matches_the_router`, which
/// reads the router's routes, the two cannot drift apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::NONE).await;
    let doc = fetch(&base).await;
    let http = reqwest::Client::new();
    let mut n = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let url = path
                .split('/')
                .map(|s| if s.starts_with('{') { "x" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = http
                .request(m, format!("{base}{url}"))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            let public = op["security"] == json!([{}]);
            let expected = if public { 200 } else { 401 };
            assert_eq!(status, expected, "{method} {path}: {body}");
            n += 1;
        }
    }
    assert!(n > 25, "{n} operations");
    app.stop().await.unwrap();
}

/// Runs `cmd`; `None` when its program is not installed.
fn run(cmd: &mut Command) -> Option<std::process::Output> {
    match cmd.output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("{cmd:?}: {e}"),
    }
}

fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// The served document, with a catalog type that has its own `$defs`,
/// passes openapi-spec-validator (PyPI) and Redocly CLI's `recommended`
/// rules (npm, pinned in tests/openapi-lint) with no error and no warning.
/// Outside CI the test is skipped, saying so, where node or python3 is
/// missing; under CI=true that fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_passes_the_linters() {
    let dir = lint_dir();
    let has = |program: &str| run(Command::new(program).arg("--version")).is_some();
    for program in ["node", "npm", "python3"] {
        if !has(program) {
            assert!(!in_ci(), "{program} is needed to lint the OpenAPI document");
            eprintln!("SKIPPED: {program} is not installed; the OpenAPI linters did not run");
            return;
        }
    }
    if !dir.join("node_modules/.bin/redocly").exists() {
        // Installed by .ci/run from the lockfile; here for a developer machine.
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "npm ci in {} failed", dir.display());
    }

    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::NONE).await;
    let api = Api::new(&base, ADMIN_KEY);
    let (s, t) = api
        .call("POST", "/api/v1/webhooks/events", Some(invoice_paid()))
        .await;
    assert_eq!(s, 201, "{t}");
    let doc = document_when(&base, "invoice.paid", true).await;
    app.stop().await.unwrap();
    // The name the ignore file (.redocly.lint-ignore.yaml) knows it by, in a
    // directory of this test's own.
    let work = std::env::temp_dir().join(format!("hookfleet-openapi-lint-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    for f in ["redocly.yaml", ".redocly.lint-ignore.yaml"] {
        std::fs::copy(dir.join(f), work.join(f)).unwrap();
    }
    let file = work.join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();

    let validate = || {
        Command::new("python3")
            .args(["-m", "openapi_spec_validator"])
            .arg(&file)
            .output()
            .unwrap()
    };
    let mut out = validate();
    if String::from_utf8_lossy(&out.stderr).contains("No module named") {
        // Installed by .ci/run; installed here for a developer machine that lacks it.
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "-q", "openapi-spec-validator"])
            .status();
        out = validate();
    }
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(dir.join("node_modules/.bin/redocly"))
        .current_dir(&work)
        .args(["lint", "openapi.json", "--format=json"])
        .env("REDOCLY_TELEMETRY", "off")
        .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "redocly lint printed no JSON report ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let problems: Vec<String> = report["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["ignored"] != true)
        .map(|p| {
            format!(
                "{} {}: {} at {}",
                p["severity"], p["ruleId"], p["message"], p["location"][0]["pointer"]
            )
        })
        .collect();
    assert!(
        problems.is_empty(),
        "Redocly recommended rules:\n{}",
        problems.join("\n")
    );
    assert_eq!(report["totals"]["errors"], 0, "{report}");
    assert_eq!(report["totals"]["warnings"], 0, "{report}");
    assert!(out.status.success(), "redocly lint failed: {report}");
    let _ = std::fs::remove_dir_all(&work);
}
