//! Ordered (FIFO) endpoints: deliveries arrive strictly in publish order across
//! router and worker replicas and a worker's death, a failing head holds the
//! ones after it until it succeeds or is dead-lettered, and `ordering` is fixed
//! at creation.
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hookfleet::Roles;
use hookfleet_tests::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);

/// What the ordered receiver saw: every request's `seq` and status, in arrival order.
#[derive(Default)]
struct Seen {
    requests: Mutex<Vec<(i64, u16)>>,
    tries: Mutex<HashMap<i64, u32>>,
}

/// A receiver that answers by the event's `data.user_id` (its sequence number):
/// `always_500` always fails, `fail_twice` fails its first two requests,
/// `slow_down` answers 503 once; the rest succeed.
struct Script {
    always_500: i64,
    fail_twice: i64,
    slow_down: i64,
}

async fn ordered_receiver(script: Script) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let script = Arc::new(script);
    let app =
        axum::Router::new()
            .fallback(
                |State((seen, script)): State<(Arc<Seen>, Arc<Script>)>,
                 body: axum::body::Bytes| async move {
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let seq = v["data"]["user_id"].as_i64().unwrap();
                    let n = {
                        let mut t = seen.tries.lock().unwrap();
                        let n = t.entry(seq).or_default();
                        *n += 1;
                        *n
                    };
                    let status = if seq == script.always_500 || (seq == script.fail_twice && n <= 2)
                    {
                        500
                    } else if seq == script.slow_down && n == 1 {
                        503
                    } else {
                        200
                    };
                    seen.requests.lock().unwrap().push((seq, status));
                    StatusCode::from_u16(status).unwrap().into_response()
                },
            )
            .with_state((seen.clone(), script));
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_endpoint_gets_publish_order_across_replicas_failures_and_a_killed_worker() {
    // Small router batches over several consumers and two routers: the
    // parallel path reorders freely, the ordered one must not.
    let env = TestEnv::new(&[("amqp.router_consumers", "3"), ("router.batch_size", "7")]).await;
    let (_, base) = env.start_api(Roles::ROUTER).await;
    let _router2 = env.start(Roles::ROUTER).await;
    let api = Api::new(&base, ADMIN_KEY);
    let (url, seen) = ordered_receiver(Script {
        always_500: 10,
        fail_twice: 20,
        slow_down: 30,
    })
    .await;
    let (s, w) = api
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(
                json!({"url": url, "events": ["user.created"], "ordering": "fifo",
                        "retry_schedule": ["1s", "1s"]}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    assert_eq!(w["ordering"], "fifo");
    let fifo_id = w["id"].as_str().unwrap().to_owned();
    // An unordered webhook on the same events is served as before.
    let parallel = Receiver::start(Behaviour::Ok).await;
    let (s, p) = api
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": parallel.url, "events": ["user.created"]})),
        )
        .await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["ordering"], "parallel");

    // Worker processes, so that killing one is a real SIGKILL: its connection
    // drops and the broker hands the queue to another consumer.
    let (mut worker_a, _) = env.spawn_with_ops(&["worker"], &[]);
    let _worker_b = env.spawn_with_ops(&["worker"], &[]);
    const N: i64 = 120;
    env.publish_many(
        "user.created",
        (0..N).map(|i| json!({"user_id": i, "username": "u"})),
        None,
    )
    .await;

    // Kill one worker part way; the other takes over the queue (single active
    // consumer) and a third joins.
    wait_for("40 ordered deliveries", LONG, || async {
        seen.requests.lock().unwrap().len() >= 40
    })
    .await;
    worker_a.child.kill().unwrap();
    let _ = worker_a.child.wait();
    let _worker_c = env.start(Roles::WORKER).await;

    let succeeded = || {
        let r = seen.requests.lock().unwrap();
        let mut ok: Vec<i64> = r
            .iter()
            .filter(|(_, s)| *s == 200)
            .map(|(q, _)| *q)
            .collect();
        ok.dedup();
        ok
    };
    wait_for("every ordered delivery but the dead one", LONG, || async {
        succeeded().len() as i64 >= N - 1
    })
    .await;
    let requests = seen.requests.lock().unwrap().clone();

    // First successes are exactly 0..N without 10, in order.
    let mut firsts = Vec::new();
    for (q, s) in &requests {
        if *s == 200 && !firsts.contains(q) {
            firsts.push(*q);
        }
    }
    let expected: Vec<i64> = (0..N).filter(|q| *q != 10).collect();
    assert_eq!(firsts, expected, "deliveries out of publish order");
    // Nothing after a head was sent while the head was unsettled: the sequence
    // of requests never goes back (a duplicate may repeat the last one).
    for pair in requests.windows(2) {
        assert!(
            pair[1].0 >= pair[0].0,
            "seq {} was sent after seq {}: {requests:?}",
            pair[1].0,
            pair[0].0
        );
    }
    // 10 failed 3 times (its schedule allows 3 attempts) and was dead-lettered
    // before 11 went out; 20 took 3 requests; 30's 503 cost no attempt.
    let tries = |q: i64| requests.iter().filter(|(s, _)| *s == q).count();
    assert_eq!(tries(10), 3, "{requests:?}");
    assert!(tries(20) >= 3);
    assert!(tries(30) >= 2);
    wait_for("the exhausted head dead-lettered", LONG, || async {
        env.dead_total().await == 1
    })
    .await;
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM deliveries WHERE endpoint_id = '{fifo_id}' AND status = 'failed'"
        ))
        .await,
        1
    );
    let a30: i64 = env
        .count(&format!(
            "SELECT max(d.attempt_count)::bigint FROM deliveries d JOIN events e ON e.id = d.event_id
              WHERE d.endpoint_id = '{fifo_id}' AND (e.payload->'data'->>'user_id')::int = 20"
        ))
        .await;
    assert_eq!(a30, 3, "every in-place attempt is recorded");
    wait_for("every parallel delivery", LONG, || async {
        parallel.count() as i64 >= N
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_is_validated_fixed_at_creation_and_binds_only_what_fifo_endpoints_take() {
    let env = TestEnv::new(&[]).await;
    let (_, base) = env.start_api(Roles::ROUTER).await;
    let _worker = env.start(Roles::WORKER).await;
    let api = Api::new(&base, ADMIN_KEY);
    let rx = Receiver::start(Behaviour::Ok).await;

    let (s, e) = api
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": rx.url, "events": ["*"], "ordering": "sorted"})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["error"]["field"], "ordering");

    let (s, w) = api
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": rx.url, "events": ["user.created"], "ordering": "fifo"})),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    let id = w["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/webhooks/{id}");
    let (s, e) = api
        .call("PATCH", &path, Some(json!({"ordering": "parallel"})))
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["error"]["field"], "ordering");
    let (s, _) = api
        .call("PATCH", &path, Some(json!({"ordering": "fifo"})))
        .await;
    assert_eq!(s, 200);

    // The queue was declared with a single active consumer: declaring it
    // without the argument is refused as inequivalent.
    let conn = hookfleet_broker::connect_url(&env.amqp_url, "test")
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let plain = ch
        .queue_declare(
            format!("hookfleet.endpoint.{id}").as_str().into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await;
    assert!(
        plain.is_err(),
        "the FIFO queue lacks x-single-active-consumer"
    );
    let _ = conn.close(200, "bye".into()).await;

    // The ordered router's queue is bound to the FIFO endpoint's types only:
    // before answering (the API), and as they change (API and routers).
    let bound = || async {
        let c = env.pool.get().await.unwrap();
        let rows = c
            .query("SELECT routing_key FROM ordered_bindings ORDER BY 1", &[])
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    assert_eq!(bound().await, vec!["user.created"]);
    let (s, _) = api
        .call(
            "PATCH",
            &path,
            Some(json!({"events": ["job.failed", "user.created"]})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(bound().await, vec!["job.failed", "user.created"]);
    env.publish("video.processed", json!({"video_id": "v"}), None)
        .await;
    env.publish(
        "job.failed",
        json!({"job_id": "j", "job_type": "t", "error_message": "e"}),
        None,
    )
    .await;
    wait_for("the FIFO endpoint's event delivered", LONG, || async {
        rx.count() == 1
    })
    .await;
    assert_eq!(
        env.queue_len("hookfleet.router.ordered").await,
        0,
        "the ordered router consumed what it was given"
    );
    let (s, _) = api.call("DELETE", &path, None).await;
    assert_eq!(s, 204);
    wait_for(
        "the routers unbind the deleted endpoint's types",
        LONG,
        || async { bound().await.is_empty() },
    )
    .await;
}
