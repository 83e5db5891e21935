//! Delivery control per endpoint: `rate_limit` and `max_in_flight` held by all
//! workers together, 429/502/503/504 slowing an endpoint down without spending
//! attempts, and retry schedules of an endpoint or an event type. Timing is
//! only ever checked as a lower bound (a slow machine makes a limit look
//! stricter, never looser).
use hookfleet::Roles;
use hookfleet_tests::*;
use serde_json::json;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(120);

async fn consumers_on(env: &TestEnv, endpoint_id: &str) -> u32 {
    let conn = hookfleet_broker::connect_url(&env.amqp_url, "test")
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            format!("hookfleet.endpoint.{endpoint_id}").as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let _ = conn.close(200, "bye".into()).await;
    q.consumer_count()
}

/// Two workers start, and each has counted the other.
async fn two_workers_counted(env: &TestEnv, endpoint_id: &str) -> (App, App) {
    let a = env.start(Roles::WORKER).await;
    let b = env.start(Roles::WORKER).await;
    wait_for("both workers to consume the queue", LONG, || async {
        consumers_on(env, endpoint_id).await == 2
    })
    .await;
    // Each worker recounts every 5 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    (a, b)
}

/// The API and a router in this process, and a webhook to `rx` with `extra`
/// settings, created through the API.
async fn limited_webhook(
    env: &TestEnv,
    rx: &Receiver,
    extra: serde_json::Value,
) -> (Api, serde_json::Value) {
    // Runs until the TestEnv is dropped, like the tests' other apps.
    let (_, base) = env.start_api(Roles::ROUTER).await;
    let api = Api::new(&base, ADMIN_KEY);
    let mut body = json!({"url": rx.url, "events": ["*"]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (s, w) = api.call("POST", "/api/v1/webhooks", Some(body)).await;
    assert_eq!(s, 201, "{w}");
    (api, w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_holds_for_all_workers_together_and_excess_waits() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let (_, w) = limited_webhook(&env, &rx, json!({"rate_limit": 4})).await;
    assert_eq!(w["rate_limit"], 4);
    let id = w["id"].as_str().unwrap().to_owned();
    let _workers = two_workers_counted(&env, &id).await;

    let start = Instant::now();
    env.publish_many(
        "user.created",
        (0..40).map(|i| json!({"user_id": i, "username": "u"})),
        None,
    )
    .await;
    wait_for("all 40 delivered", LONG, || async { rx.count() == 40 }).await;
    let took = start.elapsed();
    // 4/s in all: the 40th cannot start before ~9.75 s. Were each worker to take
    // the whole limit (8/s), it would be done in under 5 s.
    assert!(
        took >= Duration::from_secs(8),
        "40 deliveries at 4/s took only {took:?}"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM delivery_attempts WHERE status <> 'succeeded'")
            .await,
        0,
        "waiting for the limit is not a failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_caps_concurrent_deliveries_across_workers() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Delay(300)).await;
    let (api, w) = limited_webhook(&env, &rx, json!({"max_in_flight": 2})).await;
    let id = w["id"].as_str().unwrap().to_owned();
    let _workers = two_workers_counted(&env, &id).await;
    env.publish_many(
        "user.created",
        (0..24).map(|i| json!({"user_id": i, "username": "u"})),
        None,
    )
    .await;
    wait_for("all 24 delivered", LONG, || async { rx.count() == 24 }).await;
    assert!(
        rx.max_concurrent() <= 2,
        "at most 2 at once, saw {}",
        rx.max_concurrent()
    );

    // Lifting the limit (null) lets the workers' prefetch windows decide again.
    let (s, w) = api
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"max_in_flight": null})),
        )
        .await;
    assert_eq!(s, 200, "{w}");
    assert!(w["max_in_flight"].is_null(), "{w}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_down_answers_do_not_spend_the_attempt_budget() {
    // Two attempts in all, were 429 and 503 ordinary failures.
    let env = TestEnv::new(&[
        ("retry.schedule", "1s"),
        ("circuit.failure_threshold", "1000"),
    ])
    .await;
    let rx = Receiver::start(Behaviour::Always(429)).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    let _app = env.start(Roles::ALL).await;
    env.publish("user.created", json!({"user_id": 1, "username": "u"}), None)
        .await;
    wait_for("three slow-down answers", LONG, || async {
        rx.count() >= 3
    })
    .await;
    rx.set_behaviour(Behaviour::Always(503));
    wait_for("two more", LONG, || async { rx.count() >= 5 }).await;
    rx.set_behaviour(Behaviour::Ok);
    wait_for("the delivery to succeed", LONG, || async {
        env.count("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
            .await
            == 1
    })
    .await;
    assert!(
        env.count("SELECT count(*) FROM delivery_attempts").await >= 6,
        "every answer was recorded as an attempt"
    );
    assert_eq!(env.dead_total().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_schedules_of_an_endpoint_and_of_an_event_type_override_the_default() {
    // The default schedule would wait an hour before the second attempt.
    let env = TestEnv::new(&[
        ("retry.schedule", "1h"),
        ("circuit.failure_threshold", "1000"),
    ])
    .await;
    let rx_own = Receiver::start(Behaviour::Always(500)).await;
    let rx_typed = Receiver::start(Behaviour::Always(500)).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let api = Api::new(&base, ADMIN_KEY);
    let (s, w) = api
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": rx_own.url, "events": ["user.created"], "retry_schedule": ["1s", "3s"]})),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    assert_eq!(w["retry_schedule"], json!(["1s", "3s"]));
    let (s, _) = api
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": rx_typed.url, "events": ["job.failed"]})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, t) = api
        .call(
            "PATCH",
            "/api/v1/webhooks/events/job.failed",
            Some(json!({"retry_schedule": ["2s"]})),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["retry_schedule"], json!(["2s"]));
    // The registry reloads on the catalog's NOTIFY.
    tokio::time::sleep(Duration::from_secs(1)).await;

    env.publish("user.created", json!({"user_id": 1, "username": "u"}), None)
        .await;
    env.publish(
        "job.failed",
        json!({"job_id": 1, "job_type": "t", "error_message": "e"}),
        None,
    )
    .await;
    wait_for("both deliveries dead", LONG, || async {
        env.count("SELECT count(*) FROM deliveries WHERE status = 'failed'")
            .await
            == 2
    })
    .await;
    assert_eq!(
        rx_own.count(),
        3,
        "three attempts: the endpoint's two delays"
    );
    assert_eq!(
        rx_typed.count(),
        2,
        "two attempts: the event type's one delay"
    );
    // 3 s is no default tier: it waited in the ladder's 5 s step.
    assert_eq!(env.queue_len("hookfleet.retry.5s").await, 0);
    app.stop().await.unwrap();
    assert_eq!(env.dead_total().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_control_input_is_validated_field_by_field() {
    let env = TestEnv::new(&[]).await;
    let (_app, base) = env.start_api(Roles::NONE).await;
    let api = Api::new(&base, ADMIN_KEY);
    let create = |extra: serde_json::Value| {
        let mut b = json!({"url": "http://127.0.0.1:9/x", "events": ["*"]});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    for (extra, field) in [
        (json!({"rate_limit": 0}), "rate_limit"),
        (json!({"rate_limit": 100001}), "rate_limit"),
        (json!({"max_in_flight": 0}), "max_in_flight"),
        (json!({"retry_schedule": []}), "retry_schedule"),
        (json!({"retry_schedule": ["500ms"]}), "retry_schedule"),
        (json!({"retry_schedule": ["25h"]}), "retry_schedule"),
        (json!({"retry_schedule": ["later"]}), "retry_schedule"),
        (json!({"retry_schedule": vec!["1m"; 30]}), "retry_schedule"),
    ] {
        let (s, e) = api
            .call("POST", "/api/v1/webhooks", Some(create(extra.clone())))
            .await;
        assert_eq!(s, 422, "{extra} → {e}");
        assert_eq!(e["error"]["field"], field, "{extra} → {e}");
    }
    let (s, w) = api
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(create(
                json!({"rate_limit": 50, "max_in_flight": 5, "retry_schedule": vec!["1m"; 29]}),
            )),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    let id = w["id"].as_str().unwrap();
    let (s, w) = api
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"rate_limit": null, "retry_schedule": ["10s"]})),
        )
        .await;
    assert_eq!(s, 200, "{w}");
    assert!(w["rate_limit"].is_null());
    assert_eq!(w["max_in_flight"], 5, "untouched");
    assert_eq!(w["retry_schedule"], json!(["10s"]));
    let (s, e) = api
        .call(
            "PATCH",
            "/api/v1/webhooks/events/user.created",
            Some(json!({"retry_schedule": ["0s"]})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["error"]["field"], "retry_schedule");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_per_tenant_are_limited_even_when_created_at_once() {
    let env = TestEnv::new(&[("api.max_endpoints_per_tenant", "2")]).await;
    let (_app, base) = env.start_api(Roles::NONE).await;
    let admin = Api::new(&base, ADMIN_KEY);
    let mut keys = Vec::new();
    for t in ["acme", "globex"] {
        let (s, _) = admin
            .call("POST", "/api/v1/tenants", Some(json!({"id": t})))
            .await;
        assert_eq!(s, 201);
        let (s, k) = admin
            .call("POST", &format!("/api/v1/tenants/{t}/api-keys"), None)
            .await;
        assert_eq!(s, 201, "{k}");
        keys.push(admin.with_key(k["key"].as_str().unwrap()));
    }
    let body = json!({"url": "http://127.0.0.1:9/x", "events": ["*"]});
    // Five at once for a limit of two: the count and the insert are serialized.
    let tries = (0..5).map(|_| keys[0].call("POST", "/api/v1/webhooks", Some(body.clone())));
    let results = futures::future::join_all(tries).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created, 2, "{results:?}");
    let (s, e) = results.iter().find(|(s, _)| *s != 201).unwrap();
    assert_eq!(*s, 409, "{e}");
    assert_eq!(e["error"]["code"], "limit_reached", "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("tenant `acme`") && msg.contains("api.max_endpoints_per_tenant"),
        "{msg}"
    );
    // Another tenant has its own count.
    let (s, _) = keys[1]
        .call("POST", "/api/v1/webhooks", Some(body.clone()))
        .await;
    assert_eq!(s, 201);
    // The CLI goes through the same check.
    let out = env
        .command(&[
            "endpoint",
            "add",
            "--url",
            "http://127.0.0.1:9/y",
            "--tenant",
            "acme",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("api.max_endpoints_per_tenant"));
    // The queue is declared before the row: those of the refused webhooks
    // are deleted again, so only the three stored have one.
    assert_eq!(
        env.endpoint_queues().len(),
        3,
        "{:?}",
        env.endpoint_queues()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_header_limits_are_configurable() {
    let env = TestEnv::new(&[
        ("api.max_custom_headers", "1"),
        ("api.max_header_value_bytes", "8"),
    ])
    .await;
    let (_app, base) = env.start_api(Roles::NONE).await;
    let api = Api::new(&base, ADMIN_KEY);
    for (headers, says) in [
        (json!({"X-A": "1", "X-B": "2"}), "api.max_custom_headers"),
        (json!({"X-A": "123456789"}), "api.max_header_value_bytes"),
    ] {
        let (s, e) = api
            .call(
                "POST",
                "/api/v1/webhooks",
                Some(json!({"url": "http://127.0.0.1:9/x", "events": ["*"], "headers": headers})),
            )
            .await;
        assert_eq!(s, 422, "{e}");
        assert_eq!(e["error"]["field"], "headers");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(says),
            "{e}"
        );
    }
    let (s, _) = api
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/x", "events": ["*"], "headers": {"X-A": "12345678"}})),
        )
        .await;
    assert_eq!(s, 201);
}
