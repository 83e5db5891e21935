use hookfleet::Roles;
use hookfleet_tests::{wait_for, Behaviour, Receiver, TestEnv};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_loses_nothing() {
    let env = TestEnv::new(&[("delivery.timeout", "60s"), ("amqp.worker_prefetch", "8")]).await;
    let rx = Receiver::start(Behaviour::Hang).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    let router = env.start(Roles::ROUTER).await;
    let mut worker = env.spawn_process("worker", &[]);

    let mut ids = HashSet::new();
    for i in 0..20 {
        ids.insert(
            env.publish("user.created", json!({"user_id": i, "username": "u"}), None)
                .await,
        );
    }
    // The worker process is mid-delivery: requests sent, none answered, none acked.
    wait_for("the worker to be mid-delivery", LONG, || async {
        rx.count() >= 8
    })
    .await;
    worker.kill().unwrap(); // SIGKILL
    worker.wait().unwrap();

    rx.set_behaviour(Behaviour::Ok);
    let replacement = env.start(Roles::WORKER).await;
    wait_for("every event delivered after the kill", LONG, || async {
        env.count("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
            .await
            == 20
    })
    .await;
    let answered: HashSet<String> = rx.received().iter().map(|r| r.webhook_id()).collect();
    assert!(ids.is_subset(&answered));
    replacement.stop().await.unwrap();
    router.stop().await.unwrap();
}

/// Restarts the RabbitMQ application. Runs alone (`make test` runs it after the
/// rest): other tests would see the broker go away too.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_is_survived() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    let app = env.start(Roles::ALL).await;
    let first = env
        .publish("user.created", json!({"user_id": 1, "username": "u"}), None)
        .await;
    wait_for("delivery before the restart", LONG, || async {
        rx.count() == 1
    })
    .await;

    {
        let _restart = hookfleet_tests::stop_broker_app();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Same processes, no restart: they reconnect by themselves.
    let mut ids = vec![first];
    for i in 0..10 {
        ids.push(
            env.publish("user.created", json!({"user_id": i, "username": "u"}), None)
                .await,
        );
    }
    wait_for("every event after the restart", LONG, || async {
        let got: HashSet<String> = rx.received().iter().map(|r| r.webhook_id()).collect();
        ids.iter().all(|id| got.contains(id))
    })
    .await;
    let reconnects = hookfleet_core::metrics::RECONNECTS
        .with_label_values(&["router"])
        .get()
        + hookfleet_core::metrics::RECONNECTS
            .with_label_values(&["worker"])
            .get();
    assert!(
        reconnects >= 2,
        "router and worker reconnected ({reconnects})"
    );
    app.stop().await.unwrap();
}
