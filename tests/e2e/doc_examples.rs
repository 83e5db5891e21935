//! The Rust examples of docs/PRODUCERS.md, run as they are printed there (the
//! doc check in `receivers.rs` makes sure the printed text is in this file),
//! against this test's own broker and database; every event must be delivered.
use hookfleet::Roles;
use hookfleet_tests::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_md_sdk_setup() -> anyhow::Result<()> {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["*"], Some("acme")).await;
    env.add_endpoint(&rx.url, &["job.failed"], None).await;
    let app = env.start(Roles::ALL).await;
    let amqp_url = env.amqp_url.clone();
    let dir = std::env::temp_dir().join(format!("{}-spill", env.name));
    let spill_dir = dir.clone();
    let registry = prometheus::Registry::new();

    // docs/PRODUCERS.md §3, "A fuller set-up":
    use hookfleet_emit::{Emitter, EmitterConfig, Event, Id};
    use serde_json::json;
    use std::time::Duration;

    // Fails only if spill_dir cannot be created.
    let emitter = Emitter::connect(EmitterConfig {
        // e.g. "amqp://guest:guest@rabbitmq:5672/%2f"
        amqp_url: amqp_url.clone(),
        // Events held in memory before they spill (default 32,768).
        buffer: 65_536,
        // e.g. "/var/lib/myservice/hookfleet-spill": it must survive restarts.
        spill_dir: spill_dir.clone(),
        // Events per burst of confirms.
        batch: 2000,
        // The spill directory's bound (default 1 GiB): past it, events are dropped.
        max_spill_bytes: 1 << 30,
        // For amqps:// with a private CA or a client certificate, as amqp.tls.*:
        // AmqpTls::from_files("ca.pem", "client.pem", "client.key", "")?
        amqp_tls: hookfleet_emit::AmqpTls::default(),
    })?;
    // Your service's prometheus::Registry.
    emitter.metrics().register(&registry)?;

    // The SoundHash guide's calls, one per catalog type. The last argument is the tenant.
    emitter.emit_user_created(1001, "ada", Some("ada@example.com"), Some("acme"));
    emitter.emit_job_failed(
        99,
        "fingerprint",
        Some(Id::from("dQw4w9WgXcQ")),
        "download timed out",
        Some(3),
        None,
    );
    // Any catalog type, with its data as JSON.
    emitter.emit_data(
        "video.processed",
        json!({"video_id": "dQw4w9WgXcQ", "duration": 212.0}),
        Some("acme"),
    );
    // Full control, for example an id derived from your own data, so that a retry is a duplicate.
    let mut event = Event::new(
        "match.found",
        json!({"match_id": 42, "query_video_id": "q", "matched_video_id": "m", "confidence": 0.9}),
    )
    .tenant(Some("acme"));
    event.id = "match-42".into();
    emitter.emit(event);

    // At exit: waits (bounded) until everything is confirmed.
    emitter.shutdown(Duration::from_secs(10));
    // (end of the example)

    wait_for("the four events delivered", LONG, || async {
        rx.count() == 4
    })
    .await;
    let types: std::collections::HashSet<String> = rx
        .received()
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types.len(), 4, "{types:?}");
    assert!(rx.received().iter().any(|r| r.json()["id"] == "match-42"));
    assert!(registry
        .gather()
        .iter()
        .any(|f| f.name() == "hookfleet_emit_confirmed_total"));
    app.stop().await?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_md_transactional_outbox() -> anyhow::Result<()> {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["user.created"], Some("acme"))
        .await;
    let app = env.start(Roles::ALL).await;
    // The producer's own database: this test's, with a users table.
    let db_url = env.db_url.clone();
    {
        let (client, connection) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client
            .batch_execute("CREATE TABLE users (id bigint PRIMARY KEY, username text)")
            .await?;
    }

    // docs/PRODUCERS.md §4:
    use hookfleet_emit::{outbox, Event};
    use serde_json::json;

    let (mut client, connection) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    outbox::create_table(&client).await?; // once at start-up, or put outbox::CREATE_TABLE in your migrations

    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO users (id, username) VALUES ($1, $2)",
        &[&1001_i64, &"ada"],
    )
    .await?;
    let event = Event::new("user.created", json!({"user_id": 1001, "username": "ada"}))
        .tenant(Some("acme"));
    outbox::emit_in_tx(&tx, &event).await?;
    tx.commit().await?; // the user row and the event, or neither
                        // (end of the example)

    // `hookfleet outbox-relay`, embedded.
    let relay_stop = tokio_util::sync::CancellationToken::new();
    let (stop, amqp) = (relay_stop.clone(), env.settings().amqp.target.clone());
    let relay =
        tokio::spawn(async move { hookfleet_emit::outbox::relay(&db_url, &amqp, 100, stop).await });
    wait_for("the outbox event delivered", LONG, || async {
        rx.count() == 1
    })
    .await;
    assert_eq!(rx.received()[0].json()["id"], event.id.as_str());
    relay_stop.cancel();
    let _ = relay.await;
    app.stop().await?;
    Ok(())
}
