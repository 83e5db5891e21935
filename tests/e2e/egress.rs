//! Egress through a proxy keeps the SSRF guarantees: the environment's proxy
//! variables are ignored, `delivery.proxy` carries allowed deliveries, targets
//! the address policy refuses never reach the proxy, and what tenants see of a
//! refusal names no address (the worker's log keeps the detail).
//!
//! The proxy is a small HTTP proxy written here, on 127.0.0.1: it records each
//! request's target, forwards plain-http requests in absolute form
//! (`POST http://host:port/path`, what reqwest sends for http targets) and
//! tunnels `CONNECT host:port` (https targets). It only forwards to loopback.
use hookfleet::Roles;
use hookfleet_tests::*;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const LONG: Duration = Duration::from_secs(120);
const REFUSED: &str = "refused: the destination is not allowed (delivery.allow_networks)";

/// A recording forward proxy on 127.0.0.1:<random>.
struct Proxy {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn start() -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                tokio::spawn(proxy_one(c, s.clone()));
            }
        });
        Proxy { url, seen, task }
    }

    /// Request lines seen: `CONNECT host:port` or `POST http://host:port/path`.
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

async fn proxy_one(client: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let mut client = BufReader::new(client);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if client.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let end = line == "\r\n";
        head.push(line);
        if end {
            break;
        }
    }
    let mut parts = head[0].split_whitespace();
    let (method, target, version) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("HTTP/1.1").to_owned(),
    );
    seen.lock().unwrap().push(format!("{method} {target}"));
    let (authority, path) = if method == "CONNECT" {
        (target.clone(), String::new())
    } else {
        let rest = target.strip_prefix("http://").unwrap_or(&target);
        let (a, p) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        (
            a.to_owned(),
            if p.is_empty() { "/".into() } else { p.into() },
        )
    };
    // Loopback only: these tests send nothing anywhere else.
    let upstream = match tokio::net::lookup_host(authority.as_str()).await {
        Ok(mut a) => a.find(|a| a.ip().is_loopback()),
        Err(_) => None,
    };
    let Some(mut upstream) = (match upstream {
        Some(a) => TcpStream::connect(a).await.ok(),
        None => None,
    }) else {
        let _ = client
            .get_mut()
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    if method == "CONNECT" {
        if client
            .get_mut()
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    } else {
        let mut out = format!("{method} {path} {version}\r\n");
        for h in &head[1..] {
            if !h.to_ascii_lowercase().starts_with("proxy-") {
                out.push_str(h);
            }
        }
        if upstream.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
    // What the reader buffered past the head goes first, then both ways.
    let buffered = client.buffer().to_vec();
    if !buffered.is_empty() && upstream.write_all(&buffered).await.is_err() {
        return;
    }
    let mut client = client.into_inner();
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

async fn ready(base: &str) -> bool {
    reqwest::get(format!("{base}/readyz"))
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Every attempt error recorded, in order.
async fn attempt_errors(env: &TestEnv) -> Vec<String> {
    let c = env.pool.get().await.unwrap();
    c.query(
        "SELECT coalesce(error, '') FROM delivery_attempts ORDER BY attempted_at",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<_, String>(0))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_proxy_variables_are_ignored() {
    let proxy = Proxy::start().await;
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    let router = env.start(Roles::ROUTER).await;
    // A worker process whose environment names the proxy in every variable
    // reqwest reads, without `delivery.proxy`.
    let vars: Vec<(&str, &str)> = [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .into_iter()
    .map(|k| (k, proxy.url.as_str()))
    .collect();
    let (worker, ops) = env.spawn_with_ops(&["worker"], &vars);
    wait_for("worker ready", LONG, || ready(&ops)).await;
    env.publish("user.created", json!({"user_id": 1, "username": "u"}), None)
        .await;
    wait_for("the delivery", LONG, || async { rx.count() == 1 }).await;
    assert_eq!(
        proxy.seen(),
        Vec::<String>::new(),
        "the environment's proxy was used"
    );
    drop(worker);
    router.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_proxy_carries_allowed_deliveries_and_no_proxy_hosts_go_direct() {
    let proxy = Proxy::start().await;
    let env = TestEnv::new(&[
        ("delivery.proxy", proxy.url.as_str()),
        ("delivery.no_proxy", "localhost"),
        ("delivery.allow_networks", "127.0.0.0/8,::1/128"),
    ])
    .await;
    let via_proxy = Receiver::start(Behaviour::Ok).await;
    let direct = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&via_proxy.url, &["user.created"], None)
        .await;
    // The same receiver by a name in delivery.no_proxy.
    let direct_url = direct.url.replace("127.0.0.1", "localhost");
    env.add_endpoint(&direct_url, &["job.failed"], None).await;
    // An https target: reqwest tunnels it with CONNECT (the receiver speaks
    // plain http, so the attempt then fails its TLS handshake).
    let tls_url = via_proxy.url.replace("http://", "https://");
    env.add_endpoint(&tls_url, &["video.processed"], None).await;
    let app = env.start(Roles::ALL).await;

    env.publish("user.created", json!({"user_id": 1, "username": "u"}), None)
        .await;
    env.publish(
        "job.failed",
        json!({"job_id": 1, "job_type": "t", "error_message": "e"}),
        None,
    )
    .await;
    env.publish("video.processed", json!({"video_id": 1}), None)
        .await;
    wait_for("both plain-http deliveries", LONG, || async {
        via_proxy.count() == 1 && direct.count() == 1
    })
    .await;
    wait_for("the https attempt", LONG, || async {
        env.count("SELECT count(*) FROM delivery_attempts").await >= 3
    })
    .await;
    let seen = proxy.seen();
    let proxied = format!("POST {}", via_proxy.url);
    assert!(
        seen.contains(&proxied),
        "the proxy saw {seen:?}, not {proxied}"
    );
    let authority = via_proxy.url.trim_start_matches("http://");
    let authority = &authority[..authority.find('/').unwrap()];
    assert!(
        seen.contains(&format!("CONNECT {authority}")),
        "no CONNECT for the https target in {seen:?}"
    );
    assert!(
        !seen.iter().any(|s| s.contains("localhost")),
        "a delivery.no_proxy host went through the proxy: {seen:?}"
    );
    assert_eq!(seen.len(), 2, "{seen:?}");
    via_proxy.received()[0].json();
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_targets_never_reach_the_proxy_and_tenants_see_no_address() {
    let proxy = Proxy::start().await;
    // No allow-list: every loopback target is refused.
    let env = TestEnv::new(&[
        ("delivery.proxy", proxy.url.as_str()),
        ("delivery.allow_networks", ""),
        ("retry.schedule", ""),
    ])
    .await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let (by_name, _) = env
        .add_endpoint(
            &rx.url.replace("127.0.0.1", "localhost"),
            &["user.created"],
            None,
        )
        .await;
    let (by_ip, _) = env.add_endpoint(&rx.url, &["user.created"], None).await;
    let router = env.start(Roles::ROUTER).await;
    let (worker, ops) = env.spawn_with_ops(&["worker"], &[("HOOKFLEET__LOG__FORMAT", "json")]);
    wait_for("worker ready", LONG, || ready(&ops)).await;
    env.publish("user.created", json!({"user_id": 1, "username": "u"}), None)
        .await;
    wait_for("both deliveries to fail", LONG, || async {
        env.count("SELECT count(*) FROM deliveries WHERE status = 'failed'")
            .await
            == 2
    })
    .await;
    assert_eq!(proxy.seen(), Vec::<String>::new(), "the proxy was asked");
    assert_eq!(rx.count(), 0);
    assert_eq!(attempt_errors(&env).await, [REFUSED, REFUSED]);
    // The dead letters' x-last-error says the same (the worker's keeper
    // stores it with each dead letter).
    wait_for("both dead letters kept", LONG, || async {
        env.dead_letters().await == 2
    })
    .await;
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM dead_letters WHERE last_error = '{REFUSED}'"
        ))
        .await,
        2
    );
    // The operator's log has the detail, with the endpoint.
    let log = std::fs::read_to_string(&worker.log).unwrap_or_default();
    for ep in [&by_name, &by_ip] {
        let line = log
            .lines()
            .find(|l| l.contains(&ep.id) && l.contains("refused"))
            .unwrap_or_else(|| panic!("no refusal logged for {}:\n{log}", ep.id));
        assert!(line.contains("127.0.0.1"), "{line}");
    }
    assert!(
        log.lines().any(|l| l.contains(r#""host":"localhost""#)),
        "{log}"
    );
    drop(worker);
    router.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_at_connect_time_show_tenants_no_address() {
    // No proxy: the resolver refuses at connect time.
    let env = TestEnv::new(&[("delivery.allow_networks", ""), ("retry.schedule", "")]).await;
    let (ep, _) = env
        .add_endpoint("http://localhost:9/hook", &["*"], None)
        .await;
    let router = env.start(Roles::ROUTER).await;
    let (worker, ops) = env.spawn_with_ops(&["worker"], &[("HOOKFLEET__LOG__FORMAT", "json")]);
    wait_for("worker ready", LONG, || ready(&ops)).await;
    env.publish("user.created", json!({"user_id": 1, "username": "u"}), None)
        .await;
    wait_for("the delivery to fail", LONG, || async {
        env.count("SELECT count(*) FROM deliveries WHERE status = 'failed'")
            .await
            == 1
    })
    .await;
    let errors = attempt_errors(&env).await;
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains(REFUSED), "{errors:?}");
    assert!(!errors[0].contains("127.0.0.1"), "{errors:?}");
    let log = std::fs::read_to_string(&worker.log).unwrap_or_default();
    assert!(
        log.lines().any(|l| l.contains(&ep.id)
            && l.contains(r#""host":"localhost""#)
            && l.contains("127.0.0.1")),
        "{log}"
    );
    drop(worker);
    router.stop().await.unwrap();
}
