use futures::StreamExt as _;
use hookfleet::Roles;
use hookfleet_broker::headers as h;
use hookfleet_tests::{wait_for, Api, Behaviour, Receiver, TestEnv, ADMIN_KEY};
use serde_json::json;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn user(n: i64) -> serde_json::Value {
    json!({"user_id": n, "username": format!("u{n}")})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_created_while_running_is_served() {
    let env = TestEnv::new(&[]).await;
    let app = env.start(Roles::ALL).await;
    let ops = format!("http://{}/readyz", app.ops_addr);
    wait_for("readiness", LONG, || async {
        probe(&ops).await == Some(200)
    })
    .await;

    // Created after start: routed to and consumed without a restart.
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["user.created"], None).await;
    wait_for("the new endpoint to be served", LONG, || async {
        env.publish("user.created", user(1), None).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        rx.count() >= 1
    })
    .await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_endpoint_keeps_its_queued_deliveries_until_resumed() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let (ep, _) = env.add_endpoint(&rx.url, &["*"], None).await;
    let queue = hookfleet_broker::names::endpoint_queue(&ep.id);
    // Route three deliveries while no worker runs, then pause the endpoint.
    let router = env.start(Roles::ROUTER).await;
    for i in 0..3 {
        env.publish("user.created", user(i), None).await;
    }
    wait_for("3 deliveries queued", LONG, || async {
        env.queue_len(&queue).await == 3
    })
    .await;
    hookfleet_store::endpoints::set_active(&env.pool, &ep.id, false, Some("test"))
        .await
        .unwrap();

    // A worker starts: the paused endpoint's queue is not consumed, nothing fails.
    let worker = env.start(Roles::WORKER).await;
    let ready = format!("http://{}/readyz", worker.ops_addr);
    wait_for("worker readiness", LONG, || async {
        probe(&ready).await == Some(200)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(env.queue_len(&queue).await, 3);
    assert_eq!(rx.count(), 0);
    assert_eq!(env.count("SELECT count(*) FROM delivery_attempts").await, 0);

    // Resumed: the waiting deliveries go out, without restarting anything.
    hookfleet_store::endpoints::set_active(&env.pool, &ep.id, true, None)
        .await
        .unwrap();
    wait_for("the waiting deliveries after resume", LONG, || async {
        rx.count() == 3
    })
    .await;
    wait_for("all three recorded", LONG, || async {
        env.count("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
            .await
            == 3
    })
    .await;

    // Paused while consuming: the consumer is cancelled, later deliveries wait.
    hookfleet_store::endpoints::set_active(&env.pool, &ep.id, false, Some("test"))
        .await
        .unwrap();
    wait_for("the worker to stop consuming", LONG, || async {
        hookfleet_core::metrics::CONSUMED_QUEUES.get() == 0
            || consumer_count(&env, &queue).await == 0
    })
    .await;
    worker.stop().await.unwrap();
    router.stop().await.unwrap();
}

async fn consumer_count(env: &TestEnv, queue: &str) -> u32 {
    let conn = hookfleet_broker::connect_url(&env.amqp_url, "test")
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let opts = lapin::options::QueueDeclareOptions {
        passive: true,
        durable: true,
        ..Default::default()
    };
    let n = ch
        .queue_declare(queue.into(), opts, lapin::types::FieldTable::default())
        .await
        .map(|q| q.consumer_count())
        .unwrap_or(0);
    let _ = conn.close(200, "bye".into()).await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_endpoint_moves_its_queue_to_dead_letters() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let (ep, _) = env.add_endpoint(&rx.url, &["*"], None).await;
    // Only the router runs: deliveries pile up in the endpoint queue.
    let app = env.start(Roles::ROUTER).await;
    for i in 0..5 {
        env.publish("user.created", user(i), None).await;
    }
    let queue = hookfleet_broker::names::endpoint_queue(&ep.id);
    wait_for("5 deliveries queued", LONG, || async {
        env.queue_len(&queue).await == 5
    })
    .await;
    let moved = hookfleet::admin::delete_endpoint(&env.settings(), &env.pool, &ep.id)
        .await
        .unwrap();
    assert_eq!(moved, 5);
    let dead = env.drain("hookfleet.dead").await;
    assert_eq!(dead.len(), 5);
    assert!(dead
        .iter()
        .all(|(hd, _)| h::get_str(Some(hd), h::LAST_ERROR) == Some("endpoint deleted")));
    assert!(dead
        .iter()
        .all(|(hd, _)| h::get_str(Some(hd), h::DEAD_REASON) == Some("endpoint_deleted")));
    assert_eq!(
        env.count("SELECT count(*) FROM deliveries WHERE status = 'dead'")
            .await,
        5
    );
    assert_eq!(env.count("SELECT count(*) FROM endpoints").await, 0);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_endpoint_input_is_refused() {
    let env = TestEnv::new(&[]).await;
    let s = env.settings();
    let cases = [
        ("ftp://example.com/x", vec!["*"], "url"),
        ("https://u:p@example.com/x", vec!["*"], "url"),
        ("not a url", vec!["*"], "url"),
        ("https://example.com/x", vec![], "events"),
        ("https://example.com/x", vec!["bad type!"], "events"),
    ];
    for (url, events, field) in cases {
        let input = hookfleet::admin::EndpointInput {
            url: url.into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            is_active: true,
            ..Default::default()
        };
        let err = hookfleet::admin::create_endpoint(&s, &env.pool, input)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(field), "{url} {events:?}: {err}");
    }
    assert_eq!(env.count("SELECT count(*) FROM endpoints").await, 0);
}

async fn probe(url: &str) -> Option<u16> {
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()?
        .to_owned();
    let path = format!("/{}", url.trim_start_matches("http://").split_once('/')?.1);
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

/// `hookfleet endpoint rotate-secret`: the new secret signs at once, the old one
/// keeps signing for the grace period, and a bad grace names the flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_rotates_a_secret_with_a_grace_period() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let (ep, old) = env.add_endpoint(&rx.url, &["*"], Some("acme")).await;
    let out = env
        .command(&["endpoint", "rotate-secret", &ep.id, "--grace", "8d"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--grace"));
    let out = env
        .command(&["endpoint", "rotate-secret", &ep.id, "--grace", "1h"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let new = j["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let app = env.start(Roles::ALL).await;
    env.publish(
        "user.created",
        json!({"user_id": 1, "username": "u"}),
        Some("acme"),
    )
    .await;
    wait_for("the delivery", LONG, || async { rx.count() == 1 }).await;
    rx.received()[0].verify(&new).unwrap();
    rx.received()[0].verify(&old).unwrap();
    app.stop().await.unwrap();
}

/// `hookfleet endpoint add` takes a secret of one's own from `--secret-file` or
/// `HOOKFLEET_SECRET` (out of `ps` and the shell history), and stores it sealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_adds_an_endpoint_with_a_secret_from_a_file_or_the_environment() {
    let env = TestEnv::new(&[]).await;
    let add = |url: &str, extra: &[&str], secret_env: Option<&str>| {
        let mut c = env.command(&[&["endpoint", "add", "--url", url][..], extra].concat());
        if let Some(s) = secret_env {
            c.env("HOOKFLEET_SECRET", s);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        j["secret"].as_str().unwrap().to_owned()
    };
    let from_file = hookfleet_core::Secret::generate();
    let path = std::env::temp_dir().join(format!("{}-secret", ulid::Ulid::new()));
    std::fs::write(&path, format!("{}\n", from_file.expose())).unwrap();
    let got = add(
        "http://127.0.0.1:9/a",
        &["--secret-file", path.to_str().unwrap()],
        None,
    );
    assert_eq!(got, from_file.expose());
    let from_env = hookfleet_core::Secret::generate();
    let got = add("http://127.0.0.1:9/b", &[], Some(from_env.expose()));
    assert_eq!(got, from_env.expose());
    let _ = std::fs::remove_file(path);
    let stored = env
        .count(&format!(
            "SELECT count(*) FROM endpoints WHERE secrets::text LIKE '%{}%'",
            from_env.expose()
        ))
        .await;
    assert_eq!(stored, 0, "the secret is stored sealed");
}

/// The API declares each webhook's queue on one of 8 channels, and replaces a
/// channel after `DECLARES_PER_CHANNEL` declares (lapin remembers every queue
/// declared on a channel until it closes: issue #16). Webhooks created from
/// 16 clients across those replacements are all created, each with its queue:
/// none is refused by a channel being retired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_created_across_declare_channel_replacements_all_get_their_queue() {
    let env = TestEnv::new(&[("api.max_endpoints_per_tenant", "10000")]).await;
    let (app, base) = env.start_api(Roles::NONE).await;
    let api = Api::new(&base, ADMIN_KEY);
    let n = 8 * hookfleet_broker::topology::DECLARES_PER_CHANNEL + 40;
    let answers: Vec<(u16, serde_json::Value)> = futures::stream::iter(0..n)
        .map(|i| {
            let api = &api;
            async move {
                let body =
                    json!({"url": format!("http://127.0.0.1:9/h{i}"), "events": ["user.created"]});
                api.call("POST", "/api/v1/webhooks", Some(body)).await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s != 201).collect();
    assert!(
        refused.is_empty(),
        "{} refused, first: {:?}",
        refused.len(),
        refused.first()
    );
    assert_eq!(env.endpoint_queues().len(), n);
    assert_eq!(env.count("SELECT count(*) FROM endpoints").await, n as i64);
    app.stop().await.unwrap();
}
