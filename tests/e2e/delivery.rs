use hookfleet::Roles;
use hookfleet_tests::{wait_for, Behaviour, Receiver, TestEnv};
use serde_json::json;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_amqp_publish_reaches_receiver_signed() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let (ep, secret) = env.add_endpoint(&rx.url, &["*"], None).await;
    let app = env.start(Roles::ALL).await;

    // A producer written against the wire contract: lapin, no hookfleet code.
    let body = br#"{"id":"evt_plain_1","type":"match.found","timestamp":"2026-11-28T12:00:00Z","data":{"match_id":7,"query_video_id":"q","matched_video_id":"m","confidence":0.95}}"#;
    env.publish_raw("match.found", body).await;
    wait_for("the receiver to get the event", LONG, || async {
        rx.count() >= 1
    })
    .await;

    let got = &rx.received()[0];
    got.verify(&secret)
        .expect("standardwebhooks accepts the signature");
    assert_eq!(got.webhook_id(), "evt_plain_1");
    assert_eq!(got.headers["content-type"], "application/json");
    let ts: i64 = got.headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((time::OffsetDateTime::now_utc().unix_timestamp() - ts).abs() < 300);
    let j = got.json();
    assert_eq!(j["id"], "evt_plain_1");
    assert_eq!(j["type"], "match.found");
    assert_eq!(j["timestamp"], "2026-11-28T12:00:00Z");
    assert!(j["tenant_id"].is_null());
    assert_eq!(j["data"]["confidence"], 0.95);
    // The wrong secret does not verify.
    assert!(got
        .verify(hookfleet_core::Secret::generate().expose())
        .is_err());

    // Every attempt is recorded; the delivery is marked.
    wait_for("the delivery to be marked succeeded", LONG, || async {
        env.count("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
            .await
            == 1
    })
    .await;
    let c = env.pool.get().await.unwrap();
    let row = c
        .query_one(
            "SELECT a.attempt, a.status, a.response_status_code, d.endpoint_id, d.attempt_count
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    assert_eq!(row.get::<_, String>(1), "succeeded");
    assert_eq!(row.get::<_, Option<i32>>(2), Some(200));
    assert_eq!(row.get::<_, String>(3), ep.id);
    assert_eq!(row.get::<_, i32>(4), 1);
    assert_eq!(
        env.count("SELECT count(*) FROM events WHERE id = 'evt_plain_1'")
            .await,
        1
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_event_id_creates_one_delivery() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    let app = env.start(Roles::ALL).await;
    let body = br#"{"id":"evt_dup","type":"user.created","data":{"user_id":1,"username":"ada"}}"#;
    env.publish_raw("user.created", body).await;
    env.publish_raw("user.created", body).await;
    let marker = env
        .publish(
            "user.created",
            json!({"user_id": 2, "username": "bob"}),
            None,
        )
        .await;
    wait_for("the marker event", LONG, || async {
        rx.received().iter().any(|r| r.webhook_id() == marker)
    })
    .await;
    assert_eq!(
        env.count("SELECT count(*) FROM deliveries WHERE event_id = 'evt_dup'")
            .await,
        1
    );
    assert_eq!(
        rx.received()
            .iter()
            .filter(|r| r.webhook_id() == "evt_dup")
            .count(),
        1
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_endpoint_does_not_hold_up_others() {
    // The stuck endpoint's requests must outlast the test's waits (2 × LONG):
    // a timeout inside them fails the four held requests and lets four more in.
    // (A CI run on a loaded machine took 45 s with a 30 s timeout, and saw 8.)
    let env = TestEnv::new(&[("delivery.timeout", "300s"), ("amqp.worker_prefetch", "4")]).await;
    let stuck = Receiver::start(Behaviour::Hang).await;
    let healthy = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&stuck.url, &["*"], Some("slow")).await;
    env.add_endpoint(&healthy.url, &["*"], Some("fast")).await;
    let app = env.start(Roles::ALL).await;
    for i in 0..40 {
        env.publish(
            "job.failed",
            json!({"job_id": i, "job_type": "x", "error_message": "e"}),
            Some("slow"),
        )
        .await;
    }
    wait_for("the stuck endpoint to hold deliveries", LONG, || async {
        stuck.count() >= 4
    })
    .await;
    for i in 0..40 {
        env.publish(
            "job.failed",
            json!({"job_id": i, "job_type": "x", "error_message": "e"}),
            Some("fast"),
        )
        .await;
    }
    wait_for(
        "all 40 deliveries to the healthy endpoint",
        LONG,
        || async { healthy.count() >= 40 },
    )
    .await;
    // The stuck one has only its prefetch window in flight; the rest wait in its queue.
    assert!(
        stuck.count() <= 4,
        "stuck endpoint got {} requests",
        stuck.count()
    );
    app.token.cancel();
}
