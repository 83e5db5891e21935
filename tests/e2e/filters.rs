//! Content filters on endpoints (issue #18 part 3, docs/ARCHITECTURE.md §22):
//! routed by the real router, set and refused through the API, the CLI and
//! the portal, kept per tenant, and changed while the router runs.
use hookfleet::Roles;
use hookfleet_tests::*;
use serde_json::{json, Value};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// Creates a webhook through `api`; returns its id once the process serves
/// it (a worker consumes its queue, so the registry has it).
async fn webhook(env: &TestEnv, api: &Api, body: Value) -> String {
    let (s, w) = api.call("POST", "/api/v1/webhooks", Some(body)).await;
    assert_eq!(s, 201, "{w}");
    let id = w["id"].as_str().unwrap().to_owned();
    let queue = hookfleet_broker::names::endpoint_queue(&id);
    wait_for("the webhook in the registry", LONG, || async {
        env.consumers(&queue).await > 0
    })
    .await;
    id
}

fn user(id: Value, name: &str) -> Value {
    json!({"user_id": id, "username": name})
}

/// The `data.username` of every event a receiver got, sorted.
fn names(rx: &Receiver) -> Vec<String> {
    let mut v: Vec<String> = rx
        .received()
        .iter()
        .map(|r| r.json()["data"]["username"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

async fn deliveries_of(env: &TestEnv, endpoint: &str) -> i64 {
    env.count(&format!(
        "SELECT count(*) FROM deliveries WHERE endpoint_id = '{endpoint}'"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_webhook_receives_only_matching_events_and_an_unfiltered_one_all() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let admin = Api::new(&base, ADMIN_KEY);
    let (rx_f, rx_all) = (
        Receiver::start(Behaviour::Ok).await,
        Receiver::start(Behaviour::Ok).await,
    );
    let filter = json!({"and": [
        {"path": "data.username", "in": ["alice", "bob", "dave"]},
        {"path": "data.user_id", "gte": 10},
        {"not": {"path": "data.email", "exists": true}},
    ]});
    let filtered = webhook(
        &env,
        &admin,
        json!({"url": rx_f.url, "events": ["user.created"], "filter": filter}),
    )
    .await;
    let all = webhook(
        &env,
        &admin,
        json!({"url": rx_all.url, "events": ["user.created"]}),
    )
    .await;
    let (s, w) = admin
        .call("GET", &format!("/api/v1/webhooks/{filtered}"), None)
        .await;
    assert_eq!(s, 200, "{w}");
    assert_eq!(w["filter"], filter, "GET shows the filter as written");
    let (_, w) = admin
        .call("GET", &format!("/api/v1/webhooks/{all}"), None)
        .await;
    assert_eq!(w["filter"], Value::Null);

    let events = [
        user(json!(10), "alice"),                                        // passes
        user(json!(5), "alice"),                                         // user_id too small
        user(json!(20), "carol"),                                        // not in the list
        user(json!("50"), "bob"),                                        // a string is not a number
        json!({"user_id": 30, "username": "dave", "email": "d@x.test"}), // has an email
        user(json!(99), "bob"),                                          // passes
    ];
    env.publish_many("user.created", events, None).await;
    wait_for("every event at the unfiltered webhook", LONG, || async {
        rx_all.count() == 6
    })
    .await;
    // Each event's deliveries are stored in one transaction with it: every
    // delivery the filtered webhook will ever get exists by now.
    assert_eq!(deliveries_of(&env, &filtered).await, 2);
    assert_eq!(deliveries_of(&env, &all).await, 6);
    wait_for("the two matching events", LONG, || async {
        rx_f.count() == 2
    })
    .await;
    assert_eq!(names(&rx_f), ["alice", "bob"]);
    let got: Vec<i64> = rx_f
        .received()
        .iter()
        .map(|r| r.json()["data"]["user_id"].as_f64().unwrap() as i64)
        .collect();
    assert!(got.contains(&10) && got.contains(&99), "{got:?}");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_are_refused_with_422_naming_the_field() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::NONE).await;
    let admin = Api::new(&base, ADMIN_KEY);
    let create = |filter: Value| json!({"url": "https://example.com/h", "events": ["user.created"], "filter": filter});
    let mut deep = json!({"path": "data.a", "eq": 1});
    for _ in 0..8 {
        deep = json!({"not": deep});
    }
    let many: Vec<Value> = (0..70)
        .map(|i| json!({"path": "data.a", "eq": i}))
        .collect();
    let cases = [
        (
            json!({"and": [{"path": "data.region", "eq": "eu"}, {"path": "data.score", "gte": true}]}),
            "filter.and[1].gte",
            "expected a number",
        ),
        (
            json!({"path": "data.region", "like": "e%"}),
            "filter.like",
            "unknown operator",
        ),
        (
            json!({"path": "payload.region", "eq": "eu"}),
            "filter.path",
            "starting at data",
        ),
        (
            json!({"or": [{"path": "data.tags", "in": []}]}),
            "filter.or[0].in",
            "expected an array",
        ),
        // Refused before the filter is read, naming where it is.
        (
            json!({"path": "data.region", "eq": "e\u{0}u"}),
            "filter.eq",
            "\\u0000",
        ),
        (json!("data.region == eu"), "filter", "expected an object"),
        (
            deep,
            "filter.not.not.not.not.not.not.not.not",
            "nested too deeply",
        ),
        (json!({"or": many}), "filter.or[63]", "too many conditions"),
        (
            json!({"path": "data.a", "in": vec!["x".repeat(1000); 10]}),
            "filter",
            "bytes of JSON",
        ),
    ];
    for (filter, field, message) in &cases {
        let (s, e) = admin
            .call("POST", "/api/v1/webhooks", Some(create(filter.clone())))
            .await;
        assert_eq!(s, 422, "{filter}: {e}");
        assert_eq!(e["error"]["field"], *field, "{filter}: {e}");
        let m = e["error"]["message"].as_str().unwrap();
        assert!(m.contains(message), "{filter}: {e}");
    }
    assert_eq!(env.count("SELECT count(*) FROM endpoints").await, 0);

    // The same on a change, which leaves the webhook as it was.
    let good = json!({"path": "data.region", "eq": "eu"});
    let (s, w) = admin
        .call("POST", "/api/v1/webhooks", Some(create(good.clone())))
        .await;
    assert_eq!(s, 201, "{w}");
    let id = w["id"].as_str().unwrap();
    for (filter, field, _) in &cases[..4] {
        let (s, e) = admin
            .call(
                "PATCH",
                &format!("/api/v1/webhooks/{id}"),
                Some(json!({ "filter": filter })),
            )
            .await;
        assert_eq!(s, 422, "{filter}: {e}");
        assert_eq!(e["error"]["field"], *field, "{filter}: {e}");
    }
    let (_, w) = admin
        .call("GET", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(w["filter"], good);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_see_or_set_another_tenants_filter() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::NONE).await;
    let admin = Api::new(&base, ADMIN_KEY);
    let mut keys = Vec::new();
    for t in ["acme", "bad"] {
        let (s, _) = admin
            .call("POST", "/api/v1/tenants", Some(json!({ "id": t })))
            .await;
        assert_eq!(s, 201);
        let (s, k) = admin
            .call("POST", &format!("/api/v1/tenants/{t}/api-keys"), None)
            .await;
        assert_eq!(s, 201, "{k}");
        keys.push(admin.with_key(k["key"].as_str().unwrap()));
    }
    let (acme, bad) = (&keys[0], &keys[1]);
    let filter = json!({"path": "data.plan", "in": ["enterprise"]});
    let (s, w) = acme
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": "https://example.com/acme", "events": ["*"], "filter": filter})),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    let id = w["id"].as_str().unwrap();
    assert_eq!(w["filter"], filter);

    let path = format!("/api/v1/webhooks/{id}");
    let (s, e) = bad.call("GET", &path, None).await;
    assert_eq!(s, 404, "{e}");
    assert!(!e.to_string().contains("enterprise"), "{e}");
    for change in [
        json!({"filter": {"path": "data.plan", "ne": "x"}}),
        json!({"filter": null}),
    ] {
        let (s, e) = bad.call("PATCH", &path, Some(change)).await;
        assert_eq!(s, 404, "{e}");
    }
    let (s, list) = bad.call("GET", "/api/v1/webhooks", None).await;
    assert_eq!(s, 200);
    assert_eq!(list["data"], json!([]), "{list}");
    let (s, test) = bad
        .call(
            "POST",
            &format!("{path}/test"),
            Some(json!({"event_type": "user.created"})),
        )
        .await;
    assert_eq!(s, 404, "{test}");
    let (_, w) = acme.call("GET", &path, None).await;
    assert_eq!(w["filter"], filter, "unchanged by the other tenant");
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM endpoints WHERE id = '{id}' AND filter = '{filter}'::jsonb"
        ))
        .await,
        1
    );
    app.stop().await.unwrap();
}

/// A filter changed through the API reaches the running router through the
/// registry's notification: events published after the change are routed by
/// it, and removing it lets everything through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_change_takes_effect_in_the_running_router() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let admin = Api::new(&base, ADMIN_KEY);
    let rx = Receiver::start(Behaviour::Ok).await;
    let region = |r: &str| json!({"path": "data.username", "eq": r});
    let id = webhook(
        &env,
        &admin,
        json!({"url": rx.url, "events": ["user.created"], "filter": region("eu")}),
    )
    .await;
    env.publish("user.created", user(json!(1), "us"), None)
        .await;
    env.publish("user.created", user(json!(2), "eu"), None)
        .await;
    wait_for("the eu event", LONG, || async { rx.count() == 1 }).await;
    assert_eq!(names(&rx), ["eu"]);

    let (s, w) = admin
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"filter": region("us")})),
        )
        .await;
    assert_eq!(s, 200, "{w}");
    assert_eq!(w["filter"], region("us"));
    // Until the router has the change, a `us` probe is filtered out; once one
    // arrives, every later event is routed with the new filter.
    wait_for("a us event under the new filter", LONG, || async {
        env.publish("user.created", user(json!(3), "us"), None)
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        names(&rx).contains(&"us".to_owned())
    })
    .await;
    let eu_after = env
        .publish("user.created", user(json!(4), "eu"), None)
        .await;
    env.publish("user.created", user(json!(5), "us"), None)
        .await;
    wait_for("the last us event", LONG, || async {
        rx.received()
            .iter()
            .any(|r| r.json()["data"]["user_id"] == 5)
    })
    .await;
    wait_for("the eu event routed", LONG, || async {
        env.count(&format!(
            "SELECT count(*) FROM events WHERE id = '{eu_after}'"
        ))
        .await
            == 1
    })
    .await;
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM deliveries WHERE event_id = '{eu_after}'"
        ))
        .await,
        0,
        "the old filter no longer lets eu through"
    );

    // null removes the filter: everything of the subscribed type passes.
    let (s, w) = admin
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"filter": null})),
        )
        .await;
    assert_eq!(s, 200, "{w}");
    assert_eq!(w["filter"], Value::Null);
    wait_for("an eu event without a filter", LONG, || async {
        env.publish("user.created", user(json!(6), "eu-again"), None)
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        names(&rx).contains(&"eu-again".to_owned())
    })
    .await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_send_says_whether_the_example_passes_the_filter() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::ALL).await;
    let admin = Api::new(&base, ADMIN_KEY);
    let rx = Receiver::start(Behaviour::Ok).await;
    // The catalog's example of user.created is {"user_id": 1001, "username": "ada", …}.
    let id = webhook(
        &env,
        &admin,
        json!({"url": rx.url, "events": ["user.created"], "filter": {"path": "data.username", "eq": "ada"}}),
    )
    .await;
    let test = format!("/api/v1/webhooks/{id}/test");
    let body = json!({"event_type": "user.created"});
    let (s, t) = admin.call("POST", &test, Some(body.clone())).await;
    assert_eq!(s, 202, "{t}");
    assert_eq!(t["filter_matched"], true, "{t}");
    assert!(t.get("note").is_none(), "{t}");

    let (s, _) = admin
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"filter": {"path": "data.user_id", "lt": 1000}})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, t) = admin.call("POST", &test, Some(body)).await;
    assert_eq!(s, 202, "{t}");
    assert_eq!(t["filter_matched"], false, "{t}");
    let note = t["note"].as_str().unwrap();
    assert!(note.contains("does not pass this webhook's filter"), "{t}");
    // Sent either way: it is a test of the endpoint.
    wait_for("both test deliveries", LONG, || async { rx.count() == 2 }).await;
    app.stop().await.unwrap();
}

