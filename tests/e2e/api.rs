use hookfleet::Roles;
use hookfleet_tests::{free_port, wait_for, Api, Behaviour, Receiver, TestEnv, ADMIN_KEY};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn webhook(url: &str, events: &[&str]) -> Value {
    json!({"url": url, "events": events})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_crud_pagination_and_errors() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let api = Api::new(&base, ADMIN_KEY);

    // The catalog of the SoundHash guide.
    let (s, cat) = api.call("GET", "/api/v1/webhooks/events", None).await;
    assert_eq!(s, 200);
    let names: HashSet<&str> = cat["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for t in [
        "match.found",
        "video.processed",
        "job.failed",
        "user.created",
        "subscription.updated",
        "api_limit.reached",
    ] {
        assert!(names.contains(t), "{t} in catalog");
    }
    assert!(cat["data"][0]["schema"].is_object() && cat["data"][0]["example"].is_object());

    // Create.
    let (s, w) = api
        .call("POST", "/api/v1/webhooks", Some(json!({"url": "https://example.com/h", "events": ["match.found"], "description": "d", "headers": {"X-Team": "a"}, "metadata": {"k": 1}})))
        .await;
    assert_eq!(s, 201, "{w}");
    let id = w["id"].as_str().unwrap().to_owned();
    assert!(w["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(w["events"], json!(["match.found"]));
    assert_eq!(w["is_active"], true);
    assert_eq!(w["headers"]["X-Team"], "a");

    // Read: no secret in plain reads; the secret has its own call.
    let (s, got) = api
        .call("GET", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(s, 200);
    assert!(got.get("secret").is_none());
    let (_, sec) = api
        .call("GET", &format!("/api/v1/webhooks/{id}/secret"), None)
        .await;
    assert_eq!(sec["key"], w["secret"]);

    // Update any field.
    let (s, up) = api
        .call("PATCH", &format!("/api/v1/webhooks/{id}"), Some(json!({"url": "https://example.com/h2", "events": ["*"], "is_active": false, "description": "e"})))
        .await;
    assert_eq!(s, 200, "{up}");
    assert_eq!(
        (
            up["url"].as_str(),
            up["events"].clone(),
            up["is_active"].as_bool()
        ),
        (Some("https://example.com/h2"), json!(["*"]), Some(false))
    );
    assert_eq!(up["description"], "e");

    // Pagination returns every item exactly once.
    for i in 0..6 {
        let (s, _) = api
            .call(
                "POST",
                "/api/v1/webhooks",
                Some(webhook(
                    &format!("https://example.com/{i}"),
                    &["job.failed"],
                )),
            )
            .await;
        assert_eq!(s, 201);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/webhooks?limit=3&cursor={c}"),
            None => "/api/v1/webhooks?limit=3".to_owned(),
        };
        let (s, page) = api.call("GET", &path, None).await;
        assert_eq!(s, 200);
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);
    let (_, active) = api
        .call("GET", "/api/v1/webhooks?is_active=false", None)
        .await;
    assert_eq!(active["data"].as_array().unwrap().len(), 1);
    let (_, typed) = api
        .call("GET", "/api/v1/webhooks?event_type=job.failed", None)
        .await;
    assert_eq!(
        typed["data"].as_array().unwrap().len(),
        7,
        "six job.failed plus the `*` one"
    );

    // Errors: status, code and field.
    let cases: Vec<(&str, Value, u16, Option<&str>)> = vec![
        (
            "POST",
            webhook("ftp://example.com", &["*"]),
            422,
            Some("url"),
        ),
        (
            "POST",
            webhook("https://u:p@example.com", &["*"]),
            422,
            Some("url"),
        ),
        (
            "POST",
            webhook("https://example.com", &["no.such.type"]),
            422,
            Some("events"),
        ),
        (
            "POST",
            webhook("https://example.com", &[]),
            422,
            Some("events"),
        ),
        (
            "POST",
            json!({"url": "https://example.com", "events": ["*"], "description": "x".repeat(2000)}),
            422,
            Some("description"),
        ),
        (
            "POST",
            json!({"url": "https://example.com", "events": ["*"], "headers": {"webhook-id": "x"}}),
            422,
            Some("headers"),
        ),
        (
            "POST",
            json!({"url": "https://example.com", "events": ["*"], "bogus": 1}),
            422,
            Some("bogus"),
        ),
        ("POST", json!({"events": ["*"]}), 422, Some("url")),
        ("POST", json!({"url": 7, "events": ["*"]}), 422, None),
    ];
    for (m, body, status, field) in cases {
        let (s, e) = api.call(m, "/api/v1/webhooks", Some(body.clone())).await;
        assert_eq!(s, status, "{body}: {e}");
        assert_eq!(e["error"]["code"], "validation_error");
        if let Some(f) = field {
            assert_eq!(e["error"]["field"], f, "{body}: {e}");
        }
    }
    let raw = api
        .http
        .post(format!("{base}/api/v1/webhooks"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    assert_eq!(
        raw.json::<Value>().await.unwrap()["error"]["code"],
        "malformed_json"
    );
    let big = api
        .http
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body(vec![b' '; 400 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status().as_u16(), 413);
    assert_eq!(
        api.with_key("nope")
            .call("GET", "/api/v1/webhooks", None)
            .await
            .0,
        401
    );
    assert_eq!(
        api.with_key("hfk_forged")
            .call("GET", "/api/v1/webhooks", None)
            .await
            .0,
        401
    );
    let (s, e) = api
        .http
        .get(format!("{base}/api/v1/webhooks"))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(s, 401);
    assert_eq!(
        e.json::<Value>().await.unwrap()["error"]["code"],
        "unauthorized"
    );
    assert_eq!(
        api.call("GET", "/api/v1/webhooks/ep_missing", None).await.0,
        404
    );
    assert_eq!(
        api.call(
            "GET",
            &format!("/api/v1/webhooks/{id}/stats?window=1y"),
            None
        )
        .await
        .0,
        422
    );
    assert_eq!(
        api.call(
            "GET",
            &format!("/api/v1/webhooks/{id}/deliveries?status=odd"),
            None
        )
        .await
        .0,
        422
    );

    // Delete: 204, then gone.
    assert_eq!(
        api.call("DELETE", &format!("/api/v1/webhooks/{id}"), None)
            .await
            .0,
        204
    );
    assert_eq!(
        api.call("GET", &format!("/api/v1/webhooks/{id}"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        api.call("DELETE", &format!("/api/v1/webhooks/{id}"), None)
            .await
            .0,
        404
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_only_their_own() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let admin = Api::new(&base, ADMIN_KEY);
    for t in ["acme", "globex"] {
        assert_eq!(
            admin
                .call("POST", "/api/v1/tenants", Some(json!({"id": t})))
                .await
                .0,
            201
        );
    }
    assert_eq!(
        admin
            .call("POST", "/api/v1/tenants", Some(json!({"id": "acme"})))
            .await
            .0,
        409
    );
    assert_eq!(
        admin
            .call("POST", "/api/v1/tenants", Some(json!({"id": "bad id"})))
            .await
            .0,
        422
    );
    assert_eq!(
        admin
            .call("POST", "/api/v1/tenants/nobody/api-keys", None)
            .await
            .0,
        404
    );
    let (s, ka) = admin
        .call("POST", "/api/v1/tenants/acme/api-keys", None)
        .await;
    assert_eq!(s, 201);
    let (_, kg) = admin
        .call("POST", "/api/v1/tenants/globex/api-keys", None)
        .await;
    let acme = admin.with_key(ka["key"].as_str().unwrap());
    let globex = admin.with_key(kg["key"].as_str().unwrap());
    // Tenant keys cannot manage tenants.
    assert_eq!(
        acme.call("POST", "/api/v1/tenants", Some(json!({"id": "x"})))
            .await
            .0,
        403
    );

    let rx = Receiver::start(Behaviour::Ok).await;
    let (s, w) = acme
        .call("POST", "/api/v1/webhooks", Some(webhook(&rx.url, &["*"])))
        .await;
    assert_eq!(s, 201);
    assert_eq!(w["tenant_id"], "acme");
    let id = w["id"].as_str().unwrap();
    let (s, sent) = acme
        .call(
            "POST",
            &format!("/api/v1/webhooks/{id}/test"),
            Some(json!({"event_type": "user.created"})),
        )
        .await;
    assert_eq!(s, 202, "{sent}");
    let did = sent["delivery_id"].as_str().unwrap();

    // Every way in from another tenant, or from the tenant-less admin scope, is a 404.
    for other in [&globex, &admin] {
        let calls = [
            ("GET", format!("/api/v1/webhooks/{id}"), None),
            (
                "PATCH",
                format!("/api/v1/webhooks/{id}"),
                Some(json!({"is_active": false})),
            ),
            ("DELETE", format!("/api/v1/webhooks/{id}"), None),
            ("GET", format!("/api/v1/webhooks/{id}/secret"), None),
            ("POST", format!("/api/v1/webhooks/{id}/secret/rotate"), None),
            (
                "POST",
                format!("/api/v1/webhooks/{id}/test"),
                Some(json!({"event_type": "user.created"})),
            ),
            ("GET", format!("/api/v1/webhooks/{id}/deliveries"), None),
            (
                "GET",
                format!("/api/v1/webhooks/{id}/deliveries/{did}"),
                None,
            ),
            (
                "POST",
                format!("/api/v1/webhooks/{id}/deliveries/{did}/resend"),
                None,
            ),
            ("GET", format!("/api/v1/webhooks/{id}/stats"), None),
        ];
        for (m, path, body) in calls {
            let (s, e) = other.call(m, &path, body).await;
            assert_eq!(s, 404, "{m} {path}: {e}");
            assert_eq!(e["error"]["code"], "not_found");
        }
        let (_, list) = other.call("GET", "/api/v1/webhooks", None).await;
        assert!(list["data"].as_array().unwrap().is_empty());
    }
    // Still there, still active, for its owner.
    let (s, w) = acme
        .call("GET", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!((s, w["is_active"].as_bool()), (200, Some(true)));

    // Ingest with a tenant key is stamped with that tenant.
    let (s, e) = acme
        .call(
            "POST",
            "/api/v1/events",
            Some(json!({"type": "user.created", "data": {"user_id": 1, "username": "a"}})),
        )
        .await;
    assert_eq!(s, 202, "{e}");
    let (s, _) = acme
        .call(
            "POST",
            "/api/v1/events",
            Some(json!({"type": "user.created", "tenant_id": "globex", "data": {}})),
        )
        .await;
    assert_eq!(s, 422);
    wait_for("the test send and the ingested event", LONG, || async {
        rx.count() == 2
    })
    .await;
    assert!(rx
        .received()
        .iter()
        .all(|r| r.json()["tenant_id"] == "acme"));

    // A revoked key stops working.
    assert_eq!(
        admin
            .call(
                "DELETE",
                &format!("/api/v1/api-keys/{}", kg["id"].as_str().unwrap()),
                None
            )
            .await
            .0,
        204
    );
    assert_eq!(globex.call("GET", "/api/v1/webhooks", None).await.0, 401);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_send_history_resend_stats_and_rotation() {
    let env = TestEnv::new(&[("retry.schedule", "1s")]).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let api = Api::new(&base, ADMIN_KEY);
    let rx = Receiver::start(Behaviour::FailFirst(1)).await;
    let (_, w) = api
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(webhook(&rx.url, &["match.found"])),
        )
        .await;
    let id = w["id"].as_str().unwrap();
    let old_secret = w["secret"].as_str().unwrap().to_owned();

    let (s, sent) = api
        .call(
            "POST",
            &format!("/api/v1/webhooks/{id}/test"),
            Some(json!({"event_type": "match.found"})),
        )
        .await;
    assert_eq!(s, 202);
    let did = sent["delivery_id"].as_str().unwrap().to_owned();
    wait_for(
        "the test delivery to succeed after one retry",
        LONG,
        || async {
            let (_, d) = api
                .call(
                    "GET",
                    &format!("/api/v1/webhooks/{id}/deliveries/{did}"),
                    None,
                )
                .await;
            d["status"] == "succeeded"
        },
    )
    .await;
    let first = &rx.received()[0];
    first.verify(&old_secret).unwrap();
    assert_eq!(
        first.json()["data"]["confidence"],
        0.95,
        "the catalog example was sent"
    );

    let (_, d) = api
        .call(
            "GET",
            &format!("/api/v1/webhooks/{id}/deliveries/{did}"),
            None,
        )
        .await;
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        (
            attempts[0]["response_status_code"].as_i64(),
            attempts[0]["status"].as_str()
        ),
        (Some(500), Some("failed"))
    );
    assert_eq!(attempts[0]["response"], "not yet");
    assert_eq!(
        (
            attempts[1]["response_status_code"].as_i64(),
            attempts[1]["status"].as_str()
        ),
        (Some(200), Some("succeeded"))
    );
    assert_eq!(d["payload"]["type"], "match.found");
    let (_, list) = api
        .call(
            "GET",
            &format!("/api/v1/webhooks/{id}/deliveries?status=succeeded&event_type=match.found"),
            None,
        )
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (_, none) = api
        .call(
            "GET",
            &format!("/api/v1/webhooks/{id}/deliveries?status=failed"),
            None,
        )
        .await;
    assert!(none["data"].as_array().unwrap().is_empty());

    // Rotation: both secrets sign during the grace period.
    let (s, rot) = api
        .call(
            "POST",
            &format!("/api/v1/webhooks/{id}/secret/rotate"),
            Some(json!({"grace_period_seconds": 3600})),
        )
        .await;
    assert_eq!(s, 200, "{rot}");
    let new_secret = rot["key"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    assert_eq!(rot["previous"][0]["key"], old_secret.as_str());

    // Resend: same webhook-id, attempt numbers continue, both secrets verify. The
    // rotation reaches the workers through NOTIFY and a registry reload, so a resend
    // right after it may still carry one signature: resend until it shows both.
    let mut again = None;
    for _ in 0..50 {
        let before = rx.count();
        let (s, _) = api
            .call(
                "POST",
                &format!("/api/v1/webhooks/{id}/deliveries/{did}/resend"),
                None,
            )
            .await;
        assert_eq!(s, 202);
        wait_for("the resend", LONG, || async { rx.count() > before }).await;
        let got = rx.received().last().unwrap().clone();
        if got.headers["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .count()
            == 2
        {
            again = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = again.expect("a resend signed with both secrets");
    assert_eq!(again.webhook_id(), first.webhook_id());
    again.verify(&new_secret).unwrap();
    again.verify(&old_secret).unwrap();
    let sends = rx.count();
    wait_for("every attempt recorded", LONG, || async {
        let (_, d) = api
            .call(
                "GET",
                &format!("/api/v1/webhooks/{id}/deliveries/{did}"),
                None,
            )
            .await;
        d["attempts"].as_array().map(Vec::len) == Some(sends)
    })
    .await;
    let (_, d) = api
        .call(
            "GET",
            &format!("/api/v1/webhooks/{id}/deliveries/{did}"),
            None,
        )
        .await;
    let numbers: Vec<i64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (1..=sends as i64).collect::<Vec<_>>(),
        "attempt numbers continue across resends"
    );

    let (s, st) = api
        .call(
            "GET",
            &format!("/api/v1/webhooks/{id}/stats?window=1h"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(st["by_status"]["succeeded"], 1);
    assert_eq!(st["success_rate"], 1.0);
    assert_eq!(st["attempts"].as_u64(), Some(sends as u64));
    assert!(st["latency_ms_p50"].is_number());
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_validates_and_idempotency_key_dedupes() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let api = Api::new(&base, ADMIN_KEY);
    let rx = Receiver::start(Behaviour::Ok).await;
    api.call("POST", "/api/v1/webhooks", Some(webhook(&rx.url, &["*"])))
        .await;

    let send = |key: &'static str, body: Value| {
        let api = api.clone();
        async move {
            let r = api
                .http
                .post(format!("{}/api/v1/events", api.base))
                .bearer_auth(&api.key)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let ev = json!({"type": "user.created", "data": {"user_id": 1, "username": "a"}});
    let (s1, a) = send("order-1", ev.clone()).await;
    let (s2, b) = send("order-1", ev.clone()).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(a["id"], b["id"], "same key, same event id");
    let (_, marker) = api.call("POST", "/api/v1/events", Some(json!({"type": "job.failed", "data": {"job_id": 1, "job_type": "t", "error_message": "e"}}))).await;
    wait_for("the marker", LONG, || async {
        rx.received()
            .iter()
            .any(|r| r.webhook_id() == marker["id"].as_str().unwrap())
    })
    .await;
    assert_eq!(
        rx.received()
            .iter()
            .filter(|r| r.webhook_id() == a["id"].as_str().unwrap())
            .count(),
        1
    );

    let bad: Vec<(Value, u16, &str)> = vec![
        (json!({"data": {}}), 422, "type"),
        (json!({"type": "user.created"}), 422, "data"),
        (json!({"type": "user.created", "data": [1]}), 422, "data"),
        (json!({"type": "no.such", "data": {}}), 422, "type"),
        (
            json!({"type": "user.created", "data": {}, "timestamp": "noon"}),
            422,
            "timestamp",
        ),
    ];
    for (body, status, field) in bad {
        let (s, e) = api.call("POST", "/api/v1/events", Some(body.clone())).await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (status, Some(field)),
            "{body}: {e}"
        );
    }
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_ingest_requests_are_delivered_or_never_acknowledged() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let api = Api::new(&base, ADMIN_KEY);
    let rx = Receiver::start(Behaviour::Ok).await;
    api.call("POST", "/api/v1/webhooks", Some(webhook(&rx.url, &["*"])))
        .await;

    // Abort points are spread over twice the typical request time, so that some
    // requests finish and others are cut at every stage of their handling.
    let mut warm = Vec::new();
    for _ in 0..4 {
        let mut round = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let api = api.clone();
            round.spawn(async move {
                let t = std::time::Instant::now();
                api.call(
                    "POST",
                    "/api/v1/events",
                    Some(json!({"type": "user.created", "data": {"user_id": 0, "username": "w"}})),
                )
                .await;
                t.elapsed()
            });
        }
        warm.extend(round.join_all().await);
    }
    warm.sort();
    let window = (warm[warm.len() / 2] * 2).max(Duration::from_millis(2));
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000u32 {
        let api = api.clone();
        let sem = sem.clone();
        let abort_after = window.mul_f64(rand::random::<f64>());
        tasks.spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            let id = format!("evt_abort_{i}");
            let body =
                json!({"id": id, "type": "user.created", "data": {"user_id": i, "username": "a"}});
            let req = api
                .http
                .post(format!("{}/api/v1/events", api.base))
                .bearer_auth(&api.key)
                .json(&body)
                .send();
            match tokio::time::timeout(abort_after, req).await {
                Ok(Ok(r)) if r.status().as_u16() == 202 => Some(id),
                _ => None,
            }
        });
    }
    let acked: HashSet<String> = tasks.join_all().await.into_iter().flatten().collect();
    wait_for(
        "every acknowledged event to be delivered",
        Duration::from_secs(120),
        || async {
            let got: HashSet<String> = rx.received().iter().map(|r| r.webhook_id()).collect();
            acked.iter().all(|id| got.contains(id))
        },
    )
    .await;
    eprintln!(
        "{} of 1000 requests were acknowledged before their abort (window {window:?})",
        acked.len()
    );
    assert!(
        !acked.is_empty() && acked.len() < 1000,
        "the aborts must cut some requests and spare others: {}",
        acked.len()
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_is_a_503_not_a_hang() {
    let env = TestEnv::new(&[("amqp.url", "amqp://guest:guest@127.0.0.1:1/%2f")]).await;
    let (app, base) = env.start_api(Roles::NONE).await;
    let api = Api::new(&base, ADMIN_KEY);
    let (s, e) = api
        .call(
            "POST",
            "/api/v1/events",
            Some(json!({"type": "user.created", "data": {"user_id": 1, "username": "u"}})),
        )
        .await;
    assert_eq!(s, 503, "{e}");
    assert_eq!(e["error"]["code"], "unavailable");
    // A webhook is not stored without its queue (declared before the row).
    let (s, e) = api
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": "https://example.com/h", "events": ["user.created"]})),
        )
        .await;
    assert_eq!(s, 503, "{e}");
    // Reads that need only Postgres still work.
    let (s, list) = api.call("GET", "/api/v1/webhooks", None).await;
    assert_eq!(s, 200);
    assert_eq!(list["data"], json!([]), "nothing stored");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_served_and_docs_page_loads() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::NONE).await;
    let http = reqwest::Client::new();
    let doc: Value = http
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/webhooks"]["post"].is_object());
    let page = http.get(format!("{base}/docs")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("/api/v1/openapi.json"));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_and_key_commands_feed_the_api() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::NONE).await;
    let run = |args: &[&str]| {
        let mut c = std::process::Command::new(hookfleet_tests::hookfleet_bin());
        c.args(args)
            .env("HOOKFLEET__DATABASE__URL", &env.db_url)
            .env("HOOKFLEET__AMQP__URL", &env.amqp_url);
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let t: Value = serde_json::from_str(&run(&["tenant", "create", "cli-co"])).unwrap();
    assert_eq!(t["id"], "cli-co");
    let k: Value = serde_json::from_str(&run(&["key", "create", "cli-co"])).unwrap();
    let api = Api::new(&base, k["key"].as_str().unwrap());
    let (s, w) = api
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(webhook("https://example.com/cli", &["*"])),
        )
        .await;
    assert_eq!((s, w["tenant_id"].as_str()), (201, Some("cli-co")));
    run(&["key", "revoke", k["id"].as_str().unwrap()]);
    assert_eq!(api.call("GET", "/api/v1/webhooks", None).await.0, 401);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_history_filters_by_time() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let api = Api::new(&base, ADMIN_KEY);
    let rx = Receiver::start(Behaviour::Ok).await;
    let (_, w) = api
        .call("POST", "/api/v1/webhooks", Some(webhook(&rx.url, &["*"])))
        .await;
    let id = w["id"].as_str().unwrap();
    for t in ["user.created", "job.failed", "match.found"] {
        api.call(
            "POST",
            &format!("/api/v1/webhooks/{id}/test"),
            Some(json!({"event_type": t})),
        )
        .await;
    }
    wait_for("three deliveries", LONG, || async { rx.count() == 3 }).await;
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let q = |since: time::OffsetDateTime, until: time::OffsetDateTime| {
        format!(
            "/api/v1/webhooks/{id}/deliveries?since={}&until={}",
            fmt(since),
            fmt(until)
        )
        .replace('+', "%2B")
    };
    let (_, all) = api
        .call(
            "GET",
            &q(
                now - time::Duration::hours(1),
                now + time::Duration::hours(1),
            ),
            None,
        )
        .await;
    let types: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["match.found", "job.failed", "user.created"],
        "newest first"
    );
    let (_, none) = api
        .call(
            "GET",
            &q(
                now + time::Duration::hours(1),
                now + time::Duration::hours(2),
            ),
            None,
        )
        .await;
    assert!(none["data"].as_array().unwrap().is_empty());
    let (s, e) = api
        .call(
            "GET",
            &format!("/api/v1/webhooks/{id}/deliveries?since=yesterday"),
            None,
        )
        .await;
    assert_eq!((s, e["error"]["field"].as_str()), (422, Some("since")));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_types_are_added_validated_and_deprecated() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let admin = Api::new(&base, ADMIN_KEY);
    let schema = json!({"type": "object", "required": ["invoice_id", "amount"], "properties": {"invoice_id": {"type": "string"}, "amount": {"type": "number"}}});
    let bad: Vec<(Value, &str)> = vec![
        (json!({"name": "invoice paid", "schema": schema}), "name"),
        (
            json!({"name": "invoice.paid", "schema": {"type": 7}}),
            "schema",
        ),
        (
            json!({"name": "invoice.paid", "schema": schema, "example": {"invoice_id": "i1"}}),
            "example",
        ),
    ];
    for (body, field) in bad {
        let (s, e) = admin
            .call("POST", "/api/v1/webhooks/events", Some(body.clone()))
            .await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}: {e}"
        );
    }
    let (s, t) = admin
        .call("POST", "/api/v1/webhooks/events", Some(json!({"name": "invoice.paid", "description": "An invoice was paid.", "schema": schema, "example": {"invoice_id": "i1", "amount": 9.5}})))
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(
        admin
            .call(
                "POST",
                "/api/v1/webhooks/events",
                Some(json!({"name": "invoice.paid"}))
            )
            .await
            .0,
        409
    );
    let (_, kt) = {
        admin
            .call("POST", "/api/v1/tenants", Some(json!({"id": "t1"})))
            .await;
        admin
            .call("POST", "/api/v1/tenants/t1/api-keys", None)
            .await
    };
    let tenant = admin.with_key(kt["key"].as_str().unwrap());
    assert_eq!(
        tenant
            .call(
                "POST",
                "/api/v1/webhooks/events",
                Some(json!({"name": "x.y"}))
            )
            .await
            .0,
        403
    );

    // Usable at once for subscriptions, ingest and routing.
    let rx = Receiver::start(Behaviour::Ok).await;
    let (s, _) = admin
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(webhook(&rx.url, &["invoice.paid"])),
        )
        .await;
    assert_eq!(s, 201);
    wait_for(
        "the new type to be accepted and delivered",
        LONG,
        || async {
            admin
                .call(
                    "POST",
                    "/api/v1/events",
                    Some(
                        json!({"type": "invoice.paid", "data": {"invoice_id": "i1", "amount": 3}}),
                    ),
                )
                .await
                .0
                == 202
                && rx.count() >= 1
        },
    )
    .await;
    let (s, e) = admin
        .call(
            "POST",
            "/api/v1/events",
            Some(json!({"type": "invoice.paid", "data": {"invoice_id": "i1", "amount": "3"}})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("data")),
        "{e}"
    );
    assert!(
        e["error"]["message"].as_str().unwrap().contains("/amount"),
        "{e}"
    );

    // Deprecated: refused from then on.
    let (s, t) = admin
        .call(
            "PATCH",
            "/api/v1/webhooks/events/invoice.paid",
            Some(json!({"deprecated": true})),
        )
        .await;
    assert_eq!((s, t["deprecated"].as_bool()), (200, Some(true)));
    wait_for("the deprecated type to be refused", LONG, || async {
        admin
            .call(
                "POST",
                "/api/v1/events",
                Some(json!({"type": "invoice.paid", "data": {"invoice_id": "i2", "amount": 1}})),
            )
            .await
            .0
            == 422
    })
    .await;
    assert_eq!(
        admin
            .call(
                "PATCH",
                "/api/v1/webhooks/events/nope.nope",
                Some(json!({"deprecated": true}))
            )
            .await
            .0,
        404
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_is_a_503_not_a_hang() {
    // The API's database is a closed port: every call that needs it answers 503
    // with Retry-After, quickly, and the process stays up.
    let env = TestEnv::new(&[("database.url", "postgres://postgres@127.0.0.1:1/hookfleet")]).await;
    let (app, base) = env.start_api(Roles::NONE).await;
    let api = Api::new(&base, ADMIN_KEY);
    let calls: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", "/api/v1/webhooks", None),
        (
            "POST",
            "/api/v1/webhooks",
            Some(webhook("https://example.com/h", &["*"])),
        ),
        ("GET", "/api/v1/webhooks/events", None),
        (
            "POST",
            "/api/v1/events",
            Some(json!({"type": "user.created", "data": {"user_id": 1, "username": "u"}})),
        ),
        ("POST", "/api/v1/tenants", Some(json!({"id": "acme"}))),
    ];
    for (m, path, body) in calls {
        let started = std::time::Instant::now();
        let resp = api
            .http
            .request(m.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(ADMIN_KEY)
            .json(&body.unwrap_or(Value::Null))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 503, "{m} {path}");
        assert!(resp.headers().contains_key("retry-after"), "{m} {path}");
        let e: Value = resp.json().await.unwrap();
        assert_eq!(e["error"]["code"], "unavailable", "{m} {path}: {e}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{m} {path} answered without hanging"
        );
    }
    app.stop().await.unwrap();
}

/// Found by schemathesis against `/api/v1/openapi.json`: a 422 names the key
/// at fault; a NUL or non-UTF-8 byte in a path parameter (API and portal) or a
/// portal query parameter is a 4xx, never a 500 with an ERROR in the log;
/// every `/api` error is JSON, even the ones axum answers itself; ingest wants
/// JSON; hop-by-hop and proxy headers are not custom webhook headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_input_edge_cases_name_their_field_and_answer_json() {
    let env = TestEnv::new(&[]).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let (proc, _) = env.spawn_with_ops(
        &["api"],
        &[
            ("HOOKFLEET__API__LISTEN", listen.as_str()),
            ("HOOKFLEET__API__ADMIN_KEY", ADMIN_KEY),
        ],
    );
    wait_for("the API", LONG, || async {
        reqwest::get(format!("{base}/api/v1/openapi.json"))
            .await
            .is_ok()
    })
    .await;
    let api = Api::new(&base, ADMIN_KEY);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (s, w) = api
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": "https://example.com/h", "events": ["*"]})),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    let id = w["id"].as_str().unwrap().to_owned();

    // The field is the offending key or parameter.
    let field_cases = [
        (
            "GET",
            "/api/v1/webhooks?is_active=maybe".to_owned(),
            None,
            "is_active",
        ),
        (
            "GET",
            "/api/v1/webhooks?limit=many".to_owned(),
            None,
            "limit",
        ),
        (
            "POST",
            format!("/api/v1/webhooks/{id}/secret/rotate"),
            Some(json!({"grace": 5})),
            "grace",
        ),
        (
            "POST",
            format!("/api/v1/webhooks/{id}/secret/rotate"),
            Some(json!({"grace_period_seconds": "soon"})),
            "grace_period_seconds",
        ),
        (
            "POST",
            format!("/api/v1/webhooks/{id}/test"),
            Some(json!({"": "user.created"})),
            "body",
        ),
        (
            "PATCH",
            format!("/api/v1/webhooks/{id}"),
            Some(json!({"headers": {"X-A": 7}})),
            "headers.X-A",
        ),
        (
            "PATCH",
            format!("/api/v1/webhooks/{id}"),
            Some(json!({"is_active": "true"})),
            "is_active",
        ),
    ];
    for (m, path, body, field) in field_cases {
        let (s, e) = api.call(m, &path, body.clone()).await;
        assert_eq!(s, 422, "{m} {path} {body:?}: {e}");
        assert_eq!(e["error"]["field"], field, "{m} {path} {body:?}: {e}");
    }

    // NUL (and non-UTF-8) in path parameters: a 422 naming the parameter.
    let nul_cases = [
        ("GET", "/api/v1/webhooks/ep%00x".to_owned(), "id"),
        ("PATCH", "/api/v1/webhooks/ep%00x".to_owned(), "id"),
        ("DELETE", "/api/v1/webhooks/ep%00x".to_owned(), "id"),
        ("GET", "/api/v1/webhooks/%FF".to_owned(), "id"),
        (
            "GET",
            format!("/api/v1/webhooks/{id}/deliveries/dlv%00x"),
            "delivery_id",
        ),
        (
            "POST",
            format!("/api/v1/webhooks/{id}/deliveries/dlv%00x/resend"),
            "delivery_id",
        ),
        (
            "GET",
            "/api/v1/dead-letters/dlv%00x".to_owned(),
            "delivery_id",
        ),
        ("POST", "/api/v1/tenants/a%00b/api-keys".to_owned(), "id"),
        ("POST", "/api/v1/tenants/a%00b/portal-link".to_owned(), "id"),
        ("DELETE", "/api/v1/api-keys/key%00x".to_owned(), "key_id"),
        ("PATCH", "/api/v1/webhooks/events/a%00b".to_owned(), "name"),
    ];
    for (m, path, field) in nul_cases {
        let body = (m != "GET" && m != "DELETE").then(|| json!({}));
        let (s, e) = api.call(m, &path, body).await;
        assert_eq!(s, 422, "{m} {path}: {e}");
        assert_eq!(e["error"]["field"], field, "{m} {path}: {e}");
    }
    // …and in the portal: its "Not found" page.
    let (_, link) = api
        .call("POST", "/api/v1/tenants", Some(json!({"id": "acme"})))
        .await;
    assert_eq!(link["id"], "acme");
    let (_, link) = api
        .call("POST", "/api/v1/tenants/acme/portal-link", None)
        .await;
    let r = http
        .get(link["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    for path in [
        "/portal/webhooks/ep%00x",
        "/portal/webhooks/ep%00x/edit",
        "/portal/deliveries/dlv%00x?webhook=ep_1",
        "/portal/deliveries?webhook=ep%00x",
        "/portal/dead-letters?webhook=ep%00x",
        "/portal/webhooks/%FF",
    ] {
        let r = http
            .get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }

    // Errors axum answers itself are JSON too.
    let big = http
        .post(format!("{base}/api/v1/webhooks/{id}/secret/rotate"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body(vec![b' '; 400 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let e: Value = big.json().await.expect("a JSON 413");
    assert_eq!(e["error"]["code"], "payload_too_large");
    let r = http
        .put(format!("{base}/api/v1/webhooks"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().contains_key("allow"));
    let e: Value = r.json().await.expect("a JSON 405");
    assert_eq!(e["error"]["code"], "method_not_allowed");

    // Ingest wants application/json (parameters allowed): 415 otherwise.
    let event = json!({"type": "user.created", "data": {"user_id": 1, "username": "u"}});
    for ctype in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
    ] {
        let r = http
            .post(format!("{base}/api/v1/events"))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", ctype)
            .body(event.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{ctype}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "unsupported_media_type");
    }
    let r = http
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(ADMIN_KEY)
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415, "without a Content-Type");
    let r = http
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    // Hop-by-hop, framing and proxy headers are refused, naming `headers`
    // and the key.
    for name in [
        "Connection",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Upgrade",
        "Expect",
        "Proxy-Authorization",
        "Proxy-Connection",
        "Transfer-Encoding",
        "Host",
        "Content-Length",
    ] {
        let (s, e) = api
            .call(
                "PATCH",
                &format!("/api/v1/webhooks/{id}"),
                Some(json!({"headers": {name: "x"}})),
            )
            .await;
        assert_eq!(s, 422, "{name}: {e}");
        assert_eq!(e["error"]["field"], "headers");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(name),
            "{e}"
        );
    }
    let (s, e) = api
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"headers": {"X-Team": "payments"}})),
        )
        .await;
    assert_eq!(s, 200, "{e}");

    let log = std::fs::read_to_string(&proc.log).unwrap();
    assert!(log.contains("API listening"), "the log was read: {log}");
    assert!(!log.contains("ERROR"), "{log}");
}
