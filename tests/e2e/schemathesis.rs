//! Stateful fuzzing of the REST API with schemathesis (issue #18): the test
//! starts the API with a router, seeds a tenant, webhooks, deliveries (one with
//! an attempt) and a kept dead letter, stops the worker (so no webhook that the
//! fuzzer creates is ever contacted), and runs `schemathesis run` against the
//! document the API serves, with the admin key. Every phase runs: examples,
//! coverage, fuzzing, and the stateful phase, which chains operations through
//! the links schemathesis infers (or the document declares). Any 5xx, any
//! answer that breaks its own schema, an undocumented status code or content
//! type fails the test.
//!
//! `HOOKFLEET_SCHEMATHESIS_EXAMPLES` (default 20 per operation) and
//! `HOOKFLEET_SCHEMATHESIS_SEED` (default a fixed seed, so that CI is
//! repeatable; `random` for a new one) tune a longer local run.
use hookfleet::Roles;
use hookfleet_tests::{
    ensure_python_packages, wait_for, Api, Behaviour, Receiver, TestEnv, ADMIN_KEY,
};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

/// schemathesis's version, pinned (also in .ci/run).
pub const SCHEMATHESIS: &str = "4.32.5";

/// The checks: a server error, a response that breaks its schema, a status
/// code or a content type the document does not declare.
pub const CHECKS: &str =
    "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance";

const DEFAULT_EXAMPLES: &str = "20";
const DEFAULT_SEED: &str = "18";
const LONG: Duration = Duration::from_secs(60);

/// A tenant, its key, two webhooks (one whose receiver answers 500: with one
/// attempt, a dead letter) and an event: so the list, show and replay answers
/// that the fuzzer checks against their schemas carry real rows.
async fn seed(env: &TestEnv, base: &str) {
    let ok = Receiver::start(Behaviour::Ok).await;
    let failing = Receiver::start(Behaviour::Always(500)).await;
    let worker = env.start(Roles::WORKER).await;
    let admin = Api::new(base, ADMIN_KEY);
    let (s, _) = admin
        .call("POST", "/api/v1/tenants", Some(json!({"id": "acme"})))
        .await;
    assert_eq!(s, 201);
    let (s, key) = admin
        .call("POST", "/api/v1/tenants/acme/api-keys", None)
        .await;
    assert_eq!(s, 201);
    let tenant = admin.with_key(key["key"].as_str().unwrap());
    for (api, url) in [(&tenant, &ok.url), (&admin, &failing.url)] {
        let (s, _) = api
            .call(
                "POST",
                "/api/v1/webhooks",
                Some(json!({"url": url, "events": ["*"]})),
            )
            .await;
        assert_eq!(s, 201);
    }
    for (api, n) in [(&tenant, 1), (&admin, 2)] {
        let (s, _) = api
            .call(
                "POST",
                "/api/v1/events",
                Some(json!({"type": "user.created", "data": {"user_id": n, "username": "ada"}})),
            )
            .await;
        assert_eq!(s, 202);
    }
    wait_for("a delivery and a dead letter", LONG, || async {
        env.count("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
            .await
            >= 1
            && env.dead_letters().await >= 1
    })
    .await;
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_nor_schema_violation() {
    ensure_python_packages(&[("schemathesis", SCHEMATHESIS)]);
    let env = TestEnv::new(&[("retry.schedule", "")]).await;
    // The API and a router (events become deliveries) but no worker while the
    // fuzzer runs: what it creates is stored and queued, never sent.
    let (app, base) = env.start_api(Roles::ROUTER).await;
    seed(&env, &base).await;

    let examples = std::env::var("HOOKFLEET_SCHEMATHESIS_EXAMPLES")
        .unwrap_or_else(|_| DEFAULT_EXAMPLES.to_owned());
    let seed =
        std::env::var("HOOKFLEET_SCHEMATHESIS_SEED").unwrap_or_else(|_| DEFAULT_SEED.to_owned());
    // schemathesis keeps its state (.schemathesis/) in its working folder.
    let dir = std::env::temp_dir().join(format!("{}-schemathesis", env.name));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "schemathesis.cli", "run"])
        .arg(format!("{base}/api/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {ADMIN_KEY}")])
        .args(["--checks", CHECKS])
        .args(["--max-examples", &examples])
        .args(["--workers", "1", "--request-timeout", "30"])
        .args(["--generation-database", "none", "--no-color"])
        .current_dir(&dir);
    if seed != "random" {
        cmd.args(["--seed", &seed]);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("python3 runs schemathesis"))
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis failed:\n{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its summary, for `make fuzz-schema` (which shows the test's output).
    println!("{said}");
    // Every phase ran, the stateful one with scenarios (links to follow).
    for phase in [
        "Examples (in",
        "Coverage (in",
        "Fuzzing (in",
        "Stateful (in",
    ] {
        assert!(said.contains(phase), "the phase {phase:?} ran:\n{said}");
    }
    assert!(
        said.contains("Scenarios:"),
        "stateful scenarios ran:\n{said}"
    );
    // "Test cases: N generated, N passed"
    let generated: u64 = said
        .lines()
        .find_map(|l| l.trim().split_once(" generated, ")?.0.parse().ok())
        .unwrap_or(0);
    assert!(generated > 0, "schemathesis generated cases:\n{said}");
    app.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
