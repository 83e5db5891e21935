//! The operator acts for any tenant (issue #18 part 1): the admin key with
//! `Hookfleet-Tenant` works in that tenant's scope, tenants are listed, shown
//! and deleted, their keys listed, and the admin keys rotate without ending
//! portal sessions.
use hookfleet::Roles;
use hookfleet_tests::*;
use serde_json::{json, Value};
use std::io::{Read as _, Write as _};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

async fn create_tenant(admin: &Api, id: &str) {
    let (s, b) = admin
        .call("POST", "/api/v1/tenants", Some(json!({ "id": id })))
        .await;
    assert_eq!(s, 201, "{b}");
}

async fn new_key(admin: &Api, tenant: &str) -> (String, String) {
    let (s, k) = admin
        .call("POST", &format!("/api/v1/tenants/{tenant}/api-keys"), None)
        .await;
    assert_eq!(s, 201, "{k}");
    (
        k["id"].as_str().unwrap().to_owned(),
        k["key"].as_str().unwrap().to_owned(),
    )
}

async fn create_webhook(api: &Api, url: &str) -> String {
    let body = json!({"url": url, "events": ["user.created"]});
    let (s, w) = api.call("POST", "/api/v1/webhooks", Some(body)).await;
    assert_eq!(s, 201, "{w}");
    w["id"].as_str().unwrap().to_owned()
}

fn field(body: &Value) -> &str {
    body["error"]["field"].as_str().unwrap_or("")
}