/// `hookfleet webhook create --filter` and `hookfleet endpoint update
/// --filter/--clear-filter`: refused filters name where, and the router
/// applies what the CLI stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sets_and_clears_a_filter() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let run = |args: &[&str]| {
        let out = env.command(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = run(&[
        "webhook",
        "create",
        "--url",
        &rx.url,
        "--events",
        "user.created",
        "--filter",
        r#"{"or": [{"path": "data.username", "eq": 1}, {"path": "data.user_id", "gte": "x", "lt": 3}]}"#,
    ]);
    assert!(!ok);
    assert!(
        err.contains("filter.or[1]: a condition has one operator"),
        "{err}"
    );
    let (ok, _, err) = run(&["webhook", "create", "--url", &rx.url, "--filter", "{"]);
    assert!(!ok);
    assert!(
        err.contains("--filter") && err.contains("not valid JSON"),
        "{err}"
    );

    let filter = json!({"path": "data.username", "in": ["alice"]});
    let (ok, out, err) = run(&[
        "webhook",
        "create",
        "--url",
        &rx.url,
        "--events",
        "user.created",
        "--filter",
        &filter.to_string(),
    ]);
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["filter"], filter);
    let id = created["id"].as_str().unwrap().to_owned();

    let (ok, _, err) = run(&[
        "endpoint",
        "update",
        &id,
        "--filter",
        r#"{"path": "data.username", "gt": null}"#,
    ]);
    assert!(!ok);
    assert!(err.contains("filter.gt: expected a number"), "{err}");

    let app = env.start(Roles::ALL).await;
    env.publish_many(
        "user.created",
        [user(json!(1), "bob"), user(json!(2), "alice")],
        None,
    )
    .await;
    wait_for("alice's event", LONG, || async { rx.count() == 1 }).await;
    assert_eq!(names(&rx), ["alice"]);
    assert_eq!(
        deliveries_of(&env, &id).await,
        1,
        "bob's event was routed with no delivery"
    );
    app.stop().await.unwrap();

    let (ok, out, err) = run(&["endpoint", "update", &id, "--clear-filter"]);
    assert!(ok, "{err}");
    let updated: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(updated["filter"], Value::Null);
    let (ok, out, err) = run(&[
        "webhook",
        "update",
        &id,
        "--filter",
        r#"{"not": {"path": "data.username", "eq": "carol"}}"#,
    ]);
    assert!(ok, "{err}");
    let updated: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(updated["filter"]["not"]["path"], "data.username");
}

