//! A Python client generated from the served OpenAPI document (issue #18): the
//! test fetches `/api/v1/openapi.json` from the running API, generates a client
//! with `openapi-python-client` (pinned, in a temporary folder) and runs
//! tests/openapi_client/client_e2e.py with it: the platform creates a tenant and
//! its webhooks, publishes an event, lists the delivery and replays a dead
//! letter, every call through the generated functions and models. This proves
//! the document is usable, not just valid.
use hookfleet::Roles;
use hookfleet_tests::{ensure_python_packages, Behaviour, Receiver, TestEnv, ADMIN_KEY};
use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi_client/client_e2e.py");

/// The generator's version, pinned (also in .ci/run).
pub const OPENAPI_PYTHON_CLIENT: &str = "0.29.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_python_client_runs_the_platform_flow() {
    ensure_python_packages(&[("openapi-python-client", OPENAPI_PYTHON_CLIENT)]);
    // One attempt, then the dead letter: the flaky receiver answers 500 to the
    // first request of each webhook-id and 200 to the replay.
    let env = TestEnv::new(&[("retry.schedule", "")]).await;
    let ok = Receiver::start(Behaviour::Ok).await;
    let flaky = Receiver::start(Behaviour::FailFirst(1)).await;
    let (app, base) = env.start_api(Roles::ALL).await;

    let dir = std::env::temp_dir().join(format!("{}-client", env.name));
    std::fs::create_dir_all(&dir).unwrap();
    let doc = reqwest::get(format!("{base}/api/v1/openapi.json"))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let doc_path = dir.join("openapi.json");
    std::fs::write(&doc_path, &doc).unwrap();

    // Generation must succeed without a warning: a warning means a piece of
    // the document the generator could not turn into code.
    let package = "hookfleet_client";
    let gen_dir = dir.clone();
    let gen_doc = doc_path.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-m", "openapi_python_client", "generate", "--path"])
            .arg(&gen_doc)
            .arg("--output-path")
            .arg(gen_dir.join(package))
            .args(["--meta", "none", "--fail-on-warning", "--overwrite"])
            .output()
            .expect("python3 runs openapi-python-client")
    })
    .await
    .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "openapi-python-client failed on the served document:\n{said}"
    );
    assert!(
        !said.to_lowercase().contains("warning"),
        "openapi-python-client warned on the served document:\n{said}"
    );

    let mut cmd = Command::new("python3");
    cmd.arg(SCRIPT)
        .env("HOOKFLEET_TEST_API", &base)
        .env("HOOKFLEET_TEST_ADMIN_KEY", ADMIN_KEY)
        .env("HOOKFLEET_CLIENT_PATH", &dir)
        .env("HOOKFLEET_CLIENT_PACKAGE", package)
        .env("HOOKFLEET_DOCUMENT", &doc_path)
        .env("RECEIVER_OK", &ok.url)
        .env("RECEIVER_FLAKY", &flaky.url);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("python3 runs"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the generated client's flow failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("the script's result line")).unwrap();
    let event_id = result["event_id"].as_str().unwrap();
    // The platform acts with the admin key and `Hookfleet-Tenant` wherever the
    // document declares that header; through a minted tenant key otherwise.
    let declares_header = String::from_utf8_lossy(&doc)
        .to_lowercase()
        .contains("\"hookfleet-tenant\"");
    println!("acting for the tenant with: {}", result["mode"]);
    assert_eq!(
        result["mode"],
        if declares_header { "header" } else { "key" },
        "{result}"
    );

    // What the receivers got agrees with what the client saw: one signed
    // delivery to the first webhook; to the second, the failed attempt and
    // the replay, with the same webhook-id.
    let got = ok.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].webhook_id(), event_id);
    got[0]
        .verify(result["ok"]["secret"].as_str().unwrap())
        .unwrap();
    assert_eq!(got[0].json()["data"]["username"], "ada");
    let got = flaky.received();
    assert_eq!(got.len(), 2, "the failed attempt and the replay");
    for r in &got {
        assert_eq!(r.webhook_id(), event_id);
        r.verify(result["flaky"]["secret"].as_str().unwrap())
            .unwrap();
    }
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM endpoints WHERE tenant_id = '{}'",
            result["tenant"].as_str().unwrap()
        ))
        .await,
        2
    );
    assert_eq!(env.dead_letters().await, 0, "the replayed letter is gone");

    app.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
