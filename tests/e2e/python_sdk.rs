//! The Python emit SDK (sdks/python, issue #19): its pytest suite runs against this
//! test's own vhost and database, with router, worker and the REST API running
//! (the roles of `hookfleet all`). The suite registers its own tenants and
//! webhooks through the API, receives the deliveries itself and verifies them
//! with the Python `standardwebhooks` library.
use hookfleet::Roles;
use hookfleet_tests::{TestEnv, ADMIN_KEY};
use std::process::{Command, Output};

const SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdks/python");

/// The SDK's test dependencies: installed by .ci/run; installed here for a
/// developer machine that lacks them.
fn ensure_python_deps() {
    let checks = [
        ("import pika", "pika"),
        ("import pytest", "pytest"),
        ("import mypy", "mypy"),
        ("import standardwebhooks", "standardwebhooks"),
        ("import prometheus_client", "prometheus_client"),
        ("import opentelemetry.trace", "opentelemetry-api"),
        ("import opentelemetry.sdk.trace", "opentelemetry-sdk"),
        (
            "import importlib.metadata as m; m.version('types-pika-ts')",
            "types-pika-ts",
        ),
    ];
    let absent: Vec<&str> = checks
        .iter()
        .filter(|(check, _)| {
            !Command::new("python3")
                .args(["-c", check])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|(_, pkg)| *pkg)
        .collect();
    if !absent.is_empty() {
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "-q"])
            .args(&absent)
            .status();
    }
}

/// Runs `python3 -m pytest <args>` in sdks/python against `env` and its API.
async fn pytest(env: &TestEnv, api_base: &str, args: &[&str], extra: &[(&str, &str)]) -> Output {
    ensure_python_deps();
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .args(args)
        .current_dir(SDK)
        .env("HOOKFLEET_TEST_AMQP_URL", &env.amqp_url)
        .env("HOOKFLEET_TEST_API", api_base)
        .env("HOOKFLEET_TEST_ADMIN_KEY", ADMIN_KEY)
        .env_remove("HOOKFLEET_AMQP_URL");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("python3 runs pytest"))
        .await
        .unwrap()
}

fn assert_passed(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pytest failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_pytest_suite_passes() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let out = pytest(&env, &base, &["tests"], &[]).await;
    assert_passed(&out);
    // Every integration test ran: none was skipped for want of the stack.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 skipped"),
        "only the broker restart test is skipped: {stdout}"
    );
    app.stop().await.unwrap();
}

/// Restarts RabbitMQ under 10,000 events: runs alone, after the rest (the name
/// holds `broker_restart`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_broker_restart_loses_nothing() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let guard = hookfleet_tests::BrokerRestart; // starts RabbitMQ again even if pytest dies
    let out = pytest(
        &env,
        &base,
        &["tests/test_resilience.py", "-k", "broker_restart"],
        &[("HOOKFLEET_TEST_BROKER_RESTART", "1")],
    )
    .await;
    drop(guard);
    assert_passed(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    app.stop().await.unwrap();
}
