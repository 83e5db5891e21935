//! Retention: old deliveries, attempts and events go; recent and pending ones stay.
use hookfleet_tests::TestEnv;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_old_history_in_batches_and_keeps_what_is_owed() {
    let env = TestEnv::new(&[]).await;
    let (ep, _) = env
        .add_endpoint("http://127.0.0.1:9/hook", &["*"], None)
        .await;
    let c = env.pool.get().await.unwrap();
    let day_ms: u64 = 86_400_000;
    let now_ms = hookfleet_core::ids::now_millis() as u64;
    // 7 old succeeded deliveries (40 days), 1 old pending one, 3 recent ones.
    let mut rows = Vec::new();
    for i in 0..7u64 {
        rows.push((now_ms - 40 * day_ms + i, "succeeded", 40));
    }
    rows.push((now_ms - 40 * day_ms + 100, "pending", 40));
    for i in 0..3u64 {
        rows.push((now_ms - day_ms + i, "failed", 1));
    }
    for (n, (ms, status, age_days)) in rows.iter().enumerate() {
        let did = format!("dlv_{}", ulid::Ulid::from_parts(*ms, n as u128));
        let eid = format!("evt_{n}");
        c.execute(
            "INSERT INTO events (id, type, payload, received_at)
             VALUES ($1, 'user.created', '{}', now() - make_interval(days => $2))",
            &[&eid, age_days],
        )
        .await
        .unwrap();
        c.execute(
            "INSERT INTO deliveries (id, event_id, endpoint_id, event_type, status, created_at)
             VALUES ($1, $2, $3, 'user.created', $4, now() - make_interval(days => $5))",
            &[&did, &eid, &ep.id, status, age_days],
        )
        .await
        .unwrap();
        c.execute(
            "INSERT INTO delivery_attempts (delivery_id, attempt, status, latency_ms, attempted_at)
             VALUES ($1, 1, 'failed', 5, now() - make_interval(days => $2))",
            &[&did, age_days],
        )
        .await
        .unwrap();
    }
    // An old event that matched no endpoint.
    c.execute(
        "INSERT INTO events (id, type, payload, received_at)
         VALUES ('evt_orphan', 'user.created', '{}', now() - interval '40 days')",
        &[],
    )
    .await
    .unwrap();

    // Batches of 2: several statements per table.
    let swept = hookfleet_store::retention::sweep(&env.pool, Duration::from_secs(30 * 86_400), 2)
        .await
        .unwrap();
    assert_eq!(swept.deliveries, 7, "the old finished deliveries");
    assert_eq!(swept.events, 8, "their events and the orphan");
    assert_eq!(env.count("SELECT count(*) FROM deliveries").await, 4);
    assert_eq!(
        env.count("SELECT count(*) FROM deliveries WHERE status = 'pending'")
            .await,
        1,
        "a pending delivery is owed: kept whatever its age"
    );
    assert_eq!(env.count("SELECT count(*) FROM delivery_attempts").await, 4);
    assert_eq!(env.count("SELECT count(*) FROM events").await, 4);
    // A second sweep finds nothing; zero max age would keep everything.
    let again = hookfleet_store::retention::sweep(&env.pool, Duration::from_secs(30 * 86_400), 2)
        .await
        .unwrap();
    assert_eq!(again, hookfleet_store::retention::Swept::default());
}
