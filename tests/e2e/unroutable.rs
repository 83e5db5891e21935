//! Deliveries that find no endpoint queue (issue #17): the deliveries
//! exchange's alternate exchange parks them in `hookfleet.unroutable`, and the
//! workers' keepers turn them into dead letters with a reason, so the operator
//! sees them (`GET /api/v1/dead-letters`, `hookfleet dlq`) and can purge them;
//! a replay aimed at a deleted endpoint is refused with a 409 instead of
//! looping back through unroutable.
use hookfleet::Roles;
use hookfleet_broker::headers as h;
use hookfleet_tests::{wait_for, Api, Behaviour, Receiver, TestEnv, ADMIN_KEY};
use lapin::options::{BasicPublishOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use serde_json::json;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);
/// The retry tier the test's delivery waits in: long enough for the endpoint
/// to be deleted first (its deletion waits on nothing slower than the workers
/// dropping their consumers).
const TIER: &str = "30s";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn user(n: i64) -> serde_json::Value {
    json!({"user_id": n, "username": format!("u{n}")})
}

/// Publishes `body` straight to `hookfleet.deliveries`, with a confirm.
async fn publish_delivery(env: &TestEnv, key: &str, body: &[u8], headers: FieldTable) {
    let (conn, ch) = env.producer().await;
    let conf = ch
        .basic_publish(
            "hookfleet.deliveries".into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(headers),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(conf.is_ack());
    let _ = conn.close(200, "bye".into()).await;
}

async fn dead_letters(api: &Api, query: &str) -> Vec<serde_json::Value> {
    let (s, page) = api
        .call("GET", &format!("/api/v1/dead-letters?{query}"), None)
        .await;
    assert_eq!(s, 200, "{page}");
    page["data"].as_array().cloned().unwrap_or_default()
}

/// Waits until a dead letter with `reason` is kept, then returns the one kept.
async fn the_one_kept(api: &Api, what: &str, reason: &str) -> serde_json::Value {
    let query = format!("reason={reason}");
    wait_for(what, LONG, || async {
        !dead_letters(api, &query).await.is_empty()
    })
    .await;
    let kept = dead_letters(api, &query).await;
    assert_eq!(kept.len(), 1, "{kept:#?}");
    kept[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_outlives_its_endpoint_is_a_dead_letter_with_its_reason() {
    let env = TestEnv::new(&[
        ("retry.schedule", TIER),
        ("circuit.failure_threshold", "100000"),
    ])
    .await;
    let rx = Receiver::start(Behaviour::Always(500)).await;
    let (ep, _) = env.add_endpoint(&rx.url, &["user.created"], None).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let admin = Api::new(&base, ADMIN_KEY);
    let mut headers = FieldTable::default();
    h::set_str(&mut headers, h::TRACEPARENT, TRACEPARENT);
    let event_id = env
        .publish_with_headers("user.created", user(1), headers)
        .await;
    let tier = format!("hookfleet.retry.{TIER}");
    wait_for(
        "the first attempt to fail and its retry to wait",
        LONG,
        || async { rx.count() >= 1 && env.queue_len(&tier).await == 1 },
    )
    .await;

    let (s, body) = admin
        .call("DELETE", &format!("/api/v1/webhooks/{}", ep.id), None)
        .await;
    assert_eq!(s, 204, "{body}");
    assert!(
        dead_letters(&admin, "").await.is_empty(),
        "nothing was in the endpoint's queue at its deletion"
    );

    // The retry expires, finds no endpoint queue, is parked in
    // hookfleet.unroutable and kept from there.
    let dl = &the_one_kept(
        &admin,
        "the parked retry to be kept as a dead letter",
        "endpoint_deleted",
    )
    .await;
    assert_eq!(dl["event_id"], event_id.as_str());
    assert_eq!(dl["endpoint_id"], ep.id.as_str());
    assert_eq!(dl["reason"], "endpoint_deleted");
    assert_eq!(dl["attempts"], 1, "one attempt was made before the retry");
    let err = dl["last_error"].as_str().unwrap();
    assert!(
        err.starts_with("no endpoint queue") && err.contains("HTTP 500"),
        "it came through hookfleet.unroutable, after an HTTP 500: {err}"
    );
    // The trace goes on: the same trace id (the span id is the last hop's).
    let tp = dl["traceparent"].as_str().unwrap();
    assert_eq!(tp.split('-').nth(1), TRACEPARENT.split('-').nth(1), "{tp}");
    let delivery_id = dl["delivery_id"].as_str().unwrap().to_owned();
    assert!(delivery_id.starts_with("dlv_"), "{delivery_id}");
    wait_for("hookfleet.unroutable to be empty", LONG, || async {
        env.queue_len("hookfleet.unroutable").await == 0
    })
    .await;
    assert!(
        env.consumers("hookfleet.unroutable").await >= 1,
        "the worker's keeper consumes hookfleet.unroutable"
    );

    // The CLI shows it with its reason.
    let out = env
        .command(&["dlq", "list", "--reason", "endpoint_deleted"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&delivery_id), "{stdout}");
    assert!(stdout.contains("endpoint_deleted"), "{stdout}");
    let out = env
        .command(&["dlq", "list", "--reason", "deleted"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("endpoint_deleted"),
        "a bad --reason lists the good ones"
    );

    // A replay aimed at the deleted endpoint is refused, saying why.
    let (s, body) = admin
        .call(
            "POST",
            "/api/v1/dead-letters/replay",
            Some(json!({"endpoint_id": ep.id})),
        )
        .await;
    assert_eq!(s, 409, "{body}");
    let msg = body.to_string();
    assert!(
        msg.contains("no longer exists") && msg.contains("purge"),
        "{msg}"
    );
    // A wider replay skips it, and it stays kept: no loop through unroutable.
    let (s, job) = admin
        .call(
            "POST",
            "/api/v1/dead-letters/replay",
            Some(json!({"delivery_id": delivery_id})),
        )
        .await;
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let mut done = job;
    for _ in 0..600 {
        let (_, r) = admin
            .call("GET", &format!("/api/v1/dead-letters/replays/{id}"), None)
            .await;
        done = r;
        if done["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["skipped"], 1, "{done}");
    assert_eq!(done["replayed"], 0, "{done}");
    assert_eq!(
        dead_letters(&admin, "reason=endpoint_deleted").await.len(),
        1
    );
    assert_eq!(env.queue_len("hookfleet.unroutable").await, 0);

    // A bad reason names the field.
    let (s, body) = admin
        .call("GET", "/api/v1/dead-letters?reason=nope", None)
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["error"]["field"], "reason", "{body}");

    // Purged by reason.
    let (s, body) = admin
        .call(
            "POST",
            "/api/v1/dead-letters/purge",
            Some(json!({"reason": "endpoint_deleted"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["purged"], 1, "{body}");
    assert!(dead_letters(&admin, "").await.is_empty());
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_message_in_unroutable_is_kept_with_reason_unroutable() {
    const BODY: &[u8] = b"not json \x00 at all";
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let admin = Api::new(&base, ADMIN_KEY);
    // No hookfleet headers, no queue for the key, a body that is not JSON.
    publish_delivery(&env, "ep_nobody", BODY, FieldTable::default()).await;
    let kept = the_one_kept(&admin, "the foreign message to be kept", "unroutable").await;
    assert_eq!(kept["endpoint_id"], "ep_nobody", "the routing key names it");
    assert_eq!(kept["delivery_id"], "");
    let hex: String = BODY.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM dead_letters WHERE body = decode('{hex}', 'hex')"
        ))
        .await,
        1,
        "its body is kept, byte for byte"
    );
    wait_for("hookfleet.unroutable to be empty", LONG, || async {
        env.queue_len("hookfleet.unroutable").await == 0
    })
    .await;
    app.stop().await.unwrap();
}

/// An endpoint whose queue was deleted by hand: its deliveries are parked in
/// `hookfleet.unroutable` and kept as `queue_missing` dead letters, and the
/// delivery is `failed`, not left pending for ever. Once the queue is back, a
/// replay by reason delivers it and the delivery succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_whose_queue_is_gone_is_failed_kept_as_queue_missing_and_replayable() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Always(200)).await;
    let (ep, _) = env.add_endpoint(&rx.url, &["user.created"], None).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let admin = Api::new(&base, ADMIN_KEY);
    let queue = format!("hookfleet.endpoint.{}", ep.id);
    wait_for("the workers to consume the queue", LONG, || async {
        env.consumers(&queue).await >= 1
    })
    .await;
    let (conn, ch) = env.producer().await;
    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();

    let event_id = env.publish("user.created", user(7), None).await;
    let kept = the_one_kept(&admin, "the parked delivery to be kept", "queue_missing").await;
    assert_eq!(kept["event_id"], event_id.as_str());
    assert_eq!(kept["endpoint_id"], ep.id.as_str());
    let delivery_id = kept["delivery_id"].as_str().unwrap().to_owned();
    let (s, d) = admin
        .call(
            "GET",
            &format!("/api/v1/webhooks/{}/deliveries/{delivery_id}", ep.id),
            None,
        )
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["status"], "failed", "not pending for ever: {d}");
    assert_eq!(rx.count(), 0);

    // The queue is back (as a router's declare would make it); the replay
    // delivers the dead letter.
    hookfleet_broker::topology::declare_endpoint(
        &ch,
        env.settings().amqp.queue_type,
        &ep.id,
        false,
    )
    .await
    .unwrap();
    let (s, r) = admin
        .call(
            "POST",
            "/api/v1/dead-letters/replay",
            Some(json!({"reason": "queue_missing"})),
        )
        .await;
    assert!(s == 200 || s == 202, "{s} {r}");
    wait_for("the replayed delivery to arrive", LONG, || async {
        rx.count() >= 1
    })
    .await;
    wait_for("the delivery to succeed", LONG, || async {
        let (_, d) = admin
            .call(
                "GET",
                &format!("/api/v1/webhooks/{}/deliveries/{delivery_id}", ep.id),
                None,
            )
            .await;
        d["status"] == "succeeded"
    })
    .await;
    assert!(dead_letters(&admin, "").await.is_empty());
    let _ = conn.close(200, "bye".into()).await;
    app.stop().await.unwrap();
}
