//! The tenant portal in a real browser: headless Chromium driven through
//! WebDriver (chromedriver, the `fantoccini` crate) against a running API,
//! router and worker with real RabbitMQ and PostgreSQL. A tenant signs in with
//! a portal link, creates a webhook to a local receiver, sends a test event,
//! sees the delivery and its attempt, resends it, reveals and rotates the
//! secret, pauses the webhook; another tenant sees none of it, and expired or
//! tampered links are refused. Each main page is saved as a screenshot under
//! `target/portal-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them).
use fantoccini::{Client, ClientBuilder, Locator};
use hookfleet::Roles;
use hookfleet_tests::*;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free loopback port, killed on drop with the Chromium it
/// started (found by its profile directory: a test that fails before closing
/// its session leaves no browser behind).
struct Driver {
    child: Child,
    url: String,
    profile: std::path::PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self.profile.as_os_str())
            .status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

async fn driver() -> Driver {
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
        "the portal tests need Chromium and ChromeDriver: apt-get install chromium chromium-driver \
         (.ci/run installs them)"
    );
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let profile = std::env::temp_dir().join(format!("hookfleet-portal-{}", ulid::Ulid::new()));
    let d = Driver {
        child,
        url,
        profile,
    };
    wait_for("chromedriver to listen", LONG, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    d
}

async fn browser(d: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--no-first-run", "--disable-extensions",
                "--window-size=1280,900",
                format!("--user-data-dir={}", d.profile.display()),
                // Nothing leaves the machine: every name but loopback is unresolvable.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost",
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&d.url)
        .await
        .expect("a WebDriver session in Chromium")
}

fn shots_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("portal-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
}