/// The portal shows a webhook's filter and edits it; a refused filter comes
/// back on the form next to the field, saying where in the filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_shows_and_edits_a_filter() {
    let env = TestEnv::new(&[]).await;
    let (app, base) = env.start_api(Roles::NONE).await;
    let admin = Api::new(&base, ADMIN_KEY);
    let (s, _) = admin
        .call("POST", "/api/v1/tenants", Some(json!({"id": "acme"})))
        .await;
    assert_eq!(s, 201);
    let (_, k) = admin
        .call("POST", "/api/v1/tenants/acme/api-keys", None)
        .await;
    let acme = admin.with_key(k["key"].as_str().unwrap());
    let (s, w) = acme
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(
                json!({"url": "https://example.com/acme", "events": ["user.created"],
                        "filter": {"path": "data.region_code", "eq": "eu"}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    let id = w["id"].as_str().unwrap().to_owned();

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (s, l) = admin
        .call("POST", "/api/v1/tenants/acme/portal-link", None)
        .await;
    assert_eq!(s, 201, "{l}");
    let r = http.get(l["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = |path: String| {
        let (http, cookie, base) = (http.clone(), cookie.clone(), base.clone());
        async move {
            let r = http
                .get(format!("{base}{path}"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.text().await.unwrap()
        }
    };
    let shown = page(format!("/portal/webhooks/{id}")).await;
    assert!(shown.contains("id=\"webhook-filter\""), "{shown}");
    assert!(shown.contains("data.region_code"), "the filter is shown");

    let form = page(format!("/portal/webhooks/{id}/edit")).await;
    assert!(form.contains("name=\"filter\""));
    assert!(
        form.contains("data.region_code"),
        "the form holds the filter"
    );
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let post = |filter: &str| {
        let fields = [
            ("csrf", csrf.clone()),
            ("url", "https://example.com/acme".to_owned()),
            ("events", "user.created".to_owned()),
            ("description", String::new()),
            ("rate_limit", String::new()),
            ("max_in_flight", String::new()),
            ("filter", filter.to_owned()),
        ];
        let req = http
            .post(format!("{base}/portal/webhooks/{id}/edit"))
            .header("cookie", &cookie)
            .header("origin", &base)
            .form(&fields);
        async move { req.send().await.unwrap() }
    };
    let bad =
        post(r#"{"and": [{"path": "data.a", "eq": 1}, {"path": "data.b", "gte": [1]}]}"#).await;
    assert_eq!(bad.status(), 422);
    let text = bad.text().await.unwrap();
    assert!(text.contains("id=\"err-filter\""), "{text}");
    assert!(
        text.contains("filter.and[1].gte: expected a number"),
        "{text}"
    );
    let bad = post("{not json").await;
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.unwrap().contains("is not valid JSON"));

    let r = post(r#"{"path": "data.plan", "in": ["pro", "team"]}"#).await;
    assert_eq!(r.status(), 303);
    let (_, w) = acme
        .call("GET", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(
        w["filter"],
        json!({"path": "data.plan", "in": ["pro", "team"]})
    );
    // An empty field removes it.
    let r = post("  ").await;
    assert_eq!(r.status(), 303);
    let (_, w) = acme
        .call("GET", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(w["filter"], Value::Null);
    let shown = page(format!("/portal/webhooks/{id}")).await;
    assert!(shown.contains("none: every event of its types"));
    app.stop().await.unwrap();
}
