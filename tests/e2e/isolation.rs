//! Tenant isolation under attack (issue #14): two tenants that use the same
//! event id or `Idempotency-Key` never see, resend or sign each other's events,
//! and nothing one tenant configures stops routing or delivery for another.
use hookfleet::Roles;
use hookfleet_tests::*;
use serde_json::{json, Value};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// Creates `tenant` with a key and a webhook (`body`); returns the tenant's
/// client and the webhook id once the process's registry has the webhook (a
/// worker consumes its queue), so events published next are routed to it.
async fn tenant(env: &TestEnv, admin: &Api, tenant: &str, body: Value) -> (Api, String) {
    let (s, _) = admin
        .call("POST", "/api/v1/tenants", Some(json!({ "id": tenant })))
        .await;
    assert_eq!(s, 201);
    let (s, k) = admin
        .call("POST", &format!("/api/v1/tenants/{tenant}/api-keys"), None)
        .await;
    assert_eq!(s, 201, "{k}");
    let api = admin.with_key(k["key"].as_str().unwrap());
    let (s, w) = api.call("POST", "/api/v1/webhooks", Some(body)).await;
    assert_eq!(s, 201, "{w}");
    let id = w["id"].as_str().unwrap().to_owned();
    let queue = hookfleet_broker::names::endpoint_queue(&id);
    wait_for("the webhook in the registry", LONG, || async {
        env.consumers(&queue).await > 0
    })
    .await;
    (api, id)
}

/// Tenants `acme` and `bad`, each with a key and a webhook for `user.created`
/// (to `url_a` and `url_b`).
async fn acme_and_bad(
    env: &TestEnv,
    admin: &Api,
    url_a: &str,
    url_b: &str,
) -> ((Api, String), (Api, String)) {
    let hook = |url: &str| json!({"url": url, "events": ["user.created"]});
    let a = tenant(env, admin, "acme", hook(url_a)).await;
    let b = tenant(env, admin, "bad", hook(url_b)).await;
    (a, b)
}