/// Sends `GET /api/v1/webhooks` with a raw `Hookfleet-Tenant` value (bytes
/// reqwest would refuse to send); returns the status line's code.
fn raw_status(base: &str, key: &str, tenant: &[u8]) -> u16 {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "GET /api/v1/webhooks HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\nHookfleet-Tenant: "
    )
    .into_bytes();
    req.extend_from_slice(tenant);
    req.extend_from_slice(b"\r\n\r\n");
    // The server may answer (and close) before it read everything.
    let _ = s.write_all(&req);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let head = String::from_utf8_lossy(&out);
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_acts_for_a_tenant_through_the_header_and_only_for_that_tenant() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let admin = Api::new(&base, ADMIN_KEY);
    create_tenant(&admin, "acme").await;
    create_tenant(&admin, "bad").await;
    let (rx_a, rx_b) = (
        Receiver::start(Behaviour::Ok).await,
        Receiver::start(Behaviour::Ok).await,
    );
    let (for_a, for_b) = (admin.for_tenant("acme"), admin.for_tenant("bad"));
    let wa = create_webhook(&for_a, &rx_a.url).await;
    let wb = create_webhook(&for_b, &rx_b.url).await;

    // Each webhook is its tenant's: the header scopes reads and writes.
    let (s, w) = for_a
        .call("GET", &format!("/api/v1/webhooks/{wa}"), None)
        .await;
    assert_eq!((s, w["tenant_id"].as_str()), (200, Some("acme")), "{w}");
    for (api, other) in [(&for_a, &wb), (&for_b, &wa)] {
        for (m, p) in [
            ("GET", format!("/api/v1/webhooks/{other}")),
            ("DELETE", format!("/api/v1/webhooks/{other}")),
            ("GET", format!("/api/v1/webhooks/{other}/deliveries")),
            ("GET", format!("/api/v1/webhooks/{other}/stats")),
            ("GET", format!("/api/v1/webhooks/{other}/secret")),
            ("POST", format!("/api/v1/webhooks/{other}/test")),
        ] {
            let body = (m == "POST").then(|| json!({"event_type": "user.created"}));
            let (s, b) = api.call(m, &p, body).await;
            assert_eq!(s, 404, "{m} {p}: {b}");
        }
    }
    let (s, l) = for_a.call("GET", "/api/v1/webhooks", None).await;
    assert_eq!(s, 200, "{l}");
    let ids: Vec<&str> = l["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [wa.as_str()]);
    // Without the header the admin key keeps the tenant-less scope.
    let (s, l) = admin.call("GET", "/api/v1/webhooks", None).await;
    assert_eq!((s, l["data"].as_array().unwrap().len()), (200, 0), "{l}");
    let (s, _) = admin
        .call("GET", &format!("/api/v1/webhooks/{wa}"), None)
        .await;
    assert_eq!(s, 404);

    // Events ingested for a tenant are that tenant's, with the same id in both.
    let ev = |t: Option<&str>| {
        let mut e = json!({"id": "same-1", "type": "user.created", "data": {"user_id": 1, "username": "u"}});
        if let Some(t) = t {
            e["tenant_id"] = json!(t);
        }
        e
    };
    for api in [&for_a, &for_b] {
        let (s, b) = api.call("POST", "/api/v1/events", Some(ev(None))).await;
        assert_eq!(s, 202, "{b}");
    }
    let (s, b) = for_a
        .call("POST", "/api/v1/events", Some(ev(Some("bad"))))
        .await;
    assert_eq!((s, field(&b)), (422, "tenant_id"), "{b}");
    wait_for("one delivery each", LONG, || async {
        rx_a.count() == 1 && rx_b.count() == 1
    })
    .await;
    assert_eq!(rx_a.received()[0].json()["tenant_id"], "acme");
    assert_eq!(rx_b.received()[0].json()["tenant_id"], "bad");
    let (s, l) = for_a
        .call("GET", &format!("/api/v1/webhooks/{wa}/deliveries"), None)
        .await;
    assert_eq!((s, l["data"].as_array().unwrap().len()), (200, 1), "{l}");
    // Dead letters: a filter naming another tenant than the header is refused.
    let (s, b) = for_a
        .call("GET", "/api/v1/dead-letters?tenant_id=bad", None)
        .await;
    assert_eq!(s, 403, "{b}");
    // Admin-only calls still work with the header.
    let (s, b) = for_a
        .call("POST", "/api/v1/tenants", Some(json!({"id": "third"})))
        .await;
    assert_eq!(s, 201, "{b}");

    // A tenant key: its own tenant in the header is fine, another is 403.
    let (_, key_a) = new_key(&admin, "acme").await;
    let tenant_a = admin.with_key(&key_a);
    let (s, _) = tenant_a
        .for_tenant("acme")
        .call("GET", &format!("/api/v1/webhooks/{wa}"), None)
        .await;
    assert_eq!(s, 200);
    for path in ["/api/v1/webhooks", &format!("/api/v1/webhooks/{wb}")] {
        let (s, b) = tenant_a.for_tenant("bad").call("GET", path, None).await;
        assert_eq!(s, 403, "{path}: {b}");
    }
    let (s, b) = tenant_a
        .for_tenant("nope")
        .call("GET", "/api/v1/webhooks", None)
        .await;
    assert_eq!(s, 403, "{b}");

    // Unknown and invalid tenants.
    let (s, b) = admin
        .for_tenant("nope")
        .call("GET", "/api/v1/webhooks", None)
        .await;
    assert_eq!(s, 404, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("tenant"),
        "{b}"
    );
    for bad in ["a b", "acme/x", &"a".repeat(65), "", "acme%00"] {
        let (s, b) = admin
            .for_tenant(bad)
            .call("GET", "/api/v1/webhooks", None)
            .await;
        assert_eq!((s, field(&b)), (422, "Hookfleet-Tenant"), "{bad:?}: {b}");
    }
    // Unauthenticated with a bad header: still 401 first.
    let (s, _) = admin
        .with_key("wrong-key")
        .for_tenant("a b")
        .call("GET", "/api/v1/webhooks", None)
        .await;
    assert_eq!(s, 401);
    // Bytes no client library sends: NUL, non-ASCII, a huge value, twice.
    let base2 = base.clone();
    let statuses = tokio::task::spawn_blocking(move || {
        [
            raw_status(&base2, ADMIN_KEY, b"ac\0me"),
            raw_status(&base2, ADMIN_KEY, "acmé".as_bytes()),
            raw_status(&base2, ADMIN_KEY, &vec![b'a'; 200_000]),
            raw_status(&base2, ADMIN_KEY, b"acme\r\nHookfleet-Tenant: bad"),
            raw_status(&base2, ADMIN_KEY, b"acme"),
        ]
    })
    .await
    .unwrap();
    for s in &statuses[..4] {
        assert!((400..500).contains(s), "{statuses:?}");
    }
    assert_eq!(statuses[3..], [422, 200], "{statuses:?}");
    app.stop().await.unwrap();
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn portal_link(api: &Api, tenant: &str) -> String {
    let (s, l) = api
        .call(
            "POST",
            &format!("/api/v1/tenants/{tenant}/portal-link"),
            None,
        )
        .await;
    assert_eq!(s, 201, "{l}");
    l["url"].as_str().unwrap().to_owned()
}

/// Opens a portal link; the session cookie (`name=value`).
async fn open_link(http: &reqwest::Client, link: &str) -> String {
    let r = http.get(link).send().await.unwrap();
    assert_eq!(r.status(), 303, "{link}");
    let c = r.headers()["set-cookie"].to_str().unwrap();
    c.split(';').next().unwrap().to_owned()
}

/// The portal's home with a session cookie: its status.
async fn portal_home(http: &reqwest::Client, base: &str, cookie: &str) -> u16 {
    http.get(format!("{base}/portal/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn ids(page: &Value) -> Vec<&str> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_listed_shown_and_deleted_with_their_webhooks_keys_and_sessions() {
    let env = TestEnv::new(&[]).await;
    // A router and no worker: routed events wait in the webhooks' queues.
    let (app, base) = env.start_api(Roles::ROUTER).await;
    let admin = Api::new(&base, ADMIN_KEY);
    for t in ["acme", "beta", "gamma"] {
        create_tenant(&admin, t).await;
    }
    let (for_a, for_b) = (admin.for_tenant("acme"), admin.for_tenant("beta"));
    let wa1 = create_webhook(&for_a, "http://127.0.0.1:9/a1").await;
    let wa2 = create_webhook(&for_a, "http://127.0.0.1:9/a2").await;
    let wb = create_webhook(&for_b, "http://127.0.0.1:9/b").await;
    let (kid_a, key_a) = new_key(&admin, "acme").await;
    let (kid_old, key_old) = new_key(&admin, "acme").await;
    let (_, key_b) = new_key(&admin, "beta").await;
    let (s, _) = admin
        .call("DELETE", &format!("/api/v1/api-keys/{kid_old}"), None)
        .await;
    assert_eq!(s, 204);

    // Pages of tenants, by id.
    let (s, p1) = admin.call("GET", "/api/v1/tenants?limit=2", None).await;
    assert_eq!((s, ids(&p1)), (200, vec!["acme", "beta"]), "{p1}");
    let (s, p2) = admin
        .call(
            "GET",
            &format!(
                "/api/v1/tenants?limit=2&cursor={}",
                p1["next_cursor"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!((s, ids(&p2)), (200, vec!["gamma"]), "{p2}");
    assert!(p2["next_cursor"].is_null());
    let (s, b) = admin.call("GET", "/api/v1/tenants?limit=x", None).await;
    assert_eq!((s, field(&b)), (422, "limit"), "{b}");
    let (s, t) = admin.call("GET", "/api/v1/tenants/acme", None).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        (t["webhooks"].as_i64(), t["active_keys"].as_i64()),
        (Some(2), Some(1)),
        "{t}"
    );
    let (s, _) = admin.call("GET", "/api/v1/tenants/nope", None).await;
    assert_eq!(s, 404);

    // A tenant key manages no tenant, not even its own.
    let tenant_a = admin.with_key(&key_a);
    for (m, p) in [
        ("GET", "/api/v1/tenants"),
        ("GET", "/api/v1/tenants/acme"),
        ("GET", "/api/v1/tenants/acme/api-keys"),
        ("DELETE", "/api/v1/tenants/beta"),
        ("DELETE", "/api/v1/tenants/acme"),
    ] {
        let (s, b) = tenant_a.call(m, p, None).await;
        assert_eq!(s, 403, "{m} {p}: {b}");
    }

    // The key list: ids, dates, last use, revocation; never a key or a hash.
    wait_for("the key's last use recorded", LONG, || async {
        env.count(&format!(
            "SELECT count(*) FROM api_keys WHERE id = '{kid_a}' AND last_used_at IS NOT NULL"
        ))
        .await
            == 1
    })
    .await;
    let resp = admin
        .http
        .get(format!("{base}/api/v1/tenants/acme/api-keys"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let hash = env
        .count_text(&format!(
            "SELECT key_hash FROM api_keys WHERE id = '{kid_a}'"
        ))
        .await;
    for secret in [
        key_a.as_str(),
        key_old.as_str(),
        hash.as_str(),
        "hfk_",
        "key_hash",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let keys: Value = serde_json::from_str(&text).unwrap();
    let mut listed: Vec<(&str, bool, bool)> = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap(),
                k["revoked"].as_bool().unwrap(),
                k["last_used_at"].is_string(),
            )
        })
        .collect();
    listed.sort();
    let mut want = vec![
        (kid_a.as_str(), false, true),
        (kid_old.as_str(), true, false),
    ];
    want.sort();
    assert_eq!(listed, want, "{keys}");
    let (s, _) = admin
        .call("GET", "/api/v1/tenants/nope/api-keys", None)
        .await;
    assert_eq!(s, 404);

    // Two events for acme wait in its webhooks' queues; a portal session is open.
    for n in 0..2 {
        let ev = json!({"type": "user.created", "data": {"user_id": n, "username": "u"}});
        let (s, b) = for_a.call("POST", "/api/v1/events", Some(ev)).await;
        assert_eq!(s, 202, "{b}");
    }
    let queues = [wa1.as_str(), wa2.as_str()].map(hookfleet_broker::names::endpoint_queue);
    wait_for("the events in acme's queues", LONG, || async {
        env.queue_len(&queues[0]).await == 2 && env.queue_len(&queues[1]).await == 2
    })
    .await;
    let http = no_redirects();
    let session = open_link(&http, &portal_link(&admin, "acme").await).await;
    let unused_link = portal_link(&admin, "acme").await;
    assert_eq!(portal_home(&http, &base, &session).await, 200);
    let dead_before = env.dead_total().await;

    let (s, d) = admin.call("DELETE", "/api/v1/tenants/acme", None).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(
        (
            d["webhooks_deleted"].as_u64(),
            d["dead_lettered"].as_u64(),
            d["keys_revoked"].as_u64(),
            d["sessions_ended"].as_u64()
        ),
        (Some(2), Some(4), Some(1), Some(1)),
        "{d}"
    );
    assert_eq!(env.dead_total().await - dead_before, 4);
    for q in &queues {
        assert!(!env.queue_exists(q).await, "{q}");
    }
    // Gone: the tenant, its webhooks, its key, its session.
    assert_eq!(admin.call("GET", "/api/v1/tenants/acme", None).await.0, 404);
    assert_eq!(
        admin.call("DELETE", "/api/v1/tenants/acme", None).await.0,
        404
    );
    assert_eq!(for_a.call("GET", "/api/v1/webhooks", None).await.0, 404);
    assert_eq!(tenant_a.call("GET", "/api/v1/webhooks", None).await.0, 401);
    assert_eq!(portal_home(&http, &base, &session).await, 303);
    assert_eq!(
        env.count("SELECT count(*) FROM endpoints WHERE tenant_id = 'acme'")
            .await,
        0
    );
    // The other tenants are untouched.
    let (s, w) = admin
        .with_key(&key_b)
        .call("GET", &format!("/api/v1/webhooks/{wb}"), None)
        .await;
    assert_eq!(s, 200, "{w}");
    let (s, p) = admin.call("GET", "/api/v1/tenants", None).await;
    assert_eq!((s, ids(&p)), (200, vec!["beta", "gamma"]));

    // Created again under the same id, it is another tenant: the old key and
    // an unused link of the old one open nothing.
    create_tenant(&admin, "acme").await;
    assert_eq!(tenant_a.call("GET", "/api/v1/webhooks", None).await.0, 401);
    let r = http.get(&unused_link).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("deleted"));
    let (s, l) = admin
        .for_tenant("acme")
        .call("GET", "/api/v1/webhooks", None)
        .await;
    assert_eq!(
        (s, l["data"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{l}"
    );
    app.stop().await.unwrap();
}

/// A real `hookfleet api` with `env` (admin and session keys); its base URL
/// once it answers.
async fn api_with(env: &TestEnv, vars: &[(&str, &str)]) -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut all = vec![("HOOKFLEET__API__LISTEN", addr.as_str())];
    all.extend_from_slice(vars);
    let (p, _ops) = env.spawn_with_ops(&["api"], &all);
    let base = format!("http://{addr}");
    let probe = format!("{base}/api/v1/openapi.json");
    wait_for("the API to answer", LONG, || async {
        reqwest::get(&probe).await.is_ok()
    })
    .await;
    (p, base)
}

const OLD: &str = "old-admin-key-0123456789";
const NEW: &str = "new-admin-key-0123456789";
const SESSIONS: &str = "session-key-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_keys_rotate_without_ending_links_or_sessions() {
    let env = TestEnv::new(&[]).await;
    let http = no_redirects();
    // Before: the old key alone; sessions have keys of their own.
    let (_before, b1) = api_with(
        &env,
        &[
            ("HOOKFLEET__API__ADMIN_KEY", OLD),
            ("HOOKFLEET__API__SESSION_KEYS", SESSIONS),
        ],
    )
    .await;
    let old = Api::new(&b1, OLD);
    create_tenant(&old, "acme").await;
    let session = open_link(&http, &portal_link(&old, "acme").await).await;
    let old_link_1 = portal_link(&old, "acme").await;
    let old_link_2 = portal_link(&old, "acme").await;

    // During: the new key first, the old one still listed.
    let (_during, b2) = api_with(
        &env,
        &[
            ("HOOKFLEET__API__ADMIN_KEYS", &format!("{NEW},{OLD}")),
            ("HOOKFLEET__API__SESSION_KEYS", SESSIONS),
        ],
    )
    .await;
    for key in [OLD, NEW] {
        let (s, b) = Api::new(&b2, key)
            .call("GET", "/api/v1/tenants", None)
            .await;
        assert_eq!(s, 200, "{b}");
    }
    assert_eq!(portal_home(&http, &b2, &session).await, 200);
    // A link the old key signed still opens the portal while it is listed.
    let link = old_link_1.replace(&b1, &b2);
    assert_ne!(link, old_link_1);
    let s2 = open_link(&http, &link).await;
    assert_eq!(portal_home(&http, &b2, &s2).await, 200);
    let new_link = portal_link(&Api::new(&b2, NEW), "acme").await;

    // After: the old key retired.
    let (_after, b3) = api_with(
        &env,
        &[
            ("HOOKFLEET__API__ADMIN_KEYS", NEW),
            ("HOOKFLEET__API__SESSION_KEYS", SESSIONS),
        ],
    )
    .await;
    let (s, _) = Api::new(&b3, OLD)
        .call("GET", "/api/v1/tenants", None)
        .await;
    assert_eq!(s, 401);
    assert_eq!(
        Api::new(&b3, NEW)
            .call("GET", "/api/v1/tenants", None)
            .await
            .0,
        200
    );
    // The session opened under the old key goes on: sessions have their keys.
    assert_eq!(portal_home(&http, &b3, &session).await, 200);
    // The new key's link opens; the retired key's link is refused.
    let s3 = open_link(&http, &new_link.replace(&b2, &b3)).await;
    assert_eq!(portal_home(&http, &b3, &s3).await, 200);
    let r = http.get(old_link_2.replace(&b1, &b3)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("not valid"));

    // Without session keys, sessions are the first admin key's: they do not
    // survive a change of it (the warning at startup says so).
    let (_derived, b4) = api_with(&env, &[("HOOKFLEET__API__ADMIN_KEYS", NEW)]).await;
    assert_eq!(portal_home(&http, &b4, &session).await, 303);
    let s4 = open_link(&http, &portal_link(&Api::new(&b4, NEW), "acme").await).await;
    assert_eq!(portal_home(&http, &b4, &s4).await, 200);
    let (_rotated, b5) = api_with(
        &env,
        &[("HOOKFLEET__API__ADMIN_KEYS", &format!("{OLD},{NEW}"))],
    )
    .await;
    assert_eq!(portal_home(&http, &b5, &s4).await, 303);

    // Both forms set: a configuration error naming both keys.
    let out = env
        .command(&["api"])
        .env("HOOKFLEET__API__ADMIN_KEY", OLD)
        .env("HOOKFLEET__API__ADMIN_KEYS", NEW)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("api.admin_keys") && err.contains("HOOKFLEET__API__ADMIN_KEY"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_shows_and_deletes_tenants_and_lists_their_keys() {
    let env = TestEnv::new(&[]).await;
    let run = |args: &[&str]| -> (Option<i32>, String, String) {
        let out = env.command(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let json = |args: &[&str]| -> Value {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        serde_json::from_str(&out).unwrap()
    };
    for t in ["cli-a", "cli-b"] {
        json(&["tenant", "create", t]);
    }
    let k = json(&["key", "create", "cli-a"]);
    let page = json(&["tenant", "list", "--limit", "1"]);
    assert_eq!(ids(&page), ["cli-a"]);
    let page = json(&[
        "tenant",
        "list",
        "--cursor",
        page["next_cursor"].as_str().unwrap(),
    ]);
    assert_eq!(ids(&page), ["cli-b"]);
    let t = json(&["tenant", "get", "cli-a"]);
    assert_eq!(
        (t["webhooks"].as_i64(), t["active_keys"].as_i64()),
        (Some(0), Some(1))
    );
    let (_, out, _) = run(&["tenant", "keys", "cli-a"]);
    assert!(!out.contains(k["key"].as_str().unwrap()), "{out}");
    let keys: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ids(&keys), [k["id"].as_str().unwrap()]);
    let d = json(&["tenant", "delete", "cli-a"]);
    assert_eq!(d["keys_revoked"], 1, "{d}");
    let (code, _, err) = run(&["tenant", "get", "cli-a"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("tenant not found"), "{err}");
    let (code, _, err) = run(&["tenant", "delete", "cli-a"]);
    assert_ne!(code, Some(0), "{err}");
}
