//! Workers share the endpoint queues (issue #16, docs/ARCHITECTURE.md §21):
//! each endpoint's queue is consumed by `worker.consumers_per_endpoint`
//! workers whatever the number of replicas, and a killed worker's endpoints
//! are taken over by the others. Real `hookfleet worker` processes.
use hookfleet::Roles;
use hookfleet_broker::names;
use hookfleet_tests::*;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

async fn ready(base: &str) -> bool {
    reqwest::get(format!("{base}/readyz"))
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// The sum of `hookfleet_worker_consumed_queues` over `ops`.
async fn consumed(ops: &[String]) -> f64 {
    let mut total = 0.0;
    for o in ops {
        total += scrape(o, "hookfleet_worker_consumed_queues", &[])
            .await
            .unwrap_or(0.0);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_created_while_three_workers_run_has_exactly_two_consumers() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let workers: Vec<_> = (0..3)
        .map(|_| env.spawn_with_ops(&["worker"], &[]))
        .collect();
    let ops: Vec<String> = workers.iter().map(|(_, o)| o.clone()).collect();
    for o in &ops {
        wait_for("worker ready", LONG, || ready(o)).await;
    }
    // Each sees the three members before the endpoints come.
    for o in &ops {
        wait_for("three members", LONG, || async {
            scrape(o, "hookfleet_worker_members", &[]).await == Some(3.0)
        })
        .await;
    }
    let mut queues = Vec::new();
    for _ in 0..12 {
        let (ep, _) = env.add_endpoint(&rx.url, &["user.created"], None).await;
        queues.push(names::endpoint_queue(&ep.id));
    }
    for q in &queues {
        wait_for("two consumers on the queue", LONG, || async {
            env.consumers(q).await == 2
        })
        .await;
    }
    wait_for("24 consumers in all", LONG, || async {
        consumed(&ops).await == 24.0
    })
    .await;
    // And it stays so: no third worker joins in later (the periodic resync,
    // heartbeats) and no worker holds more than its share.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for q in &queues {
        assert_eq!(env.consumers(q).await, 2, "{q}");
    }
    assert_eq!(consumed(&ops).await, 24.0);
    // Deliveries still reach the receiver through whichever worker holds them.
    env.publish("user.created", json!({"user_id": 1, "username": "u"}), None)
        .await;
    let router = env.start(Roles::ROUTER).await;
    wait_for("12 deliveries", LONG, || async { rx.count() >= 12 }).await;
    router.stop().await.unwrap();
    for (p, _) in &workers {
        sigterm(p);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_endpoints_are_taken_over_and_nothing_is_lost() {
    // One consumer per endpoint, so a killed worker's endpoints have none
    // until another worker takes them. `member_timeout` longer than the test
    // waits: the killed worker must be seen gone through its closed database
    // connection (V17), not by its silence.
    let env = TestEnv::new(&[
        ("worker.consumers_per_endpoint", "1"),
        ("worker.heartbeat", "500ms"),
        ("worker.member_timeout", "300s"),
        ("amqp.worker_prefetch", "4"),
    ])
    .await;
    let rx = Receiver::start(Behaviour::Delay(50)).await;
    let mut queues = Vec::new();
    for _ in 0..16 {
        let (ep, _) = env.add_endpoint(&rx.url, &["user.created"], None).await;
        queues.push(names::endpoint_queue(&ep.id));
    }
    let router = env.start(Roles::ROUTER).await;
    let mut a = env.spawn_with_ops(&["worker"], &[]);
    let b = env.spawn_with_ops(&["worker"], &[]);
    let ops = vec![a.1.clone(), b.1.clone()];
    wait_for("16 queues consumed once each", LONG, || async {
        consumed(&ops).await == 16.0
    })
    .await;
    let a_share = scrape(&a.1, "hookfleet_worker_consumed_queues", &[])
        .await
        .unwrap_or(0.0);
    assert!(
        a_share > 0.0 && a_share < 16.0,
        "both take a share: {a_share}"
    );
    // Events under way while the worker dies.
    let ids: HashSet<String> = env
        .publish_many(
            "user.created",
            (0..100).map(|i| json!({"user_id": i, "username": "u"})),
            None,
        )
        .await
        .into_iter()
        .collect();
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    // Its backend gone, it is gone after 1.5 heartbeats; the survivor then
    // consumes all 16.
    let killed = std::time::Instant::now();
    wait_for("the survivor takes every queue", LONG, || async {
        scrape(&b.1, "hookfleet_worker_consumed_queues", &[]).await == Some(16.0)
    })
    .await;
    for q in &queues {
        assert_eq!(env.consumers(q).await, 1, "{q}");
    }
    eprintln!("taken over {:?} after the kill", killed.elapsed());
    // Every delivery (16 endpoints × 100 events) succeeds: nothing lost or stuck.
    wait_for("1600 delivered", LONG, || async {
        env.count("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
            .await
            == 1600
    })
    .await;
    // The webhook id is the event's: each event reached all 16 endpoints.
    assert!(rx.count() >= 1600, "{} requests", rx.count());
    let got: HashSet<String> = rx.received().iter().map(|r| r.webhook_id()).collect();
    assert_eq!(got, ids, "every event arrived");
    let mut b = b;
    sigterm(&b.0);
    assert!(wait_exit(&mut b.0, LONG).await.success());
    router.stop().await.unwrap();
}

/// A starting worker does not declare the queues of its share one by one
/// (they exist: the API declared each when its webhook was created); one that
/// is missing anyway makes the first session fail to consume it, and the next
/// session declares every queue it consumes. Nothing routed after that is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_declares_again_an_endpoint_queue_deleted_while_it_was_stopped() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let (gone, _) = env.add_endpoint(&rx.url, &["user.created"], None).await;
    let (kept, _) = env.add_endpoint(&rx.url, &["user.created"], None).await;
    let q = names::endpoint_queue(&gone.id);
    assert!(env.queue_exists(&q).await, "the create path declared it");
    env.delete_queue(&q).await;
    assert!(!env.queue_exists(&q).await);
    let (worker, ops) = env.spawn_with_ops(&["worker"], &[]);
    wait_for(
        "the deleted queue declared and consumed again",
        LONG,
        || async { env.consumers(&q).await == 1 },
    )
    .await;
    wait_for("both endpoint queues consumed", LONG, || async {
        consumed(std::slice::from_ref(&ops)).await == 2.0
    })
    .await;
    assert_eq!(env.consumers(&names::endpoint_queue(&kept.id)).await, 1);
    let router = env.start(Roles::ROUTER).await;
    env.publish("user.created", json!({"user_id": 1, "username": "u"}), None)
        .await;
    wait_for("a delivery to each endpoint", LONG, || async {
        rx.count() >= 2
    })
    .await;
    assert_eq!(env.queue_len("hookfleet.unroutable").await, 0);
    router.stop().await.unwrap();
    sigterm(&worker);
}
