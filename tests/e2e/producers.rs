use hookfleet::Roles;
use hookfleet_broker::headers as h;
use hookfleet_emit::{Emitter, EmitterConfig, Event, Id};
use hookfleet_tests::{wait_for, Behaviour, Receiver, TestEnv};
use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(90);

fn spill_dir(env: &TestEnv, tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("{}-{tag}", env.name));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn emitter(url: &str, dir: &std::path::Path) -> Emitter {
    Emitter::connect(EmitterConfig {
        amqp_url: url.to_owned(),
        spill_dir: dir.to_owned(),
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_helpers_pass_the_catalog_and_are_delivered() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["*"], Some("acme")).await;
    let app = env.start(Roles::ALL).await;
    let dir = spill_dir(&env, "typed");
    let e = emitter(&env.amqp_url, &dir);
    // The calls of the SoundHash guide.
    e.emit_match_found(
        42,
        "dQw4w9WgXcQ",
        "9bZkp7q19f0",
        0.95,
        Some(30.5),
        Some(45.2),
        Some("acme"),
    );
    e.emit_video_processed(
        7,
        Some("https://example.com/v/7"),
        Some("Demo"),
        Some(212.4),
        Some(1337),
        None,
        Some("acme"),
    );
    e.emit_job_failed(
        99,
        "fingerprint",
        Some(Id::from("dQw4w9WgXcQ")),
        "download timed out",
        Some(3),
        Some("acme"),
    );
    e.emit_user_created(1001, "ada", Some("ada@example.com"), Some("acme"));
    e.emit_subscription_updated(5, 1001, "pro", "active", Some("free"), Some("acme"));
    e.emit_api_limit_reached(
        1001,
        "api_calls",
        9000,
        10000,
        Some("2026-12-28T00:00:00Z"),
        Some("acme"),
    );
    let flushed = tokio::task::spawn_blocking({
        let e = e.clone();
        move || e.flush(Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert!(flushed);
    wait_for("all six delivered", LONG, || async { rx.count() == 6 }).await;
    let types: HashSet<String> = rx
        .received()
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types.len(), 6);
    let m = rx
        .received()
        .into_iter()
        .find(|r| r.json()["type"] == "match.found")
        .unwrap()
        .json();
    assert_eq!(
        (
            m["data"]["confidence"].as_f64(),
            m["data"]["segment_end"].as_f64(),
            m["tenant_id"].as_str()
        ),
        (Some(0.95), Some(45.2), Some("acme"))
    );
    assert_eq!(env.queue_len("hookfleet.events.invalid").await, 0);
    assert_eq!(e.metrics().confirmed.get(), 6);
    assert_eq!(e.metrics().dropped.get(), 0);
    e.shutdown(Duration::from_secs(5));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_that_breaks_the_schema_is_quarantined_with_a_reason() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    let app = env.start(Roles::ALL).await;
    env.publish(
        "match.found",
        json!({"match_id": 1, "query_video_id": "q", "matched_video_id": "m"}),
        None,
    )
    .await;
    env.publish("match.found", json!({"match_id": 1, "query_video_id": "q", "matched_video_id": "m", "confidence": "high"}), None).await;
    env.publish(
        "api_limit.reached",
        json!({"user_id": 1, "limit_type": "x", "current_usage": 1.5, "limit_value": 2}),
        None,
    )
    .await;
    wait_for("three quarantined", LONG, || async {
        env.queue_len("hookfleet.events.invalid").await == 3
    })
    .await;
    app.stop().await.unwrap();
    let reasons: Vec<String> = env
        .drain("hookfleet.events.invalid")
        .await
        .iter()
        .map(|(hd, _)| h::get_str(Some(hd), h::INVALID_REASON).unwrap().to_owned())
        .collect();
    assert!(
        reasons
            .iter()
            .all(|r| r.contains("does not match the schema")),
        "{reasons:?}"
    );
    assert!(reasons[0].contains("confidence"), "{}", reasons[0]);
    assert!(reasons[1].contains("/confidence"), "{}", reasons[1]);
    assert!(reasons[2].contains("/current_usage"), "{}", reasons[2]);
    assert_eq!(rx.count(), 0);
}

/// The producer process that `spilled_events_survive_a_killed_producer` starts and
/// kills with SIGKILL: emits `HF_CHILD_EVENTS` events with the broker out of
/// reach, says so once they are all spilled, then waits to be killed.
#[test]
#[ignore = "a child process of spilled_events_survive_a_killed_producer"]
fn producer_child_process() {
    use std::io::Write as _;
    let dir = std::env::var("HF_CHILD_SPILL_DIR").expect("HF_CHILD_SPILL_DIR");
    let n: u64 = std::env::var("HF_CHILD_EVENTS")
        .expect("HF_CHILD_EVENTS")
        .parse()
        .unwrap();
    let e = emitter(
        "amqp://guest:guest@127.0.0.1:1/%2f",
        std::path::Path::new(&dir),
    );
    for i in 0..n {
        e.emit_user_created(i as i64, "u", None, None);
    }
    while e.metrics().spilled.get() < n {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("SPILLED {n}");
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spilled_events_survive_a_killed_producer() {
    use std::io::BufRead as _;
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    let app = env.start(Roles::ALL).await;
    let dir = spill_dir(&env, "killed");
    // First run of the producer, a real process: the broker is out of reach, so
    // everything spills; then it is killed with SIGKILL (no flush, no shutdown).
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "producers::producer_child_process",
            "--ignored",
            "--nocapture",
        ])
        .env("HF_CHILD_SPILL_DIR", &dir)
        .env("HF_CHILD_EVENTS", "500")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let spilled = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.starts_with("SPILLED 500"))
    });
    let spilled = tokio::time::timeout(LONG, spilled).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        matches!(spilled, Ok(Ok(true))),
        "the producer process spilled its 500 events"
    );
    assert!(std::fs::read_dir(&dir).unwrap().count() >= 1);

    // Second run, broker reachable: the spill is replayed. The kill released the
    // spill directory's lock at once.
    let second = emitter(&env.amqp_url, &dir);
    wait_for("the 500 spilled events delivered", LONG, || async {
        rx.count() >= 500
    })
    .await;
    let ids: HashSet<String> = rx.received().iter().map(|r| r.webhook_id()).collect();
    assert_eq!(ids.len(), 500);
    wait_for("the spill replayed and removed", LONG, || async {
        second.metrics().replayed.get() == 500
    })
    .await;
    let spill_files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".jsonl")
        })
        .count();
    assert_eq!(spill_files, 0, "replayed spill files are removed");
    assert_eq!(
        second.metrics().spill_bytes.get(),
        0,
        "the spill gauge is back to 0"
    );
    app.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Restarts RabbitMQ: runs alone, after the rest (the name holds `broker_restart`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_broker_restart_loses_nothing() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    let app = env.start(Roles::ALL).await;
    let dir = spill_dir(&env, "outage");
    let e = emitter(&env.amqp_url, &dir);
    e.emit_user_created(0, "warm", None, None);
    wait_for("the first delivery", LONG, || async { rx.count() == 1 }).await;
    {
        let _restart = hookfleet_tests::stop_broker_app();
        for i in 1..=1000 {
            e.emit_user_created(i, "u", None, None);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let e2 = e.clone();
    assert!(
        tokio::task::spawn_blocking(move || e2.flush(Duration::from_secs(120)))
            .await
            .unwrap(),
        "all confirmed after the restart"
    );
    wait_for("1001 deliveries", LONG, || async { rx.count() >= 1001 }).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in rx.received() {
        *per_id.entry(r.webhook_id()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 1001);
    assert!(
        per_id.values().all(|n| *n == 1),
        "no event twice at the receiver"
    );
    assert_eq!(e.metrics().dropped.get(), 0);
    app.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_relay_replicas_publish_each_committed_row_once() {
    let env = TestEnv::new(&[]).await;
    // A probe queue sees everything that reaches the events exchange.
    let conn = hookfleet_broker::connect_url(&env.amqp_url, "probe")
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    hookfleet_broker::topology::declare(&ch, env.settings().amqp.queue_type, &[])
        .await
        .unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("outbox-probe".into(), durable, FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        "outbox-probe".into(),
        "hookfleet.events".into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    // The producer's own database and transactions.
    let (mut client, c) = tokio_postgres::connect(&env.db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(c);
    hookfleet_emit::outbox::create_table(&client).await.unwrap();
    let mut committed = HashSet::new();
    for batch in 0..10 {
        let tx = client.transaction().await.unwrap();
        for i in 0..100 {
            let ev = Event::new(
                "user.created",
                json!({"user_id": batch * 100 + i, "username": "u"}),
            );
            committed.insert(ev.id.clone());
            hookfleet_emit::outbox::emit_in_tx(&tx, &ev).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    let rolled_back = {
        let tx = client.transaction().await.unwrap();
        let ev = Event::new("user.created", json!({"user_id": -1, "username": "never"}));
        hookfleet_emit::outbox::emit_in_tx(&tx, &ev).await.unwrap();
        tx.rollback().await.unwrap();
        ev.id
    };

    let stop = tokio_util::sync::CancellationToken::new();
    let relays: Vec<_> = (0..3)
        .map(|_| {
            let (db, amqp, stop) = (
                env.db_url.clone(),
                env.settings().amqp.target.clone(),
                stop.clone(),
            );
            tokio::spawn(async move { hookfleet_emit::outbox::relay(&db, &amqp, 50, stop).await })
        })
        .collect::<Vec<_>>();
    wait_for("1000 rows published", LONG, || async {
        env.queue_len("outbox-probe").await >= 1000
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    for r in relays {
        r.await.unwrap().unwrap();
    }
    let got = env.drain("outbox-probe").await;
    let mut ids = HashMap::new();
    for (_, body) in &got {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        *ids.entry(v["id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(got.len(), 1000, "each committed row exactly once");
    assert_eq!(ids.keys().cloned().collect::<HashSet<_>>(), committed);
    assert!(!ids.contains_key(&rolled_back));
    let unsent: i64 = client
        .query_one(
            "SELECT count(*) FROM hookfleet_outbox WHERE sent_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unsent, 0);
    let _ = conn.close(200, "bye".into()).await;
}

/// The Python publisher of docs/PRODUCERS.md (pika, publisher confirms) against the
/// real broker: all six SoundHash events are delivered to the tenant's endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_pika_example_publishes_the_six_events() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["*"], Some("acme")).await;
    let app = env.start(Roles::ALL).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/producers/soundhash_publisher.py"
    );
    let run = || {
        Command::new("python3")
            .arg(script)
            .arg("acme")
            .env("HOOKFLEET_AMQP_URL", &env.amqp_url)
            .output()
    };
    let mut out = run().expect("python3 runs the example");
    if String::from_utf8_lossy(&out.stderr).contains("No module named 'pika'") {
        // Installed by .ci/run; installed here for a developer machine that lacks it.
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "-q", "pika"])
            .status();
        out = run().unwrap();
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sent.len(), 6);
    wait_for("the six events delivered", LONG, || async {
        rx.count() == 6
    })
    .await;
    let got: HashSet<String> = rx.received().iter().map(|r| r.webhook_id()).collect();
    for s in &sent {
        assert!(got.contains(s["id"].as_str().unwrap()), "{s} delivered");
    }
    assert!(rx
        .received()
        .iter()
        .all(|r| r.json()["tenant_id"] == "acme"));
    assert_eq!(
        env.queue_len("hookfleet.events.invalid").await,
        0,
        "every event passes its catalog schema"
    );
    app.stop().await.unwrap();
}

/// The guide promises the emit calls work from sync code: no runtime on this thread.
#[test]
fn emit_works_from_sync_code_outside_any_runtime() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = rt.block_on(TestEnv::new(&[]));
    rt.block_on(async {
        let conn = hookfleet_broker::connect_url(&env.amqp_url, "probe")
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        hookfleet_broker::topology::declare(&ch, env.settings().amqp.queue_type, &[])
            .await
            .unwrap();
        let _ = conn.close(200, "bye".into()).await;
    });
    let dir = spill_dir(&env, "sync");
    assert!(
        tokio::runtime::Handle::try_current().is_err(),
        "this thread has no runtime"
    );
    let e = emitter(&env.amqp_url, &dir);
    for i in 0..10 {
        e.emit_user_created(i, "sync", None, None);
    }
    assert!(e.flush(Duration::from_secs(30)), "flush from sync code");
    assert!(e.shutdown(Duration::from_secs(5)));
    let n = rt.block_on(env.queue_len("hookfleet.router"));
    assert_eq!(n, 10, "ten events reached the router queue");
    let _ = std::fs::remove_dir_all(&dir);
}
