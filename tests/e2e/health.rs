//! Endpoint health: the circuit breaker (shared state in Postgres), 410 Gone and
//! auto-disable.
use hookfleet::Roles;
use hookfleet_tests::{wait_for, Api, Behaviour, Receiver, TestEnv, ADMIN_KEY};
use serde_json::json;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

async fn webhook(api: &Api, id: &str) -> serde_json::Value {
    let (s, w) = api
        .call("GET", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(s, 200, "{w}");
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_opens_holds_deliveries_without_spending_attempts_and_a_probe_closes_it() {
    let env = TestEnv::new(&[
        ("circuit.failure_threshold", "3"),
        ("circuit.cooldown", "2s"),
        ("circuit.max_cooldown", "4s"),
        // Without the breaker, every delivery would be dead within ~6 s.
        ("retry.schedule", "1s,1s,1s,1s,1s"),
    ])
    .await;
    let rx = Receiver::start(Behaviour::Always(500)).await;
    let (ep, _) = env.add_endpoint(&rx.url, &["*"], None).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let api = Api::new(&base, ADMIN_KEY);
    assert_eq!(webhook(&api, &ep.id).await["circuit"], "closed");
    env.publish_many(
        "user.created",
        (0..20).map(|i| json!({"user_id": i, "username": "u"})),
        None,
    )
    .await;
    wait_for("the circuit to open", LONG, || async {
        webhook(&api, &ep.id).await["circuit"] != "closed"
    })
    .await;
    let w = webhook(&api, &ep.id).await;
    assert!(w["next_probe_at"].is_string(), "{w}");
    // While open, the messages wait in the endpoint's queue: 20 deliveries with
    // six attempts each would all be dead by now without the breaker.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        env.count("SELECT count(*) FROM deliveries WHERE status = 'failed'")
            .await,
        0,
        "no delivery burnt its attempts while the circuit was open"
    );
    let attempts = env.count("SELECT count(*) FROM delivery_attempts").await;
    assert!(attempts < 20 * 6, "attempts were held back ({attempts})");
    assert!(
        env.queue_len(&format!("hookfleet.endpoint.{}", ep.id))
            .await
            > 0,
        "deliveries wait in the queue"
    );

    // The endpoint recovers: the next probe closes the circuit, everything flows.
    rx.set_behaviour(Behaviour::Ok);
    wait_for("the circuit to close", LONG, || async {
        webhook(&api, &ep.id).await["circuit"] == "closed"
    })
    .await;
    wait_for("all 20 delivered", LONG, || async {
        env.count("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
            .await
            == 20
    })
    .await;
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM endpoint_health WHERE endpoint_id = '{}' AND consecutive_failures > 0",
            ep.id
        ))
        .await,
        0,
        "the failure streak is cleared"
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_410_disables_the_endpoint_and_dead_letters_at_once() {
    let env = TestEnv::new(&[("retry.schedule", "1s,1s,1s")]).await;
    let rx = Receiver::start(Behaviour::Always(410)).await;
    let (ep, _) = env.add_endpoint(&rx.url, &["*"], None).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let api = Api::new(&base, ADMIN_KEY);
    env.publish("user.created", json!({"user_id": 1, "username": "u"}), None)
        .await;
    wait_for("the endpoint disabled", LONG, || async {
        webhook(&api, &ep.id).await["is_active"] == false
    })
    .await;
    let w = webhook(&api, &ep.id).await;
    assert!(
        w["disabled_reason"].as_str().unwrap().contains("410"),
        "{w}"
    );
    wait_for("the delivery dead-lettered", LONG, || async {
        env.dead_total().await == 1
    })
    .await;
    assert_eq!(rx.count(), 1, "no retry after 410 Gone");
    assert_eq!(
        env.count("SELECT count(*) FROM deliveries WHERE status = 'failed'")
            .await,
        1
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_for_too_long_is_disabled() {
    let env = TestEnv::new(&[
        ("circuit.auto_disable_after", "2s"),
        ("circuit.failure_threshold", "1000"),
        ("retry.schedule", "1s,1s,1s,1s,1s,1s"),
    ])
    .await;
    let rx = Receiver::start(Behaviour::Always(500)).await;
    let (ep, _) = env.add_endpoint(&rx.url, &["*"], None).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let api = Api::new(&base, ADMIN_KEY);
    env.publish("user.created", json!({"user_id": 1, "username": "u"}), None)
        .await;
    wait_for("the endpoint auto-disabled", LONG, || async {
        webhook(&api, &ep.id).await["is_active"] == false
    })
    .await;
    let w = webhook(&api, &ep.id).await;
    assert!(
        w["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("auto_disable_after"),
        "{w}"
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_enabling_an_endpoint_clears_its_health() {
    let env = TestEnv::new(&[]).await;
    let (ep, _) = env
        .add_endpoint("http://127.0.0.1:9/hook", &["*"], None)
        .await;
    let c = env.pool.get().await.unwrap();
    c.execute(
        "INSERT INTO endpoint_health (endpoint_id, consecutive_failures, circuit, failing_since, next_probe_at)
         VALUES ($1, 50, 'open', now() - interval '6 days', now() + interval '1 hour')",
        &[&ep.id],
    )
    .await
    .unwrap();
    hookfleet_store::endpoints::set_active(&env.pool, &ep.id, false, Some("test"))
        .await
        .unwrap();
    assert_eq!(
        env.count("SELECT count(*) FROM endpoint_health").await,
        1,
        "disabling keeps it"
    );
    hookfleet_store::endpoints::set_active(&env.pool, &ep.id, true, None)
        .await
        .unwrap();
    assert_eq!(
        env.count("SELECT count(*) FROM endpoint_health").await,
        0,
        "enabling clears it"
    );
    let e = hookfleet_store::endpoints::get(&env.pool, &ep.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.circuit, hookfleet_core::Circuit::Closed);
    assert_eq!(e.consecutive_failures, 0);
}

/// The tenant hears about its endpoints: a 410, a delivery that runs out of
/// attempts and a circuit that opens reach its webhooks subscribed to the
/// operational types, never the endpoint they are about, and an operational
/// event's own failed delivery raises no `delivery.exhausted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operational_events_reach_the_tenant_but_never_the_endpoint_concerned() {
    let env = TestEnv::new(&[
        ("retry.schedule", "1s"),
        ("circuit.failure_threshold", "4"),
        ("circuit.cooldown", "1h"),
    ])
    .await;
    let ops_types = [
        "endpoint.disabled",
        "endpoint.circuit_opened",
        "delivery.exhausted",
    ];
    let ops = Receiver::start(Behaviour::Ok).await;
    let failing = Receiver::start(Behaviour::Always(500)).await;
    let gone = Receiver::start(Behaviour::Always(410)).await;
    env.add_endpoint(&ops.url, &ops_types, Some("acme")).await;
    // It takes the operational events too, and fails everything.
    let mut bad_types = ops_types.to_vec();
    bad_types.push("user.created");
    let (bad, _) = env
        .add_endpoint(&failing.url, &bad_types, Some("acme"))
        .await;
    let (dead, _) = env
        .add_endpoint(&gone.url, &["job.failed"], Some("acme"))
        .await;
    // Another tenant's webhook hears nothing of acme's.
    let other = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&other.url, &["*"], Some("beta")).await;
    let app = env.start(Roles::ALL).await;
    let of_type = |t: &str| -> Vec<serde_json::Value> {
        ops.received()
            .iter()
            .map(|r| r.json())
            .filter(|j| j["type"] == t)
            .collect()
    };

    // 410: `dead` is disabled; `bad` fails the news twice (2 failures).
    env.publish(
        "job.failed",
        json!({"job_id": 1, "job_type": "t", "error_message": "e"}),
        Some("acme"),
    )
    .await;
    wait_for("endpoint.disabled", LONG, || async {
        !of_type("endpoint.disabled").is_empty()
    })
    .await;
    let disabled = &of_type("endpoint.disabled")[0];
    assert_eq!(disabled["tenant_id"], "acme");
    assert_eq!(disabled["data"]["endpoint_id"], dead.id.as_str());
    assert!(disabled["data"]["reason"].as_str().unwrap().contains("410"));
    wait_for("its delivery to `bad` to fail for good", LONG, || async {
        env.count(&format!(
            "SELECT count(*) FROM deliveries WHERE endpoint_id = '{}' AND status = 'failed'",
            bad.id
        ))
        .await
            == 1
    })
    .await;

    // Two more failures: the delivery runs out and the circuit opens.
    env.publish(
        "user.created",
        json!({"user_id": 1, "username": "u"}),
        Some("acme"),
    )
    .await;
    wait_for(
        "delivery.exhausted and endpoint.circuit_opened",
        LONG,
        || async {
            !of_type("delivery.exhausted").is_empty()
                && !of_type("endpoint.circuit_opened").is_empty()
        },
    )
    .await;
    let exhausted = &of_type("delivery.exhausted")[0];
    assert_eq!(exhausted["data"]["endpoint_id"], bad.id.as_str());
    assert_eq!(exhausted["data"]["event_type"], "user.created");
    assert_eq!(exhausted["data"]["attempts"], 2);
    let opened = &of_type("endpoint.circuit_opened")[0];
    assert_eq!(opened["data"]["endpoint_id"], bad.id.as_str());
    assert_eq!(opened["data"]["consecutive_failures"], 4);

    // Give a loop time to show, then count.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for r in failing.received() {
        let j = r.json();
        assert_ne!(
            j["data"]["endpoint_id"],
            bad.id.as_str(),
            "an event about `bad` reached it: {j}"
        );
    }
    let count = |t: &str| format!("SELECT count(*) FROM events WHERE type = '{t}'");
    assert_eq!(
        env.count(&count("delivery.exhausted")).await,
        1,
        "the endpoint.disabled delivery that failed raised none"
    );
    assert_eq!(env.count(&count("endpoint.circuit_opened")).await, 1);
    assert_eq!(env.count(&count("endpoint.disabled")).await, 1);
    assert_eq!(other.count(), 0);
    app.stop().await.unwrap();
}