async fn text(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(LONG)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Waits until the page `old` belonged to is replaced (a form was submitted
/// or a link followed, and the next page has loaded).
async fn wait_replaced(c: &Client, old: fantoccini::elements::Element) {
    wait_for("the next page", LONG, || async {
        old.tag_name().await.is_err()
    })
    .await;
    c.wait()
        .at_most(LONG)
        .for_element(Locator::Css("body"))
        .await
        .unwrap();
}

/// Clicks what `css` matches, which leads to another page, and waits for it.
async fn click(c: &Client, css: &str) {
    let old = c.find(Locator::Css("html")).await.unwrap();
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    wait_replaced(c, old).await;
}

/// Reloads `url` until `css` matches an element.
async fn wait_element(c: &Client, url: &str, css: &str) {
    wait_for(css, LONG, || async {
        c.goto(url).await.unwrap();
        c.find(Locator::Css(css)).await.is_ok()
    })
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_in_a_browser_manages_a_webhook_and_its_deliveries() {
    let env = TestEnv::new(&[]).await;
    let (_app, base) = env.start_api(Roles::ALL).await;
    let admin = Api::new(&base, ADMIN_KEY);
    for t in ["acme", "globex"] {
        let (s, b) = admin
            .call("POST", "/api/v1/tenants", Some(json!({"id": t})))
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let rx = Receiver::start(Behaviour::Ok).await;
    let d = driver().await;
    let c = browser(&d).await;

    // Signed in by a portal link.
    c.goto(&portal_link(&admin, "acme").await).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/portal/");
    assert_eq!(text(&c, "#tenant-id").await, "acme");
    shot(&c, "01-home-empty").await;

    // Create a webhook to the local receiver.
    click(&c, "#new-webhook").await;
    // An invalid URL first: the error is shown next to the field.
    c.find(Locator::Css("#url"))
        .await
        .unwrap()
        .send_keys("not a url")
        .await
        .unwrap();
    c.find(Locator::Id("ev-user.created"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click(&c, "#save-webhook").await;
    let err = text(&c, "#err-url").await;
    assert!(!err.is_empty(), "no error next to the url field");
    shot(&c, "02-webhook-form-error").await;
    let url_field = c.find(Locator::Css("#url")).await.unwrap();
    url_field.clear().await.unwrap();
    url_field.send_keys(&rx.url).await.unwrap();
    c.find(Locator::Css("#description"))
        .await
        .unwrap()
        .send_keys("Orders service")
        .await
        .unwrap();
    click(&c, "#save-webhook").await;
    let path = c.current_url().await.unwrap().path().to_owned();
    let webhook_id = path.trim_start_matches("/portal/webhooks/").to_owned();
    assert!(webhook_id.starts_with("ep_"), "landed on {path}");
    let webhook_url = format!("{base}/portal/webhooks/{webhook_id}");
    assert_eq!(text(&c, "#webhook-url").await, rx.url);
    // Through the API the same webhook exists, in acme's scope.
    let (s, keys) = admin
        .call("POST", "/api/v1/tenants/acme/api-keys", None)
        .await;
    assert_eq!(s, 201);
    let acme = admin.with_key(keys["key"].as_str().unwrap());
    let (s, w) = acme
        .call("GET", &format!("/api/v1/webhooks/{webhook_id}"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(w["events"], json!(["user.created"]));

    // Send a test event and watch its delivery appear with its attempt.
    c.find(Locator::Css("#test-event-type"))
        .await
        .unwrap()
        .select_by_value("user.created")
        .await
        .unwrap();
    click(&c, "#send-test").await;
    assert!(text(&c, "#flash").await.contains("Test event sent"));
    wait_for("the receiver to get the test event", LONG, || async {
        rx.count() == 1
    })
    .await;
    wait_element(
        &c,
        &webhook_url,
        "[data-test=delivery-row][data-status=succeeded]",
    )
    .await;
    shot(&c, "03-webhook").await;
    let row = c
        .find(Locator::Css(
            "[data-test=delivery-row][data-status=succeeded]",
        ))
        .await
        .unwrap();
    let delivery_id = row.attr("data-id").await.unwrap().unwrap();
    click(&c, "[data-test=delivery-row][data-status=succeeded] a").await;
    assert_eq!(text(&c, "#delivery-id").await, delivery_id);
    let attempts = c
        .find_all(Locator::Css("[data-test=attempt-row]"))
        .await
        .unwrap();
    assert_eq!(attempts.len(), 1);
    let payload = text(&c, "#payload").await;
    assert!(payload.contains("\"type\": \"user.created\""), "{payload}");
    shot(&c, "04-delivery").await;

    // Resend it: a second request with the same webhook-id, a second attempt.
    click(&c, "#resend").await;
    wait_for("the resend to arrive", LONG, || async { rx.count() == 2 }).await;
    let got = rx.received();
    assert_eq!(got[0].webhook_id(), got[1].webhook_id());
    let delivery_url = format!("{base}/portal/deliveries/{delivery_id}?webhook={webhook_id}");
    wait_for("the second attempt shown", LONG, || async {
        c.goto(&delivery_url).await.unwrap();
        c.find_all(Locator::Css("[data-test=attempt-row]"))
            .await
            .unwrap()
            .len()
            == 2
    })
    .await;

    // Reveal the secret: it verifies what the receiver got. Rotate it.
    c.goto(&webhook_url).await.unwrap();
    click(&c, "#reveal-secret").await;
    let secret = text(&c, "#secret-key").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    got[0]
        .verify(&secret)
        .expect("the revealed secret verifies the delivery");
    c.find(Locator::Css("#grace"))
        .await
        .unwrap()
        .select_by_value("1h")
        .await
        .unwrap();
    let old = c.find(Locator::Css("html")).await.unwrap();
    c.find(Locator::Css("#rotate-secret"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.accept_alert()
        .await
        .expect("the rotation asks for confirmation");
    wait_replaced(&c, old).await;
    assert!(text(&c, "#flash").await.contains("rotated"));
    click(&c, "#reveal-secret").await;
    let rotated = text(&c, "#secret-key").await;
    assert_ne!(rotated, secret);
    assert!(text(&c, "#previous-secrets").await.contains(&secret));
    shot(&c, "05-secret-rotated").await;

    // Pause it.
    click(&c, "#pause-webhook").await;
    c.find(Locator::Css("#resume-webhook"))
        .await
        .expect("a resume button once paused");
    let (_, w) = acme
        .call("GET", &format!("/api/v1/webhooks/{webhook_id}"), None)
        .await;
    assert_eq!(w["is_active"], false);

    // The other pages.
    c.goto(&format!("{base}/portal/deliveries?status=succeeded"))
        .await
        .unwrap();
    assert_eq!(
        c.find_all(Locator::Css("[data-test=delivery-row]"))
            .await
            .unwrap()
            .len(),
        1
    );
    shot(&c, "06-deliveries").await;
    c.goto(&format!("{base}/portal/deliveries?since=yesterday"))
        .await
        .unwrap();
    assert!(
        !text(&c, "#err-since").await.is_empty(),
        "a bad filter is named"
    );
    c.goto(&format!("{base}/portal/events")).await.unwrap();
    assert!(
        c.find_all(Locator::Css("[data-test=event-type]"))
            .await
            .unwrap()
            .len()
            >= 6
    );
    shot(&c, "07-events").await;
    c.goto(&format!("{base}/portal/dead-letters"))
        .await
        .unwrap();
    c.find(Locator::Css("#dead-letters-empty"))
        .await
        .expect("no dead letters yet");

    // A webhook that always fails: its delivery is dead-lettered, and the
    // portal replays it.
    let failing = Receiver::start(Behaviour::Always(500)).await;
    let (s, fw) = acme
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": failing.url, "events": ["job.failed"], "retry_schedule": ["1s"]})),
        )
        .await;
    assert_eq!(s, 201, "{fw}");
    let fid = fw["id"].as_str().unwrap();
    let (s, _) = acme
        .call(
            "POST",
            &format!("/api/v1/webhooks/{fid}/test"),
            Some(json!({"event_type": "job.failed"})),
        )
        .await;
    assert_eq!(s, 202);
    wait_for("the failing delivery dead-lettered", LONG, || async {
        env.dead_letters().await == 1
    })
    .await;
    wait_element(
        &c,
        &format!("{base}/portal/dead-letters"),
        "[data-test=dead-letter-row]",
    )
    .await;
    shot(&c, "08-dead-letters").await;
    click(&c, "[data-test=dead-letter-row] [data-test=replay]").await;
    let report = text(&c, "#replay-report").await;
    assert!(report.contains("Replay started"), "{report}");
    wait_for("the replayed delivery attempted again", LONG, || async {
        failing.count() >= 3
    })
    .await;
    c.goto(&format!("{base}/portal/?range=hour")).await.unwrap();
    assert_eq!(
        c.find_all(Locator::Css("[data-test=webhook-row]"))
            .await
            .unwrap()
            .len(),
        2
    );
    c.find(Locator::Css("#chart-deliveries rect"))
        .await
        .expect("a bar for the attempts");
    shot(&c, "09-home").await;
    c.set_window_size(360, 800).await.unwrap();
    shot(&c, "10-home-360px").await;
    c.goto(&webhook_url).await.unwrap();
    shot(&c, "11-webhook-360px").await;
    c.set_window_size(1280, 900).await.unwrap();

    // Edit the failing webhook's description, then delete it (confirmed).
    let failing_url = format!("{base}/portal/webhooks/{fid}");
    c.goto(&failing_url).await.unwrap();
    click(&c, "#edit-webhook").await;
    let desc = c.find(Locator::Css("#description")).await.unwrap();
    desc.clear().await.unwrap();
    desc.send_keys("Always fails").await.unwrap();
    click(&c, "#save-webhook").await;
    assert_eq!(text(&c, "#webhook-description").await, "Always fails");
    click(&c, "#delete-webhook").await;
    c.find(Locator::Css("#confirm-delete"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click(&c, "#confirm-delete-button").await;
    assert!(text(&c, "#flash").await.contains("deleted"));
    assert_eq!(
        c.find_all(Locator::Css("[data-test=webhook-row]"))
            .await
            .unwrap()
            .len(),
        1
    );
    let (s, _) = acme
        .call("GET", &format!("/api/v1/webhooks/{fid}"), None)
        .await;
    assert_eq!(s, 404);

    // Another tenant's link: none of acme's data, and acme's URLs are 404s.
    c.goto(&portal_link(&admin, "globex").await).await.unwrap();
    assert_eq!(text(&c, "#tenant-id").await, "globex");
    assert!(c
        .find_all(Locator::Css("[data-test=webhook-row]"))
        .await
        .unwrap()
        .is_empty());
    for url in [
        webhook_url.clone(),
        delivery_url.clone(),
        format!("{webhook_url}/edit"),
        format!("{webhook_url}/delete"),
    ] {
        c.goto(&url).await.unwrap();
        assert_eq!(text(&c, "#message-heading").await, "Not found", "{url}");
    }
    let status = reqwest::Client::new()
        .get(&webhook_url)
        .header(
            "cookie",
            format!("hookfleet_portal={}", session_cookie(&c).await),
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    c.goto(&format!("{base}/portal/deliveries?webhook={webhook_id}"))
        .await
        .unwrap();
    assert!(c
        .find_all(Locator::Css("[data-test=delivery-row]"))
        .await
        .unwrap()
        .is_empty());
    // A form posted to acme's webhook from globex's session does nothing.
    let csrf = c
        .find(Locator::Css("input[name=csrf]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{webhook_url}/resume"))
        .header(
            "cookie",
            format!("hookfleet_portal={}", session_cookie(&c).await),
        )
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let (_, w) = acme
        .call("GET", &format!("/api/v1/webhooks/{webhook_id}"), None)
        .await;
    assert_eq!(w["is_active"], false, "still paused");

    // Expired and tampered links are refused with a page that says so.
    let signer = hookfleet_api::portal::token::Signer::new(ADMIN_KEY);
    let expired = signer.sign(&hookfleet_api::portal::token::Claims {
        kind: "link".into(),
        tenant: "acme".into(),
        exp: time::OffsetDateTime::now_utc().unix_timestamp() - 1,
        key_id: None,
        nonce: "n".into(),
        since: None,
    });
    c.goto(&format!("{base}/portal/auth?token={expired}"))
        .await
        .unwrap();
    assert_eq!(
        text(&c, "#message-heading").await,
        "This portal link has expired"
    );
    shot(&c, "12-link-expired").await;
    let good = portal_link(&admin, "acme").await;
    let tampered = good.replacen("token=ey", "token=eX", 1);
    c.goto(&tampered).await.unwrap();
    assert_eq!(
        text(&c, "#message-heading").await,
        "This portal link is not valid"
    );

    // Signing out ends the session.
    c.goto(&format!("{base}/portal/")).await.unwrap();
    click(&c, "#sign-out").await;
    c.goto(&format!("{base}/portal/")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/portal/login");
    shot(&c, "13-login").await;
    // And an API key signs in.
    c.find(Locator::Css("#api_key"))
        .await
        .unwrap()
        .send_keys(keys["key"].as_str().unwrap())
        .await
        .unwrap();
    click(&c, "#sign-in").await;
    assert_eq!(text(&c, "#tenant-id").await, "acme");
    c.close().await.unwrap();
}

async fn session_cookie(c: &Client) -> String {
    c.get_named_cookie("hookfleet_portal")
        .await
        .expect("the session cookie")
        .value()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_links_are_issued_to_the_admin_and_the_tenant_itself_only() {
    let env = TestEnv::new(&[]).await;
    let (_app, base) = env.start_api(Roles::NONE).await;
    let admin = Api::new(&base, ADMIN_KEY);
    for t in ["acme", "globex"] {
        admin
            .call("POST", "/api/v1/tenants", Some(json!({"id": t})))
            .await;
    }
    let (_, k) = admin
        .call("POST", "/api/v1/tenants/acme/api-keys", None)
        .await;
    let acme = admin.with_key(k["key"].as_str().unwrap());
    let (s, l) = acme
        .call(
            "POST",
            "/api/v1/tenants/acme/portal-link",
            Some(json!({"ttl_seconds": 600})),
        )
        .await;
    assert_eq!(s, 201, "{l}");
    assert!(l["url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{base}/portal/auth?token=")));
    let (s, _) = acme
        .call("POST", "/api/v1/tenants/globex/portal-link", None)
        .await;
    assert_eq!(s, 403);
    let (s, e) = admin
        .call(
            "POST",
            "/api/v1/tenants/acme/portal-link",
            Some(json!({"ttl_seconds": 5})),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(e["error"]["field"], "ttl_seconds");
    let (s, _) = admin
        .call("POST", "/api/v1/tenants/nobody/portal-link", None)
        .await;
    assert_eq!(s, 404);
    // The CLI issues the same links (signed with api.admin_key).
    let out = env
        .command(&["tenant", "portal-link", "acme", "--ttl", "10m"])
        .env("HOOKFLEET__API__ADMIN_KEY", ADMIN_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cli_url = cli["url"].as_str().unwrap();
    let path = cli_url.split_once("/portal/").unwrap().1;
    let out = env
        .command(&["tenant", "portal-link", "acme"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("api.admin_key"));
    // Without a session every page leads to the sign-in page; a POST without
    // the session's CSRF token is refused.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .get(format!("{base}/portal/deliveries"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/portal/login");
    // The CLI's link signs in like the API's.
    let r = http
        .get(format!("{base}/portal/{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(set_cookie(&r).starts_with("hookfleet_portal="));
    let r = http.get(l["url"].as_str().unwrap()).send().await.unwrap();
    let cookie = set_cookie(&r);
    let r = http
        .post(format!("{base}/portal/webhooks/new"))
        .header("cookie", &cookie)
        .form(&[("url", "http://127.0.0.1:9/x"), ("events", "user.created")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(env.count("SELECT count(*) FROM endpoints").await, 0);
    // Deleting needs the confirmation, checked by the server too (the
    // browser's `required` is not a guard).
    let (st, w) = acme
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": "https://example.com/h", "events": ["*"]})),
        )
        .await;
    assert_eq!(st, 201, "{w}");
    let del = format!(
        "{base}/portal/webhooks/{}/delete",
        w["id"].as_str().unwrap()
    );
    let page = http
        .get(&del)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a CSRF field in the form")
        .to_owned();
    let r = http
        .post(&del)
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(env.count("SELECT count(*) FROM endpoints").await, 1);
    // A revoked key ends the sessions it opened.
    let r = sign_in(&http, &base, k["key"].as_str().unwrap()).await;
    assert_eq!(r.status(), 303);
    let cookie = set_cookie(&r);
    let ok = http
        .get(format!("{base}/portal/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let (s, _) = admin
        .call(
            "DELETE",
            &format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let r = http
        .get(format!("{base}/portal/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = sign_in(&http, &base, "hfk_wrong").await;
    assert_eq!(r.status(), 401);
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of the first `name="csrf"` field of a page.
fn csrf_field(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a CSRF field in the form")
        .to_owned()
}

/// Signs in with an API key the way a browser does: the sign-in page (its
/// pre-session cookie and form token), then the form, from the portal's origin.
async fn sign_in(http: &reqwest::Client, base: &str, key: &str) -> reqwest::Response {
    let page = http
        .get(format!("{base}/portal/login"))
        .send()
        .await
        .unwrap();
    let pre = set_cookie(&page);
    assert!(pre.starts_with("hookfleet_portal_login="), "{pre}");
    let csrf = csrf_field(&page.text().await.unwrap());
    http.post(format!("{base}/portal/login"))
        .header("cookie", pre)
        .header("origin", base)
        .form(&[("api_key", key), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap()
}

/// GETs `path` with a session cookie; the status and the `Location`.
async fn visit(http: &reqwest::Client, base: &str, path: &str, cookie: &str) -> (u16, String) {
    let r = http
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let loc = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status().as_u16(), loc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_sessions_end_with_their_key_on_sign_out_and_links_open_once() {
    let env = TestEnv::new(&[]).await;
    let (_app, base) = env.start_api(Roles::NONE).await;
    let admin = Api::new(&base, ADMIN_KEY);
    let (s, _) = admin
        .call("POST", "/api/v1/tenants", Some(json!({"id": "acme"})))
        .await;
    assert_eq!(s, 201);
    let (_, k) = admin
        .call("POST", "/api/v1/tenants/acme/api-keys", None)
        .await;
    let acme = admin.with_key(k["key"].as_str().unwrap());
    let http = no_redirects();

    // Two links issued with key K; the first opens a session.
    let link = portal_link(&acme, "acme").await;
    let unused = portal_link(&acme, "acme").await;
    let r = http.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let from_link = set_cookie(&r);
    assert_eq!(visit(&http, &base, "/portal/", &from_link).await.0, 200);

    // A link opens once.
    let r = http.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("already used"));

    // Revoking K: the session opened from its link ends, and its unused link
    // opens nothing.
    let (s, _) = admin
        .call(
            "DELETE",
            &format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(
        visit(&http, &base, "/portal/", &from_link).await,
        (303, "/portal/login".to_owned())
    );
    let r = http.get(&unused).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("revoked"));
    assert_eq!(
        env.count("SELECT count(*) FROM portal_sessions WHERE ended_at IS NOT NULL")
            .await,
        1,
        "revoking the key ended its session's row"
    );

    // Sign-out ends the session server-side: the old cookie, replayed, gets
    // the sign-in redirect.
    let r = http
        .get(portal_link(&admin, "acme").await)
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(&r);
    let home = http
        .get(format!("{base}/portal/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = http
        .post(format!("{base}/portal/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf_field(&home).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        set_cookie(&r),
        "hookfleet_portal=",
        "the cookie is cleared too"
    );
    assert_eq!(
        visit(&http, &base, "/portal/", &cookie).await,
        (303, "/portal/login".to_owned())
    );
    assert_eq!(
        env.count("SELECT count(*) FROM portal_sessions WHERE ended_at IS NOT NULL")
            .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_sign_in_refuses_csrf_banners_are_fixed_cookies_secure_behind_a_trusted_proxy() {
    let env = TestEnv::new(&[]).await;
    let (_app, base) = env.start_api(Roles::NONE).await;
    let admin = Api::new(&base, ADMIN_KEY);
    admin
        .call("POST", "/api/v1/tenants", Some(json!({"id": "acme"})))
        .await;
    let (_, k) = admin
        .call("POST", "/api/v1/tenants/acme/api-keys", None)
        .await;
    let key = k["key"].as_str().unwrap();
    let http = no_redirects();
    let login = format!("{base}/portal/login");

    // Sign-in CSRF: no form token (and no pre-session cookie) is refused; so
    // is a token with another site's Origin; the portal's own form signs in.
    let r = http
        .post(&login)
        .header("origin", &base)
        .form(&[("api_key", key)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(!set_cookie(&r).starts_with("hookfleet_portal="));
    let page = http.get(&login).send().await.unwrap();
    let pre = set_cookie(&page);
    let csrf = csrf_field(&page.text().await.unwrap());
    for (h, v) in [
        ("origin", "http://evil.example"),
        ("referer", "http://evil.example/phish"),
        ("sec-fetch-site", "cross-site"),
        ("origin", "null"),
    ] {
        let r = http
            .post(&login)
            .header("cookie", &pre)
            .header(h, v)
            .form(&[("api_key", key), ("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{h}: {v}");
        assert!(r.headers().get("set-cookie").is_none(), "{h}: {v}");
    }
    // Another pre-session cookie than the token's.
    let r = http
        .post(&login)
        .header("cookie", "hookfleet_portal_login=AAAAAAAAAAAAAAAAAAAAAA")
        .form(&[("api_key", key), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(&login)
        .header("cookie", &pre)
        .header("origin", &base)
        .form(&[("api_key", key), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = set_cookie(&r);
    assert!(cookie.starts_with("hookfleet_portal="));

    // The banner shows fixed messages: text in the address is not shown, nor
    // are details without the server's signature for this session.
    let (s, w) = Api::new(&base, key)
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": "https://example.com/h", "events": ["*"]})),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    let page_url = format!("{base}/portal/webhooks/{}", w["id"].as_str().unwrap());
    let forged = http
        .get(format!(
            "{page_url}?done=rotated&n=Call+support+at+evil.example&sig=AAAA"
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(forged.contains("Signing secret rotated."), "{forged}");
    assert!(!forged.contains("evil.example"));
    // The portal's own rotation shows its details.
    let r = http
        .post(format!("{page_url}/rotate"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf_field(&forged).as_str()), ("grace", "1h")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    let genuine = http
        .get(format!("{base}{to}"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        genuine.contains("keeps signing alongside the new one for 1h"),
        "{genuine}"
    );
    // Those details, signed for this session, are not shown to another.
    let r = sign_in(&http, &base, key).await;
    let other = set_cookie(&r);
    let replayed = http
        .get(format!("{base}{to}"))
        .header("cookie", &other)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(replayed.contains("Signing secret rotated."));
    assert!(!replayed.contains("alongside the new one for 1h"));

    // `X-Forwarded-Proto: https` is not believed by default…
    let secure = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap().contains("; Secure"))
    };
    let r = http
        .get(portal_link(&admin, "acme").await)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(!secure(&r));
    // …and is with api.trust_forwarded_proto.
    let port = free_port();
    let trusted = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let (_proc, _) = env.spawn_with_ops(
        &["api"],
        &[
            ("HOOKFLEET__API__LISTEN", listen.as_str()),
            ("HOOKFLEET__API__ADMIN_KEY", ADMIN_KEY),
            ("HOOKFLEET__API__TRUST_FORWARDED_PROTO", "true"),
        ],
    );
    wait_for("the second API", LONG, || async {
        reqwest::get(format!("{trusted}/api/v1/openapi.json"))
            .await
            .is_ok()
    })
    .await;
    let proxied = Api::new(&trusted, ADMIN_KEY);
    let r = http
        .get(portal_link(&proxied, "acme").await)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(secure(&r), "{:?}", r.headers());
    let r = http
        .get(format!("{trusted}/portal/login"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(secure(&r), "{:?}", r.headers());
    let r = http
        .get(portal_link(&proxied, "acme").await)
        .header("x-forwarded-proto", "http")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(!secure(&r));

    // /docs: a CSP that allows its own inline script and style by hash, no
    // framing, no sniffing.
    let r = reqwest::get(format!("{base}/docs")).await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'sha256-",
        "style-src 'sha256-",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{part} in {csp}");
    }
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
}

/// The `name=value` of a response's `Set-Cookie`.
fn set_cookie(r: &reqwest::Response) -> String {
    let v = r.headers()["set-cookie"].to_str().unwrap();
    v.split(';').next().unwrap().to_owned()
}
