//! The API measures itself: a real `hookfleet api` process counts and times its
//! requests by route template (never the raw path), logs one line per request
//! with a request id, and returns that id (docs/OPERATIONS.md, "Metrics", "Logs").
use hookfleet_tests::{free_port, scrape, sigterm, wait_exit, wait_for, TestEnv, ADMIN_KEY};
use serde_json::{json, Value};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requests_are_counted_by_route_logged_and_carry_a_request_id() {
    let env = TestEnv::new(&[]).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    // A broker that is not there: ingest answers 503, the one 5xx we can cause.
    let no_broker = format!("amqp://guest:guest@127.0.0.1:{}/%2f", free_port());
    let (mut proc, ops) = env.spawn_with_ops(
        &["api"],
        &[
            ("HOOKFLEET__API__LISTEN", listen.as_str()),
            ("HOOKFLEET__API__ADMIN_KEY", ADMIN_KEY),
            ("HOOKFLEET__AMQP__URL", no_broker.as_str()),
            ("HOOKFLEET__LOG__FORMAT", "json"),
        ],
    );
    wait_for("the API ready", LONG, || async {
        reqwest::get(format!("{ops}/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Sends one request; returns its status and the x-request-id it got back.
    let send = |method: &str, path: &str, id: Option<&[u8]>, body: Option<Value>| {
        let mut req = http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{base}{path}"),
            )
            .bearer_auth(ADMIN_KEY);
        if let Some(id) = id {
            req = req.header(
                "x-request-id",
                reqwest::header::HeaderValue::from_bytes(id).unwrap(),
            );
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let resp = req.send().await.unwrap();
            let id = resp
                .headers()
                .get("x-request-id")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (resp.status().as_u16(), id)
        }
    };

    // A client's id comes back as it was sent.
    assert_eq!(
        send("GET", "/api/v1/webhooks", Some(b"abc-123"), None).await,
        (200, "abc-123".to_owned())
    );
    // Without one, or with one that is too long, has a space or is not ASCII,
    // a new one is made.
    let long = [b'x'; 129];
    for id in [
        None,
        Some(&b"two words"[..]),
        Some(&long[..]),
        Some(b"caf\xc3\xa9"),
    ] {
        let (status, got) = send("GET", "/api/v1/webhooks", id, None).await;
        assert_eq!(status, 200);
        assert!(
            got.starts_with("req_") && got.len() == 30,
            "{id:?} gets a new id, got {got:?}"
        );
    }
    // The id is also on answers that no handler wrote.
    let (status, got) = send("GET", "/api/v1/webhooks/ep_raw_id_42", None, None).await;
    assert_eq!(status, 404);
    assert!(got.starts_with("req_"));
    assert_eq!(
        send("GET", "/no/such/path?token=sekrit-1", None, None)
            .await
            .0,
        404
    );
    assert_eq!(send("DELETE", "/api/v1/webhooks", None, None).await.0, 405);
    assert_eq!(send("BREW", "/api/v1/webhooks", None, None).await.0, 405);
    assert_eq!(send("GET", "/docs", None, None).await.0, 200);
    assert_eq!(send("GET", "/portal/login", None, None).await.0, 200);
    // A portal link's token is in its query, which is never logged.
    let (status, _) = send("GET", "/portal/auth?token=sekrit-2", None, None).await;
    assert!(status < 500, "{status}");
    let unauthenticated = http
        .get(format!("{base}/api/v1/webhooks"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);
    let event = json!({"type": "user.created", "data": {"user_id": 1, "username": "u"}});
    assert_eq!(
        send("POST", "/api/v1/events", Some(b"ingest-1"), Some(event))
            .await
            .0,
        503
    );

    let text = reqwest::get(format!("{ops}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    promtool_check(&text);
    let get = "method=\"GET\"";
    for (labels, n) in [
        (
            &[get, "route=\"/api/v1/webhooks\"", "status=\"200\""][..],
            5.0,
        ),
        (
            &[get, "route=\"/api/v1/webhooks/{id}\"", "status=\"404\""],
            1.0,
        ),
        (&[get, "route=\"unmatched\"", "status=\"404\""], 1.0),
        (
            &[
                "method=\"DELETE\"",
                "route=\"/api/v1/webhooks\"",
                "status=\"405\"",
            ],
            1.0,
        ),
        (
            &[
                "method=\"other\"",
                "route=\"/api/v1/webhooks\"",
                "status=\"405\"",
            ],
            1.0,
        ),
        (&[get, "route=\"/api/v1/webhooks\"", "status=\"401\""], 1.0),
        (&[get, "route=\"/docs\"", "status=\"200\""], 1.0),
        (&[get, "route=\"/portal/login\"", "status=\"200\""], 1.0),
        (&[get, "route=\"/portal/auth\""], 1.0),
        (
            &[
                "method=\"POST\"",
                "route=\"/api/v1/events\"",
                "status=\"503\"",
            ],
            1.0,
        ),
    ] {
        assert_eq!(
            scrape(&ops, "hookfleet_http_requests_total", labels).await,
            Some(n),
            "{labels:?} in\n{text}"
        );
    }
    assert_eq!(
        scrape(&ops, "hookfleet_http_requests_total", &[]).await,
        Some(14.0),
        "every request counted once"
    );
    assert_eq!(
        scrape(
            &ops,
            "hookfleet_http_request_duration_seconds_count",
            &[get, "route=\"/api/v1/webhooks\""]
        )
        .await,
        Some(6.0),
        "timed by route and method, whatever the status"
    );
    for raw in ["ep_raw_id_42", "/no/such", "BREW", "sekrit"] {
        assert!(!text.contains(raw), "{raw} is not a label value");
    }

    sigterm(&proc);
    assert!(wait_exit(&mut proc, LONG).await.success());
    let log = std::fs::read_to_string(&proc.log).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "HTTP request.")
        .collect();
    assert_eq!(access.len(), 14, "one access line per request: {log}");
    for a in &access {
        assert_eq!(a["level"], "INFO", "{a}");
        for k in [
            "request_id",
            "method",
            "route",
            "path",
            "status",
            "latency_ms",
        ] {
            assert!(!a["fields"][k].is_null(), "{k} in {a}");
        }
    }
    let first = access
        .iter()
        .find(|a| a["fields"]["request_id"] == "abc-123")
        .expect("the client's id in the access log");
    assert_eq!(first["fields"]["route"], "/api/v1/webhooks");
    assert_eq!(first["fields"]["path"], "/api/v1/webhooks");
    assert_eq!(first["fields"]["method"], "GET");
    assert_eq!(first["fields"]["status"], 200);
    let ingest = access
        .iter()
        .find(|a| a["fields"]["request_id"] == "ingest-1")
        .expect("the ingest request logged");
    assert_eq!(ingest["fields"]["status"], 503);
    // What the handler logged while it ran carries the request's id too.
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] != "HTTP request."
                && l["span"]["request_id"] == "ingest-1"),
        "the ingest handler's lines are in the request's span: {log}"
    );
    assert!(!log.contains("sekrit"), "no query string in the logs");
    assert!(!log.contains(ADMIN_KEY), "no key in the logs");
}

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
