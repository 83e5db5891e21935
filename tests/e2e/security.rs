//! Signing secrets at rest: sealed in PostgreSQL (AES-256-GCM), opened by every
//! listed key, resealed under a new key by `hookfleet secrets reseal`, never
//! sent unsigned when they cannot be opened, and never written to a log or a
//! metric, even at debug level.
use hookfleet::Roles;
use hookfleet_tests::*;
use serde_json::json;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);
const K2: &str = "k2:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const K3: &str = "k3:ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

async fn ready(base: &str) -> bool {
    reqwest::get(format!("{base}/readyz"))
        .await
        .is_ok_and(|r| r.status().is_success())
}

fn log_of(p: &Proc) -> String {
    std::fs::read_to_string(&p.log).unwrap_or_default()
}

async fn stored_secrets(env: &TestEnv) -> String {
    let client = env.pool.get().await.unwrap();
    client
        .query_one("SELECT string_agg(secrets::text, ' ') FROM endpoints", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_at_rest_rotate_and_never_logged() {
    let env = TestEnv::new(&[("circuit.failure_threshold", "1000")]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let (_api_app, base) = env.start_api(Roles::NONE).await;
    let api = Api::new(&base, ADMIN_KEY);
    let (s, w) = api
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": rx.url, "events": ["*"]})),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    let id = w["id"].as_str().unwrap().to_owned();
    let first = w["secret"].as_str().unwrap().to_owned();
    let (s, r) = api
        .call(
            "POST",
            &format!("/api/v1/webhooks/{id}/secret/rotate"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let second = r["key"].as_str().unwrap().to_owned();
    assert_ne!(first, second);

    // At rest: sealed under the configured key, the secrets nowhere in clear.
    let stored = stored_secrets(&env).await;
    assert_eq!(stored.matches("enc:v1:test:").count(), 2, "{stored}");
    for secret in [&first, &second] {
        assert!(!stored.contains(secret.as_str()));
        assert!(!stored.contains(secret.trim_start_matches("whsec_")));
    }

    // Workers at debug level deliver, signed with both secrets.
    let debug = [("HOOKFLEET__LOG__LEVEL", "debug")];
    let (router, router_ops) = env.spawn_with_ops(&["router"], &debug);
    let (worker, worker_ops) = env.spawn_with_ops(&["worker"], &debug);
    for ops in [&router_ops, &worker_ops] {
        wait_for("ready", LONG, || ready(ops)).await;
    }
    env.publish("user.created", json!({"user_id": 1, "username": "u"}), None)
        .await;
    wait_for("the first delivery", LONG, || async { rx.count() == 1 }).await;
    rx.received()[0].verify(&first).unwrap();
    rx.received()[0].verify(&second).unwrap();

    // Key rotation: a new key first, the old one still listed; reseal; then
    // the old key goes.
    let both = format!("{K2},{TEST_SEALING_KEY}");
    let keys = |k: &str| vec![("HOOKFLEET__SECRETS__ENCRYPTION_KEYS", k.to_owned())];
    let out = env
        .command(&["secrets", "reseal"])
        .envs(keys(&both))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("2 secret(s) resealed under key `k2`"),
        "{said}"
    );
    let stored = stored_secrets(&env).await;
    assert_eq!(stored.matches("enc:v1:k2:").count(), 2, "{stored}");
    // Logs are removed with their process: read each before it goes.
    let mut texts = vec![log_of(&worker)];
    drop(worker);
    let k2_only = [
        ("HOOKFLEET__LOG__LEVEL", "debug"),
        ("HOOKFLEET__SECRETS__ENCRYPTION_KEYS", K2),
    ];
    let (worker, worker_ops) = env.spawn_with_ops(&["worker"], &k2_only);
    wait_for("ready", LONG, || ready(&worker_ops)).await;
    env.publish("user.created", json!({"user_id": 2, "username": "u"}), None)
        .await;
    wait_for("a delivery after the key rotation", LONG, || async {
        rx.count() == 2
    })
    .await;
    rx.received()[1].verify(&second).unwrap();

    // Resealing with a key list that lacks the secrets' key says so.
    let out = env
        .command(&["secrets", "reseal"])
        .envs(keys(K3))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not list"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A worker that cannot open the secrets does not send unsigned.
    texts.push(log_of(&worker));
    drop(worker);
    let (worker, worker_ops) = env.spawn_with_ops(
        &["worker"],
        &[
            ("HOOKFLEET__LOG__LEVEL", "debug"),
            ("HOOKFLEET__SECRETS__ENCRYPTION_KEYS", K3),
        ],
    );
    wait_for("ready", LONG, || ready(&worker_ops)).await;
    env.publish("user.created", json!({"user_id": 3, "username": "u"}), None)
        .await;
    wait_for("the failed attempt recorded", LONG, || async {
        env.count(
            "SELECT count(*) FROM delivery_attempts WHERE error LIKE 'no usable signing secret%'",
        )
        .await
            >= 1
    })
    .await;
    assert_eq!(rx.count(), 2, "nothing was sent unsigned");

    // No secret in any log line or metric.
    for ops in [&router_ops, &worker_ops] {
        texts.push(
            reqwest::get(format!("{ops}/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    texts.push(log_of(&router));
    texts.push(log_of(&worker));
    let logged: usize = texts.iter().map(String::len).sum();
    assert!(logged > 1000, "the logs were read ({logged} bytes)");
    for text in &texts {
        for secret in [&first, &second] {
            let body = secret.trim_start_matches("whsec_");
            assert!(!text.contains(body), "a signing secret leaked");
        }
        for key in [K2, K3, TEST_SEALING_KEY] {
            let material = key.split_once(':').unwrap().1;
            assert!(!text.contains(material), "a sealing key leaked");
        }
    }
}

/// `RUST_LOG=debug` (which the database client answers with every statement's
/// parameters) on a whole `hookfleet all`: no signing secret in its log,
/// whether secrets are sealed at rest or not (then the database client sees
/// them in clear).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_a_debug_log_sealed_or_not() {
    for sealing in [TEST_SEALING_KEY, ""] {
        let env = TestEnv::new(&[]).await;
        let rx = Receiver::start(Behaviour::Ok).await;
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let listen = format!("127.0.0.1:{port}");
        let (app, ops) = env.spawn_with_ops(
            &["all"],
            &[
                ("RUST_LOG", "debug"),
                ("HOOKFLEET__API__LISTEN", listen.as_str()),
                ("HOOKFLEET__API__ADMIN_KEY", ADMIN_KEY),
                ("HOOKFLEET__SECRETS__ENCRYPTION_KEYS", sealing),
            ],
        );
        wait_for("ready", LONG, || ready(&ops)).await;
        wait_for("the API", LONG, || async {
            reqwest::get(format!("{base}/api/v1/openapi.json"))
                .await
                .is_ok()
        })
        .await;
        let api = Api::new(&base, ADMIN_KEY);
        let (s, w) = api
            .call(
                "POST",
                "/api/v1/webhooks",
                Some(json!({"url": rx.url, "events": ["*"]})),
            )
            .await;
        assert_eq!(s, 201, "{w}");
        let id = w["id"].as_str().unwrap().to_owned();
        let first = w["secret"].as_str().unwrap().to_owned();
        let (s, r) = api
            .call(
                "POST",
                &format!("/api/v1/webhooks/{id}/secret/rotate"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{r}");
        let second = r["key"].as_str().unwrap().to_owned();
        let (s, _) = api
            .call("GET", &format!("/api/v1/webhooks/{id}/secret"), None)
            .await;
        assert_eq!(s, 200);
        let stored = stored_secrets(&env).await;
        assert_eq!(
            stored.contains(first.as_str()),
            sealing.is_empty(),
            "sealed or not as configured: {stored}"
        );
        let (s, t) = api
            .call(
                "POST",
                &format!("/api/v1/webhooks/{id}/test"),
                Some(json!({"event_type": "user.created"})),
            )
            .await;
        assert_eq!(s, 202, "{t}");
        wait_for("the test delivery", LONG, || async { rx.count() == 1 }).await;
        rx.received()[0].verify(&second).unwrap();
        wait_for("its attempt recorded", LONG, || async {
            env.count("SELECT count(*) FROM delivery_attempts").await == 1
        })
        .await;
        let log = log_of(&app);
        assert!(
            log.contains("DEBUG"),
            "debug level is on ({} bytes)",
            log.len()
        );
        for secret in [&first, &second] {
            let body = secret.trim_start_matches("whsec_");
            assert!(
                !log.contains(body),
                "a signing secret leaked (encryption_keys = {sealing:?})"
            );
        }
        drop(app);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_sealing_key_is_a_configuration_error_naming_the_key() {
    let env = TestEnv::new(&[]).await;
    let out = env
        .command(&["endpoint", "list"])
        .env("HOOKFLEET__SECRETS__ENCRYPTION_KEYS", "k1:c2hvcnQ=")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("secrets.encryption_keys") && err.contains("32 bytes"),
        "{err}"
    );
    assert!(
        !err.contains("c2hvcnQ"),
        "the key itself is not echoed: {err}"
    );
}
