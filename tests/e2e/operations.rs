//! Operating the fleet: dead-letter list/show/replay/purge (API and CLI),
//! /recover, metrics (checked by promtool), real worker processes sharing work,
//! SIGKILL and SIGTERM.
use hookfleet::Roles;
use hookfleet_tests::{
    scrape, sigterm, wait_exit, wait_for, Api, Behaviour, Receiver, TestEnv, ADMIN_KEY,
};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

async fn failed(env: &TestEnv, endpoint: &str) -> i64 {
    env.count(&format!(
        "SELECT count(*) FROM deliveries WHERE status = 'failed' AND endpoint_id = '{endpoint}'"
    ))
    .await
}

/// How many items a list answer holds.
fn len(v: &serde_json::Value) -> usize {
    v["data"].as_array().map_or(0, Vec::len)
}

/// Follows a replay until it ends; returns its final record.
async fn replay_done(api: &Api, id: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..600 {
        let (s, r) = api
            .call("GET", &format!("/api/v1/dead-letters/replays/{id}"), None)
            .await;
        assert_eq!(s, 200, "{r}");
        if r["status"] != "running" {
            return r;
        }
        last = r;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the replay did not end: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_filtered_replayed_and_purged() {
    // Two attempts per delivery, one second apart; no circuit breaker (it would
    // hold these deliveries back instead of letting them dead-letter).
    let env = TestEnv::new(&[
        ("retry.schedule", "1s"),
        ("circuit.failure_threshold", "100000"),
    ])
    .await;
    let rx_a = Receiver::start(Behaviour::Always(501)).await;
    let rx_b = Receiver::start(Behaviour::Always(500)).await;
    let (a, _) = env
        .add_endpoint(&rx_a.url, &["user.created"], Some("acme"))
        .await;
    let (b, _) = env
        .add_endpoint(&rx_b.url, &["job.failed"], Some("beta"))
        .await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let admin = Api::new(&base, ADMIN_KEY);
    let sent_a: HashSet<String> = env
        .publish_many(
            "user.created",
            (0..100).map(|i| json!({"user_id": i, "username": "u"})),
            Some("acme"),
        )
        .await
        .into_iter()
        .collect();
    for i in 0..5 {
        env.publish(
            "job.failed",
            json!({"job_id": i, "job_type": "t", "error_message": "e"}),
            Some("beta"),
        )
        .await;
    }
    wait_for("105 deliveries dead-lettered", LONG, || async {
        failed(&env, &a.id).await == 100 && failed(&env, &b.id).await == 5
    })
    .await;
    wait_for("105 dead letters kept in PostgreSQL", LONG, || async {
        env.dead_letters().await == 105
    })
    .await;
    wait_for("hookfleet.dead emptied by the keeper", LONG, || async {
        env.queue_len("hookfleet.dead").await == 0
    })
    .await;

    // List, with filters, in cursor pages.
    let (s, all) = admin
        .call("GET", "/api/v1/dead-letters?limit=1000", None)
        .await;
    assert_eq!(s, 200, "{all}");
    assert_eq!(len(&all), 105);
    assert!(all["next_cursor"].is_null());
    let mut seen = HashSet::new();
    let mut cursor = String::new();
    loop {
        let (s, page) = admin
            .call(
                "GET",
                &format!("/api/v1/dead-letters?limit=40{cursor}"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{page}");
        for d in page["data"].as_array().unwrap() {
            assert!(seen.insert(d["delivery_id"].as_str().unwrap().to_owned()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 105, "the pages cover every dead letter once");
    let (s, bad) = admin
        .call("GET", "/api/v1/dead-letters?cursor=nope", None)
        .await;
    assert_eq!((s, bad["error"]["field"].as_str()), (422, Some("cursor")));
    let (_, only_a) = admin
        .call(
            "GET",
            &format!("/api/v1/dead-letters?endpoint_id={}&limit=1000", a.id),
            None,
        )
        .await;
    assert_eq!(len(&only_a), 100);
    let d0 = &only_a["data"][0];
    assert_eq!(d0["endpoint_id"], a.id.as_str());
    assert_eq!(d0["tenant_id"], "acme");
    assert_eq!(d0["event_type"], "user.created");
    assert_eq!(d0["attempts"], 2);
    assert_eq!(d0["last_error"], "HTTP 501");
    assert!(d0["dead_at"].as_str().unwrap().starts_with("20"));
    let (_, by_error) = admin
        .call(
            "GET",
            "/api/v1/dead-letters?error=http%20500&limit=1000",
            None,
        )
        .await;
    assert_eq!(len(&by_error), 5, "error text filter is case-insensitive");
    let (_, by_type) = admin
        .call(
            "GET",
            "/api/v1/dead-letters?event_type=job.failed&since=2000-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(len(&by_type), 5);
    let (_, future) = admin
        .call(
            "GET",
            "/api/v1/dead-letters?since=2999-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(len(&future), 0);
    let (s, bad) = admin
        .call("GET", "/api/v1/dead-letters?since=yesterday", None)
        .await;
    assert_eq!(s, 422, "{bad}");
    assert_eq!(bad["error"]["field"], "since");
    assert_eq!(env.dead_letters().await, 105, "listing takes nothing away");

    // One, with its payload.
    let did = d0["delivery_id"].as_str().unwrap().to_owned();
    let (s, one) = admin
        .call("GET", &format!("/api/v1/dead-letters/{did}"), None)
        .await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["payload"]["type"], "user.created");
    let (s, _) = admin
        .call("GET", "/api/v1/dead-letters/dlv_nope", None)
        .await;
    assert_eq!(s, 404);

    // A tenant key sees its own tenant's only.
    let (s, key) = admin
        .call("POST", "/api/v1/tenants", Some(json!({"id": "beta"})))
        .await;
    assert!(s == 201 || s == 409, "{key}");
    let (s, key) = admin
        .call("POST", "/api/v1/tenants/beta/api-keys", None)
        .await;
    assert_eq!(s, 201, "{key}");
    let beta = admin.with_key(key["key"].as_str().unwrap());
    let (s, mine) = beta
        .call("GET", "/api/v1/dead-letters?limit=1000", None)
        .await;
    assert_eq!(s, 200, "{mine}");
    assert_eq!(len(&mine), 5);
    let (s, _) = beta
        .call("GET", "/api/v1/dead-letters?tenant_id=acme", None)
        .await;
    assert_eq!(s, 403);

    // Dry run: says what it would do, does nothing.
    let (s, dry) = admin
        .call(
            "POST",
            "/api/v1/dead-letters/replay",
            Some(json!({"endpoint_id": a.id, "dry_run": true})),
        )
        .await;
    assert_eq!(s, 200, "{dry}");
    assert_eq!(dry["matched"], 100);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(env.dead_letters().await, 105);
    let (s, typo) = admin
        .call(
            "POST",
            "/api/v1/dead-letters/replay",
            Some(json!({"endpoint": a.id})),
        )
        .await;
    assert_eq!(
        s, 422,
        "an unknown filter field is refused, not ignored: {typo}"
    );

    // Replay 100 at a bounded rate: all 100 delivered, same webhook-id.
    rx_a.set_behaviour(Behaviour::Ok);
    let before = rx_a.count();
    let (s, rep) = admin
        .call(
            "POST",
            "/api/v1/dead-letters/replay",
            Some(json!({"endpoint_id": a.id, "rate": 500})),
        )
        .await;
    assert_eq!(s, 202, "{rep}");
    let rep = replay_done(&admin, rep["id"].as_str().unwrap()).await;
    assert_eq!(rep["replayed"], 100, "{rep}");
    wait_for("the 100 replayed deliveries to succeed", LONG, || async {
        env.count(&format!(
            "SELECT count(*) FROM deliveries WHERE status = 'succeeded' AND endpoint_id = '{}'",
            a.id
        ))
        .await
            == 100
    })
    .await;
    let after: HashSet<String> = rx_a.received()[before..]
        .iter()
        .map(|r| r.webhook_id())
        .collect();
    assert_eq!(after, sent_a, "each replayed with its original webhook-id");
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
              WHERE d.endpoint_id = '{}' AND a.attempt = 3",
            a.id
        ))
        .await,
        100,
        "attempt numbering continues (2 failed, then the 3rd)"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM dead_letter_actions WHERE action = 'replay' AND actor = 'api:admin'")
            .await,
        100,
        "who replayed what is recorded"
    );
    assert_eq!(env.dead_letters().await, 5);

    // Purge: refuses without a filter, then removes beta's five.
    let (s, e) = admin
        .call("POST", "/api/v1/dead-letters/purge", Some(json!({})))
        .await;
    assert_eq!(s, 422);
    assert_eq!(e["error"]["field"], "all");
    let (s, p) = beta
        .call(
            "POST",
            "/api/v1/dead-letters/purge",
            Some(json!({"event_type": "job.failed"})),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["purged"], 5);
    assert_eq!(env.dead_letters().await, 0);
    assert_eq!(
        env.count("SELECT count(*) FROM dead_letter_actions WHERE action = 'purge' AND actor = 'api:tenant:beta'")
            .await,
        5
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_resends_failed_deliveries_since_a_time_and_the_cli_drives_the_dlq() {
    let env = TestEnv::new(&[("retry.schedule", "1s")]).await;
    let rx = Receiver::start(Behaviour::Always(501)).await;
    let (ep, _) = env.add_endpoint(&rx.url, &["*"], None).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let admin = Api::new(&base, ADMIN_KEY);
    let since = hookfleet_core::envelope::now_rfc3339();
    let mut ids = HashSet::new();
    for i in 0..4 {
        ids.insert(
            env.publish("user.created", json!({"user_id": i, "username": "u"}), None)
                .await,
        );
    }
    wait_for("4 dead letters", LONG, || async {
        failed(&env, &ep.id).await == 4 && env.dead_letters().await == 4
    })
    .await;

    // The CLI: list (JSON), show, replay --dry-run, purge one.
    let cli = |args: &[&str]| {
        let out = env.command(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = cli(&["dlq", "list", "--endpoint", &ep.id, "--json"]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(len(&report), 4);
    let first = report["data"][0]["delivery_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ok, stdout, stderr) = cli(&["dlq", "list", "--error", "501"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&first) && stdout.contains("HTTP 501"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = cli(&["dlq", "show", &first]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("\"payload\""), "{stdout}");
    let (ok, stdout, _) = cli(&["dlq", "replay", "--endpoint", &ep.id, "--dry-run"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["matched"],
        4
    );
    assert_eq!(env.dead_letters().await, 4, "a dry run changes nothing");
    let (ok, _, stderr) = cli(&["dlq", "purge"]);
    assert!(!ok && stderr.contains("--all"), "{stderr}");
    let (ok, _, stderr) = cli(&["dlq", "list", "--since", "soon"]);
    assert!(!ok && stderr.contains("--since"), "{stderr}");
    // Purge one by delivery id through the API: its delivery stays failed in
    // Postgres but its dead letter is no longer kept.
    let (s, p) = admin
        .call(
            "POST",
            "/api/v1/dead-letters/purge",
            Some(json!({"delivery_id": first})),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["purged"], 1);
    assert_eq!(env.dead_letters().await, 3);

    // Recover: the three kept dead letters and the purged one from the store.
    rx.set_behaviour(Behaviour::Ok);
    let (s, bad) = admin
        .call(
            "POST",
            &format!("/api/v1/webhooks/{}/recover", ep.id),
            Some(json!({"since": "then"})),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(bad["error"]["field"], "since");
    let (s, r) = admin
        .call(
            "POST",
            &format!("/api/v1/webhooks/{}/recover", ep.id),
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(r["replayed_from_dead_letters"], 3, "{r}");
    assert_eq!(r["resent"], 1, "{r}");
    wait_for("all 4 recovered deliveries succeed", LONG, || async {
        env.count("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
            .await
            == 4
    })
    .await;
    let ok_ids: HashSet<String> = rx
        .received()
        .iter()
        .filter(|r| r.headers.get("webhook-id").is_some())
        .map(|r| r.webhook_id())
        .collect();
    assert!(ids.is_subset(&ok_ids));
    assert_eq!(env.dead_letters().await, 0);
    app.stop().await.unwrap();
}

/// `promtool check metrics` on a process's `/metrics`.
fn promtool_check(text: &str) {
    use std::io::Write as _;
    let mut p = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is missing: install Prometheus's promtool (Debian: apt-get install prometheus)");
    p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn ready(base: &str) -> bool {
    reqwest::get(format!("{base}/readyz"))
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_serves_metrics_promtool_accepts_and_they_move() {
    let env = TestEnv::new(&[("retry.schedule", "1s")]).await;
    let ok = Receiver::start(Behaviour::Ok).await;
    let bad = Receiver::start(Behaviour::Always(500)).await;
    env.add_endpoint(&ok.url, &["user.created"], None).await;
    env.add_endpoint(&bad.url, &["job.failed"], None).await;
    let key = [
        ("HOOKFLEET__API__ADMIN_KEY", ADMIN_KEY),
        ("HOOKFLEET__API__LISTEN", "127.0.0.1:0"),
    ];
    let (mut router, router_ops) = env.spawn_with_ops(&["router"], &[]);
    let (mut worker, worker_ops) =
        env.spawn_with_ops(&["worker"], &[("HOOKFLEET__LOG__FORMAT", "json")]);
    let (mut api, api_ops) = env.spawn_with_ops(&["api"], &key);
    let outbox_db = env.db_url.clone();
    let (mut relay, relay_ops) =
        env.spawn_with_ops(&["outbox-relay", "--database-url", &outbox_db], &[]);
    let all = [
        ("router", &router_ops),
        ("worker", &worker_ops),
        ("api", &api_ops),
        ("outbox-relay", &relay_ops),
    ];
    for (role, base) in &all {
        wait_for(&format!("{role} ready"), LONG, || ready(base)).await;
        let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
        assert!(health.status().is_success());
        let text = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        promtool_check(&text);
        assert!(text.contains("hookfleet_build_info{version="), "{role}");
        assert!(text.contains("process_resident_memory_bytes"), "{role}");
    }

    env.publish("user.created", json!({"user_id": 1, "username": "u"}), None)
        .await;
    env.publish(
        "job.failed",
        json!({"job_id": 1, "job_type": "t", "error_message": "e"}),
        None,
    )
    .await;
    let w = worker_ops.as_str();
    wait_for("attempts counted by outcome", LONG, || async {
        scrape(w, "hookfleet_attempts_total", &["outcome=\"succeeded\""]).await == Some(1.0)
            && scrape(w, "hookfleet_attempts_total", &["outcome=\"retried\""]).await == Some(1.0)
            && scrape(w, "hookfleet_attempts_total", &["outcome=\"dead\""]).await == Some(1.0)
    })
    .await;
    assert_eq!(
        scrape(w, "hookfleet_retries_scheduled_total", &["tier=\"1s\""]).await,
        Some(1.0)
    );
    assert_eq!(
        scrape(
            w,
            "hookfleet_attempt_duration_seconds_count",
            &["status_class=\"5xx\""]
        )
        .await,
        Some(2.0)
    );
    assert_eq!(
        scrape(w, "hookfleet_delivery_latency_seconds_count", &[]).await,
        Some(1.0)
    );
    assert_eq!(
        scrape(w, "hookfleet_endpoints", &["state=\"active\""]).await,
        Some(2.0)
    );
    let r = router_ops.as_str();
    assert_eq!(
        scrape(r, "hookfleet_events_routed_total", &[]).await,
        Some(2.0)
    );
    // The worker's keeper moved the dead letter into PostgreSQL; the router's
    // poller then sees hookfleet.dead empty.
    wait_for("the dead letter kept", LONG, || async {
        scrape(w, "hookfleet_dead_letters_kept_total", &[]).await == Some(1.0)
    })
    .await;
    wait_for("the dead-letter queue depth polled", LONG, || async {
        scrape(r, "hookfleet_queue_messages", &["queue=\"hookfleet.dead\""]).await == Some(0.0)
    })
    .await;
    // JSON logs: one line per attempt with its ids and outcome; no secret, no payload.
    let log = std::fs::read_to_string(&worker.log).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let attempts: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "Delivery attempt.")
        .collect();
    assert_eq!(attempts.len(), 3, "one line per attempt: {log}");
    for a in &attempts {
        let f = &a["fields"];
        for k in [
            "delivery_id",
            "event_id",
            "endpoint_id",
            "attempt",
            "outcome",
            "latency_ms",
        ] {
            assert!(!f[k].is_null(), "{k} in {a}");
        }
    }
    assert!(
        !log.contains("whsec_") && !log.contains("username"),
        "no secret or payload in logs"
    );
    // promtool again, now that every family has samples.
    for (_, base) in &all {
        promtool_check(
            &reqwest::get(format!("{base}/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    for p in [&mut router, &mut worker, &mut api, &mut relay] {
        sigterm(p);
        assert!(wait_exit(p, LONG).await.success(), "exits 0 on SIGTERM");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_share_the_load_and_a_kill_loses_nothing() {
    // Every worker consumes the one endpoint here (4 consumers per endpoint
    // for up to 4 workers): this is about sharing one queue's load. How the
    // endpoints are spread over workers is tests/e2e/sharing.rs.
    let env = TestEnv::new(&[
        ("amqp.worker_prefetch", "4"),
        ("worker.consumers_per_endpoint", "4"),
    ])
    .await;
    let rx = Receiver::start(Behaviour::Delay(100)).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    let router = env.start(Roles::ROUTER).await;
    let mut workers: Vec<_> = (0..3)
        .map(|_| env.spawn_with_ops(&["worker"], &[]))
        .collect();
    for (_, ops) in &workers {
        wait_for("worker ready", LONG, || ready(ops)).await;
    }
    let ids: HashSet<String> = env
        .publish_many(
            "user.created",
            (0..1500).map(|i| json!({"user_id": i, "username": "u"})),
            None,
        )
        .await
        .into_iter()
        .collect();
    // Every worker takes a share.
    for (_, ops) in &workers {
        wait_for("each worker delivering", LONG, || async {
            scrape(ops, "hookfleet_attempts_total", &["outcome=\"succeeded\""])
                .await
                .unwrap_or(0.0)
                >= 10.0
        })
        .await;
    }
    // A replica that joins mid-run takes a share too.
    let joiner = env.spawn_with_ops(&["worker"], &[]);
    wait_for("the new worker delivering", LONG, || async {
        scrape(
            &joiner.1,
            "hookfleet_attempts_total",
            &["outcome=\"succeeded\""],
        )
        .await
        .unwrap_or(0.0)
            >= 1.0
    })
    .await;
    workers.push(joiner);
    // SIGKILL one mid-run: its unacked deliveries go to the others.
    let (mut victim, _) = workers.remove(0);
    victim.kill().unwrap();
    victim.wait().unwrap();
    wait_for("all 1500 delivered", LONG, || async {
        env.count("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
            .await
            == 1500
    })
    .await;
    let got: HashSet<String> = rx.received().iter().map(|r| r.webhook_id()).collect();
    assert!(ids.is_subset(&got), "nothing lost");
    for (p, _) in &mut workers {
        sigterm(p);
        assert!(wait_exit(p, LONG).await.success());
    }
    router.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_deliveries_finish_and_exits_zero() {
    let env = TestEnv::new(&[("amqp.worker_prefetch", "8"), ("shutdown.grace", "30s")]).await;
    let rx = Receiver::start(Behaviour::Delay(3000)).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    let router = env.start(Roles::ROUTER).await;
    let (mut worker, ops) = env.spawn_with_ops(&["worker"], &[]);
    wait_for("worker ready", LONG, || ready(&ops)).await;
    for i in 0..8 {
        env.publish("user.created", json!({"user_id": i, "username": "u"}), None)
            .await;
    }
    wait_for("8 requests in flight", LONG, || async { rx.count() == 8 }).await;
    sigterm(&worker);
    let status = wait_exit(&mut worker, LONG).await;
    assert!(status.success(), "exit status {status:?}");
    // Each in-flight delivery finished and its record was flushed before exit.
    assert_eq!(
        env.count("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
            .await,
        8
    );
    assert_eq!(env.count("SELECT count(*) FROM delivery_attempts").await, 8);
    assert_eq!(rx.count(), 8, "no delivery sent twice");
    router.stop().await.unwrap();
}

/// Succeeded deliveries, on a fresh connection (the tests below cut connections).
async fn succeeded(env: &TestEnv) -> i64 {
    let Ok((client, conn)) = tokio_postgres::connect(&env.db_url, tokio_postgres::NoTls).await
    else {
        return -1;
    };
    tokio::spawn(conn);
    client
        .query_one(
            "SELECT count(*) FROM deliveries WHERE status = 'succeeded'",
            &[],
        )
        .await
        .map(|r| r.get::<_, i64>(0))
        .unwrap_or(-1)
}

/// Restarts RabbitMQ under real router and worker processes. Runs alone, after
/// the rest (`broker_restart` in the name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_under_router_and_worker_processes_loses_nothing() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Delay(5)).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    let mut procs: Vec<_> = ["router", "worker", "worker"]
        .iter()
        .map(|r| env.spawn_with_ops(&[r], &[]))
        .collect();
    for (_, ops) in &procs {
        wait_for("process ready", LONG, || ready(ops)).await;
    }
    let data = |from: i64| (from..from + 500).map(|i| json!({"user_id": i, "username": "u"}));
    let mut ids = env.publish_many("user.created", data(0), None).await;
    wait_for("deliveries under way", LONG, || async { rx.count() >= 50 }).await;
    {
        let _restart = hookfleet_tests::stop_broker_app();
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    for (_, ops) in &procs {
        wait_for("ready again after the restart", LONG, || ready(ops)).await;
    }
    ids.extend(env.publish_many("user.created", data(500), None).await);
    wait_for("all 1000 delivered and recorded", LONG, || async {
        succeeded(&env).await == 1000
    })
    .await;
    let got: HashSet<String> = rx.received().iter().map(|r| r.webhook_id()).collect();
    assert!(ids.iter().all(|id| got.contains(id)), "nothing lost");
    for (p, _) in &mut procs {
        sigterm(p);
        assert!(wait_exit(p, LONG).await.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_cut_mid_run_are_survived() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Delay(5)).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    let mut procs: Vec<_> = ["router", "worker"]
        .iter()
        .map(|r| env.spawn_with_ops(&[r], &[]))
        .collect();
    for (_, ops) in &procs {
        wait_for("process ready", LONG, || ready(ops)).await;
    }
    let ids = env
        .publish_many(
            "user.created",
            (0..1000).map(|i| json!({"user_id": i, "username": "u"})),
            None,
        )
        .await;
    wait_for("deliveries under way", LONG, || async { rx.count() >= 100 }).await;
    // Every connection to this test's database is cut, twice: pools, LISTEN and
    // in-flight transactions all see their connection die.
    for _ in 0..2 {
        let (admin, conn) = tokio_postgres::connect(&env.db_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let cut = admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        assert!(cut > 0, "connections cut");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_for("all 1000 delivered and recorded", LONG, || async {
        succeeded(&env).await == 1000
    })
    .await;
    let got: HashSet<String> = rx.received().iter().map(|r| r.webhook_id()).collect();
    assert!(ids.iter().all(|id| got.contains(id)), "nothing lost");
    for (_, ops) in &procs {
        wait_for("ready after the cut", LONG, || ready(ops)).await;
    }
    for (p, _) in &mut procs {
        sigterm(p);
        assert!(wait_exit(p, LONG).await.success());
    }
}

/// A keeper that dies between its commit and its ack gets the same messages
/// again: the same delivery and `x-dead-at` is kept once. A later death of
/// the same delivery, and messages without a delivery id, are kept as they come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_kept_twice_is_stored_once() {
    use hookfleet_store::dead_letters::{keep, Kept};
    let env = TestEnv::new(&[]).await;
    let at = time::OffsetDateTime::now_utc();
    let k = Kept {
        delivery_id: "dlv_once".into(),
        event_id: "evt_once".into(),
        endpoint_id: "ep_once".into(),
        event_type: "user.created".into(),
        attempts: 3,
        dead_at: Some(at),
        body: b"{}".to_vec(),
        ..Default::default()
    };
    keep(&env.pool, &[k.clone(), k.clone()]).await.unwrap();
    keep(&env.pool, std::slice::from_ref(&k)).await.unwrap();
    assert_eq!(env.dead_letters().await, 1);
    let again = Kept {
        dead_at: Some(at + Duration::from_secs(60)),
        ..k.clone()
    };
    keep(&env.pool, &[again]).await.unwrap();
    assert_eq!(
        env.dead_letters().await,
        2,
        "a later death is a new dead letter"
    );
    let anonymous = Kept {
        delivery_id: String::new(),
        ..k
    };
    keep(&env.pool, &[anonymous.clone(), anonymous])
        .await
        .unwrap();
    assert_eq!(
        env.dead_letters().await,
        4,
        "without a delivery id nothing is merged"
    );
}
