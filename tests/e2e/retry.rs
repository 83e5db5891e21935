use hookfleet::Roles;
use hookfleet_tests::{wait_for, Behaviour, Receiver, TestEnv};
use serde_json::json;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_twice_then_succeeds_in_three_recorded_attempts() {
    let env = TestEnv::new(&[("retry.schedule", "1s,1s,1s")]).await;
    let rx = Receiver::start(Behaviour::FailFirst(2)).await;
    let (_, secret) = env.add_endpoint(&rx.url, &["*"], None).await;
    let app = env.start(Roles::ALL).await;
    let id = env
        .publish("video.processed", json!({"video_id": 7}), None)
        .await;

    wait_for("the delivery to succeed", LONG, || async {
        env.count("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
            .await
            == 1
    })
    .await;
    let got = rx.received();
    assert_eq!(got.len(), 3);
    for r in &got {
        assert_eq!(r.webhook_id(), id, "webhook-id is the same across retries");
        r.verify(&secret).unwrap();
    }
    let c = env.pool.get().await.unwrap();
    let rows = c
        .query("SELECT attempt, status, response_status_code, error FROM delivery_attempts ORDER BY attempt", &[])
        .await
        .unwrap();
    let attempts: Vec<(i32, String, Option<i32>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        attempts,
        vec![
            (1, "failed".into(), Some(500)),
            (2, "failed".into(), Some(500)),
            (3, "succeeded".into(), Some(200))
        ]
    );
    assert_eq!(
        rows[0].get::<_, Option<String>>(3).as_deref(),
        Some("HTTP 500")
    );
    assert_eq!(
        env.count("SELECT attempt_count::bigint FROM deliveries")
            .await,
        3
    );
    app.stop().await.unwrap();
    assert_eq!(env.dead_total().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_failing_endpoint_ends_in_dead_letter_queue() {
    let env = TestEnv::new(&[("retry.schedule", "1s,1s")]).await;
    let rx = Receiver::start(Behaviour::Always(500)).await;
    let (ep, _) = env.add_endpoint(&rx.url, &["*"], Some("acme")).await;
    let app = env.start(Roles::ALL).await;
    let id = env
        .publish(
            "job.failed",
            json!({"job_id": 1, "job_type": "t", "error_message": "e"}),
            Some("acme"),
        )
        .await;

    wait_for("the delivery to be marked failed", LONG, || async {
        env.count("SELECT count(*) FROM deliveries WHERE status = 'failed'")
            .await
            == 1
    })
    .await;
    assert_eq!(rx.count(), 3, "3 attempts with a schedule of two delays");
    assert_eq!(
        env.count("SELECT count(*) FROM delivery_attempts WHERE response_status_code = 500")
            .await,
        3
    );
    // The worker's keeper moves the dead letter from hookfleet.dead into
    // PostgreSQL, with what its headers said.
    wait_for("the dead letter kept", LONG, || async {
        env.dead_letters().await == 1
    })
    .await;
    app.stop().await.unwrap();
    assert_eq!(env.queue_len("hookfleet.dead").await, 0);
    let dl = hookfleet_store::dead_letters::show(
        &env.pool,
        hookfleet_store::dead_letters::Scope::Tenant("acme"),
        &env.count_text("SELECT delivery_id FROM dead_letters").await,
    )
    .await
    .unwrap()
    .expect("the dead letter, in its tenant's scope");
    assert_eq!(dl.endpoint_id, ep.id);
    assert_eq!(dl.tenant_id.as_deref(), Some("acme"));
    assert_eq!(dl.event_id, id);
    assert_eq!(dl.attempts, 3);
    assert_eq!(dl.last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(dl.payload.unwrap()["id"], id.as_str());
    assert!(
        hookfleet_store::dead_letters::show(
            &env.pool,
            hookfleet_store::dead_letters::Scope::Tenant("other"),
            &dl.delivery_id
        )
        .await
        .unwrap()
        .is_none(),
        "another tenant's scope does not reach it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_refused_targets_are_recorded_failures() {
    // No allow-list: loopback is refused by the address policy.
    let env = TestEnv::new(&[("retry.schedule", ""), ("delivery.allow_networks", "")]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    env.add_endpoint("http://localhost:9/hook", &["*"], None)
        .await;
    let app = env.start(Roles::ALL).await;
    env.publish("user.created", json!({"user_id": 1, "username": "u"}), None)
        .await;
    wait_for("both deliveries to fail", LONG, || async {
        env.count("SELECT count(*) FROM deliveries WHERE status = 'failed'")
            .await
            == 2
    })
    .await;
    assert_eq!(rx.count(), 0, "a refused address is never contacted");
    assert_eq!(
        env.count(
            "SELECT count(*) FROM delivery_attempts WHERE error LIKE '%refused%allow_networks%'"
        )
        .await,
        2
    );
    // Tenants see no internal address in the error.
    assert_eq!(
        env.count("SELECT count(*) FROM delivery_attempts WHERE error LIKE '%127.0.0.1%'")
            .await,
        0
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_queues_retry_and_dead_letter_too() {
    let env = TestEnv::new(&[("amqp.queue_type", "quorum"), ("retry.schedule", "1s")]).await;
    let flaky = Receiver::start(Behaviour::FailFirst(1)).await;
    let broken = Receiver::start(Behaviour::Always(500)).await;
    env.add_endpoint(&flaky.url, &["*"], Some("a")).await;
    env.add_endpoint(&broken.url, &["*"], Some("b")).await;
    let app = env.start(Roles::ALL).await;
    env.publish(
        "user.created",
        json!({"user_id": 1, "username": "u"}),
        Some("a"),
    )
    .await;
    env.publish(
        "user.created",
        json!({"user_id": 2, "username": "v"}),
        Some("b"),
    )
    .await;
    wait_for(
        "one success after a retry and one dead letter",
        LONG,
        || async {
            env.count(
                "SELECT count(*) FROM deliveries WHERE status = 'succeeded' AND attempt_count = 2",
            )
            .await
                == 1
                && env
                    .count("SELECT count(*) FROM deliveries WHERE status = 'failed'")
                    .await
                    == 1
        },
    )
    .await;
    app.stop().await.unwrap();
    assert_eq!(env.dead_total().await, 1);
}