async fn ingest(api: &Api, body: Value, idem: Option<&str>) -> String {
    let mut req = api
        .http
        .post(format!("{}/api/v1/events", api.base))
        .bearer_auth(&api.key)
        .json(&body);
    if let Some(k) = idem {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let v: Value = resp.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

/// The `data.username` of every event a receiver got, by `webhook-id`.
fn usernames(rx: &Receiver) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = rx
        .received()
        .iter()
        .map(|r| {
            let j = r.json();
            (
                r.webhook_id(),
                format!(
                    "{}:{}",
                    j["tenant_id"].as_str().unwrap_or("-"),
                    j["data"]["username"].as_str().unwrap_or("-")
                ),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_with_the_same_event_id_never_see_each_others_events() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let admin = Api::new(&base, ADMIN_KEY);
    let (rx_a, rx_b) = (
        Receiver::start(Behaviour::Ok).await,
        Receiver::start(Behaviour::Ok).await,
    );
    let ((a, wa), (b, wb)) = acme_and_bad(&env, &admin, &rx_a.url, &rx_b.url).await;

    // B publishes first, then A with the same id: the classic takeover.
    let ev = |user: &str| json!({"id": "order-1001", "type": "user.created", "data": {"user_id": 1, "username": user}});
    assert_eq!(ingest(&b, ev("forged-by-b"), None).await, "order-1001");
    wait_for("B's delivery", LONG, || async { rx_b.count() == 1 }).await;
    assert_eq!(ingest(&a, ev("alice"), None).await, "order-1001");
    // The same Idempotency-Key in both tenants: two independent events.
    let k = json!({"type": "user.created", "data": {"user_id": 2, "username": "idem-b"}});
    let idem_b = ingest(&b, k, Some("key-7")).await;
    let k = json!({"type": "user.created", "data": {"user_id": 2, "username": "idem-a"}});
    let idem_a = ingest(&a, k, Some("key-7")).await;
    // AMQP producers (trusted with tenant_id) in one router batch: same id.
    for (t, user) in [("bad", "amqp-b"), ("acme", "amqp-a")] {
        let body = json!({"id": "amqp-1", "type": "user.created", "tenant_id": t, "data": {"user_id": 3, "username": user}});
        env.publish_raw("user.created", &serde_json::to_vec(&body).unwrap())
            .await;
    }
    wait_for("3 deliveries in each tenant", LONG, || async {
        rx_a.count() == 3 && rx_b.count() == 3
    })
    .await;
    assert_eq!(usernames(&rx_a), {
        let mut v = vec![
            ("amqp-1".to_owned(), "acme:amqp-a".to_owned()),
            (idem_a.clone(), "acme:idem-a".to_owned()),
            ("order-1001".to_owned(), "acme:alice".to_owned()),
        ];
        v.sort();
        v
    });
    assert_eq!(usernames(&rx_b), {
        let mut v = vec![
            ("amqp-1".to_owned(), "bad:amqp-b".to_owned()),
            (idem_b.clone(), "bad:idem-b".to_owned()),
            ("order-1001".to_owned(), "bad:forged-by-b".to_owned()),
        ];
        v.sort();
        v
    });
    assert_eq!(
        env.count("SELECT count(*) FROM events WHERE id IN ('order-1001', 'amqp-1')")
            .await,
        4,
        "each tenant's events are stored apart"
    );

    // Each tenant's delivery detail and resend carry its own payload only.
    for (api, wh, rx, mine) in [(&a, &wa, &rx_a, "alice"), (&b, &wb, &rx_b, "forged-by-b")] {
        let (s, list) = api
            .call(
                "GET",
                &format!("/api/v1/webhooks/{wh}/deliveries?limit=10"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{list}");
        let d = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["event_id"] == "order-1001")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (s, detail) = api
            .call(
                "GET",
                &format!("/api/v1/webhooks/{wh}/deliveries/{d}"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{detail}");
        assert_eq!(detail["payload"]["data"]["username"], mine, "{detail}");
        let (s, r) = api
            .call(
                "POST",
                &format!("/api/v1/webhooks/{wh}/deliveries/{d}/resend"),
                None,
            )
            .await;
        assert_eq!(s, 202, "{r}");
        wait_for("the resend", LONG, || async { rx.count() == 4 }).await;
        let last = rx.received().last().unwrap().json();
        assert_eq!(last["data"]["username"], mine, "{last}");
        // The other tenant's webhook and delivery ids are not found.
        let other = if std::ptr::eq(api, &a) { &wb } else { &wa };
        let (s, _) = api
            .call(
                "GET",
                &format!("/api/v1/webhooks/{other}/deliveries/{d}"),
                None,
            )
            .await;
        assert_eq!(s, 404);
    }
    app.stop().await.unwrap();
}

/// A channel-level error (here a passive declare of a queue that does not
/// exist) closes one channel; the session's connection must stay up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_error_does_not_end_the_connection() {
    let env = TestEnv::new(&[]).await;
    let conn = hookfleet_broker::connect_url(&env.amqp_url, "test-channel-error")
        .await
        .unwrap();
    // Listen first: lapin hands connection events only to listeners that
    // exist when they happen.
    let waiting = hookfleet_broker::wait_closed(&conn);
    tokio::pin!(waiting);
    tokio::select! {
        _ = &mut waiting => panic!("the connection closed before the test began"),
        _ = tokio::time::sleep(Duration::from_millis(300)) => {}
    }
    let ch = conn.create_channel().await.unwrap();
    let missing = tokio::select! {
        _ = &mut waiting => panic!("wait_closed returned while the channel failed"),
        r = hookfleet_broker::topology::inspect(&ch, "hookfleet.retry.15s") => r,
    };
    assert!(missing.is_err(), "the tier does not exist yet");
    let waited = tokio::time::timeout(Duration::from_secs(3), &mut waiting).await;
    assert!(
        waited.is_err(),
        "wait_closed took a channel error for a lost connection"
    );
    assert!(conn.create_channel().await.is_ok());
    let _ = conn.close(200, "bye".into()).await;
}

/// Every kind of per-tenant configuration at once, from one tenant (and the
/// admin's event type schedule); another tenant's events keep flowing, and no
/// router or worker session is lost meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_one_tenant_configures_stops_another_tenants_events() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let ops = format!("http://{}", app.ops_addr);
    let admin = Api::new(&base, ADMIN_KEY);
    let rx_v = Receiver::start(Behaviour::Ok).await;
    let rx_e = Receiver::start(Behaviour::Always(500)).await;
    let (victim, _) = tenant(
        &env,
        &admin,
        "victim",
        json!({"url": rx_v.url, "events": ["user.created"]}),
    )
    .await;
    let (evil, we) = tenant(
        &env,
        &admin,
        "evil",
        json!({"url": rx_e.url, "events": ["*"], "retry_schedule": ["15s"],
               "rate_limit": 1, "max_in_flight": 1,
               "headers": {"X-Evil": "1"}}),
    )
    .await;
    // The tier a schedule needs exists as soon as the API has answered.
    assert!(env.queue_exists("hookfleet.retry.15s").await);
    let (s, w) = evil
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": rx_e.url, "events": ["user.created"], "ordering": "fifo", "retry_schedule": ["2h", "16h"]})),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    assert!(env.queue_exists("hookfleet.retry.2h").await);
    assert!(env.queue_exists("hookfleet.retry.16h").await);
    let (s, w) = evil
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{we}"),
            Some(json!({"retry_schedule": ["30s", "12h"]})),
        )
        .await;
    assert_eq!(s, 200, "{w}");
    assert!(env.queue_exists("hookfleet.retry.12h").await);
    let (s, t) = admin
        .call(
            "PATCH",
            "/api/v1/webhooks/events/user.created",
            Some(json!({"retry_schedule": ["3s", "4h"]})),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert!(env.queue_exists("hookfleet.retry.4h").await);

    // The routers' depth poller runs every 10 s: give it two rounds while the
    // victim's events flow, and check the sessions stayed up throughout.
    let mut sent = 0;
    for round in 0..12 {
        let body = json!({"type": "user.created", "data": {"user_id": round, "username": "v"}});
        ingest(&victim, body, None).await;
        sent += 1;
        assert_eq!(
            scrape(&ops, "hookfleet_amqp_connected", &["role=\"router\""]).await,
            Some(1.0)
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    wait_for("every victim event", LONG, || async {
        rx_v.count() == sent
    })
    .await;
    for role in ["router", "worker"] {
        assert_eq!(
            scrape(
                &ops,
                "hookfleet_reconnects_total",
                &[&format!("role=\"{role}\"")]
            )
            .await
            .unwrap_or(0.0),
            0.0,
            "the {role} reconnected"
        );
    }
    assert!(reqwest::get(format!("{ops}/readyz"))
        .await
        .unwrap()
        .status()
        .is_success());
    app.stop().await.unwrap();
}

/// Dead letters kept in PostgreSQL: one tenant's slow replay holds nothing of
/// another's; a tenant's list shows no queue-wide figure; replays report their
/// progress and stop when cancelled; `rate` is bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_dead_letters_never_hide_or_hold_anothers() {
    let env = TestEnv::new(&[
        ("retry.schedule", ""),
        ("circuit.failure_threshold", "100000"),
    ])
    .await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let admin = Api::new(&base, ADMIN_KEY);
    let (rx_a, rx_b) = (
        Receiver::start(Behaviour::Always(500)).await,
        Receiver::start(Behaviour::Always(500)).await,
    );
    let ((a, _), (b, _)) = acme_and_bad(&env, &admin, &rx_a.url, &rx_b.url).await;
    for (api, n) in [(&a, 30), (&b, 5)] {
        for i in 0..n {
            let body = json!({"type": "user.created", "data": {"user_id": i, "username": "x"}});
            ingest(api, body, None).await;
        }
    }
    wait_for("35 dead letters kept", LONG, || async {
        env.dead_letters().await == 35
    })
    .await;

    // B starts the slowest replay it may: one send every 10 s (to a receiver
    // that now takes it, so what is replayed is not dead-lettered again).
    rx_b.set_behaviour(Behaviour::Ok);
    let (s, slow) = b
        .call(
            "POST",
            "/api/v1/dead-letters/replay",
            Some(json!({"rate": 0.1})),
        )
        .await;
    assert_eq!(s, 202, "{slow}");
    let slow_id = slow["id"].as_str().unwrap().to_owned();
    // Meanwhile A lists all of its own, and nothing about B's.
    let (s, mine) = a.call("GET", "/api/v1/dead-letters?limit=1000", None).await;
    assert_eq!(s, 200, "{mine}");
    assert_eq!(mine["data"].as_array().unwrap().len(), 30, "{mine}");
    assert!(mine["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["tenant_id"] == "acme"));
    let keys: Vec<&String> = mine.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["data", "next_cursor"],
        "no queue-wide figure: {mine}"
    );
    // A cannot see, follow or cancel B's replay.
    for (m, path) in [
        ("GET", format!("/api/v1/dead-letters/replays/{slow_id}")),
        (
            "POST",
            format!("/api/v1/dead-letters/replays/{slow_id}/cancel"),
        ),
    ] {
        assert_eq!(a.call(m, &path, None).await.0, 404, "{m} {path}");
    }
    let (_, list) = a.call("GET", "/api/v1/dead-letters/replays", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");
    // A's own replay runs to the end while B's is still pacing.
    rx_a.set_behaviour(Behaviour::Ok);
    let (s, rep) = a
        .call("POST", "/api/v1/dead-letters/replay", Some(json!({})))
        .await;
    assert_eq!(s, 202, "{rep}");
    let rep_id = rep["id"].as_str().unwrap().to_owned();
    wait_for("A's replay done", LONG, || async {
        let (_, r) = a
            .call(
                "GET",
                &format!("/api/v1/dead-letters/replays/{rep_id}"),
                None,
            )
            .await;
        r["status"] == "done" && r["replayed"] == 30
    })
    .await;
    wait_for("A's 30 redelivered", LONG, || async { rx_a.count() >= 60 }).await;
    // B's replay reports its progress, then stops when cancelled.
    let (s, r) = b
        .call(
            "GET",
            &format!("/api/v1/dead-letters/replays/{slow_id}"),
            None,
        )
        .await;
    assert_eq!((s, r["status"].as_str()), (200, Some("running")), "{r}");
    assert!(r["replayed"].as_i64().unwrap() <= 2, "paced at 0.1/s: {r}");
    let (s, r) = b
        .call(
            "POST",
            &format!("/api/v1/dead-letters/replays/{slow_id}/cancel"),
            None,
        )
        .await;
    assert_eq!(s, 202, "{r}");
    wait_for("B's replay cancelled", Duration::from_secs(15), || async {
        let (_, r) = b
            .call(
                "GET",
                &format!("/api/v1/dead-letters/replays/{slow_id}"),
                None,
            )
            .await;
        r["status"] == "cancelled"
    })
    .await;
    let (_, r) = b
        .call(
            "GET",
            &format!("/api/v1/dead-letters/replays/{slow_id}"),
            None,
        )
        .await;
    let left = 5 - r["replayed"].as_i64().unwrap();
    assert_eq!(
        env.count("SELECT count(*) FROM dead_letters WHERE tenant_id = 'bad'")
            .await,
        left,
        "what was not replayed is still kept: {r}"
    );
    // Rates out of bounds, tiny or huge or not numbers, are a 422 on `rate`.
    for rate in [json!(1e-20), json!(0.0), json!(-1), json!(1e300)] {
        let (s, e) = b
            .call(
                "POST",
                "/api/v1/dead-letters/replay",
                Some(json!({"rate": rate})),
            )
            .await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (422, Some("rate")),
            "{rate}: {e}"
        );
    }
    // A tenant's purge never reaches another's.
    let (s, p) = b
        .call(
            "POST",
            "/api/v1/dead-letters/purge",
            Some(json!({"all": true})),
        )
        .await;
    assert_eq!((s, p["purged"].as_i64()), (200, Some(left)), "{p}");
    assert_eq!(env.dead_letters().await, 0, "A's were replayed, B's purged");
    let (s, _) = b
        .call(
            "POST",
            "/api/v1/dead-letters/purge",
            Some(json!({"tenant_id": "acme", "all": true})),
        )
        .await;
    assert_eq!(s, 403);
    app.stop().await.unwrap();
}
