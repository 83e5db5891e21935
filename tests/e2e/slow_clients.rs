//! The API holds up against slow and idle clients: a real `hookfleet api`
//! process with small `api.header_read_timeout`, `api.idle_timeout` and
//! `api.max_connections` closes connections that dribble their request head or
//! send nothing, closes idle keep-alive connections, never holds more
//! connections than the cap, and keeps answering normal requests meanwhile.
//! Everything stays on 127.0.0.1 and is bounded in time and count.
use hookfleet_tests::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LONG: Duration = Duration::from_secs(120);
const HEADER_READ_TIMEOUT: u64 = 2;
const IDLE_TIMEOUT: u64 = 4;
const MAX_CONNECTIONS: usize = 64;

async fn ready(base: &str) -> bool {
    reqwest::get(format!("{base}/readyz"))
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// A normal request on a new connection; returns how long it took.
async fn normal_request(base: &str) -> Duration {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let start = Instant::now();
    let resp = client
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    start.elapsed()
}

/// A connection that sends the start of a request head, then one byte a
/// second for up to `give_up`; returns how long after connecting the server
/// closed it, or `None` if it was still open when the client gave up.
async fn slow_head(addr: &str, give_up: Duration) -> Option<Duration> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let (mut r, mut w) = stream.into_split();
    let writer = async move {
        let _ = w
            .write_all(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if w.write_all(b"a").await.is_err() {
                // Closed: the reader sees it too.
                std::future::pending::<()>().await;
            }
        }
    };
    let mut buf = [0u8; 512];
    let closed = async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        t = closed => Some(t),
        _ = writer => None,
        _ = tokio::time::sleep(give_up) => None,
    }
}

/// A connection that sends nothing; as [`slow_head`].
async fn silent(addr: &str, give_up: Duration) -> Option<Duration> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 512];
    tokio::time::timeout(give_up, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// Reads one whole response (headers and a `content-length` body).
async fn read_response(stream: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed mid-response");
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data);
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("content-length");
            if data.len() >= end + 4 + len {
                return text[..end].to_owned();
            }
        }
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_closed_and_connections_capped() {
    let env = TestEnv::new(&[]).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let (header, idle, max) = (
        format!("{HEADER_READ_TIMEOUT}s"),
        format!("{IDLE_TIMEOUT}s"),
        MAX_CONNECTIONS.to_string(),
    );
    let (api, ops) = env.spawn_with_ops(
        &["api"],
        &[
            ("HOOKFLEET__API__ADMIN_KEY", ADMIN_KEY),
            ("HOOKFLEET__API__LISTEN", &addr),
            ("HOOKFLEET__API__HEADER_READ_TIMEOUT", &header),
            ("HOOKFLEET__API__IDLE_TIMEOUT", &idle),
            ("HOOKFLEET__API__MAX_CONNECTIONS", &max),
        ],
    );
    wait_for("api ready", LONG, || ready(&ops)).await;
    wait_for("the API to answer", LONG, || async {
        TcpStream::connect(&addr).await.is_ok()
    })
    .await;
    normal_request(&base).await;
    let slack = Duration::from_secs(8);
    let header_bound = Duration::from_secs(HEADER_READ_TIMEOUT) + slack;

    // 1. Below the cap: 20 slow heads and 20 silent connections are closed
    //    after the header timeout; normal requests answer meanwhile.
    let held: Vec<_> = (0..40)
        .map(|i| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let give_up = Duration::from_secs(30);
                if i % 2 == 0 {
                    slow_head(&addr, give_up).await
                } else {
                    silent(&addr, give_up).await
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        let took = normal_request(&base).await;
        assert!(
            took < Duration::from_secs(5),
            "a normal request took {took:?}"
        );
    }
    for (i, h) in held.into_iter().enumerate() {
        let closed = h.await.unwrap();
        let kind = if i % 2 == 0 { "slow" } else { "silent" };
        assert!(
            closed.is_some_and(|t| t < header_bound),
            "{kind} connection {i}: closed after {closed:?}, expected within {header_bound:?}"
        );
    }

    // 2. Keep-alive: a second request on the connection works; once idle, the
    //    connection is closed after the idle timeout (not the header timeout).
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    let request = b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n";
    conn.write_all(request).await.unwrap();
    assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    conn.write_all(request).await.unwrap();
    assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 200"));
    let idle_since = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(
        Duration::from_secs(IDLE_TIMEOUT) + slack,
        conn.read(&mut buf),
    )
    .await
    .expect("an idle keep-alive connection stayed open")
    .unwrap_or(0);
    let idle_for = idle_since.elapsed();
    assert_eq!(n, 0, "unexpected bytes on an idle connection");
    assert!(
        idle_for > Duration::from_millis(HEADER_READ_TIMEOUT * 1000 + 500),
        "the idle connection was closed after {idle_for:?}, before api.idle_timeout"
    );

    // 3. Over the cap: 200 slow heads. The process never holds many more than
    //    64 connections (the rest wait in the backlog), every one is closed in
    //    turn, and a normal request still gets through.
    let pid = api.id();
    let baseline = open_fds(pid);
    assert!(baseline > 0, "cannot read /proc/{pid}/fd");
    let flood: Vec<_> = (0..200)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move { slow_head(&addr, Duration::from_secs(60)).await })
        })
        .collect();
    let sampler = tokio::spawn(async move {
        let mut most = 0;
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            most = most.max(open_fds(pid));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        most
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let took = normal_request(&base).await;
    assert!(
        took < Duration::from_secs(40),
        "a normal request during the flood took {took:?}"
    );
    let most = sampler.await.unwrap();
    assert!(
        most <= baseline + MAX_CONNECTIONS + 16,
        "the API process held {most} descriptors (baseline {baseline}, cap {MAX_CONNECTIONS})"
    );
    let start = Instant::now();
    for (i, h) in flood.into_iter().enumerate() {
        let closed = h.await.unwrap();
        assert!(
            closed.is_some(),
            "flood connection {i} was still open after 60 s"
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "the flood took {:?} to clear",
        start.elapsed()
    );
    // Afterwards, normal service.
    let took = normal_request(&base).await;
    assert!(took < Duration::from_secs(5), "{took:?}");

    // 4. SIGTERM with an idle keep-alive connection and a silent one open: they
    //    are closed at once and the process exits 0, well within shutdown.grace
    //    (25 s by default).
    let mut keep_alive = TcpStream::connect(&addr).await.unwrap();
    keep_alive.write_all(request).await.unwrap();
    read_response(&mut keep_alive).await;
    let _silent = TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut api = api;
    let start = Instant::now();
    sigterm(&api);
    let status = wait_exit(&mut api, LONG).await;
    assert!(status.success(), "exit status {status:?}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "shutting down took {:?}: open connections held it",
        start.elapsed()
    );
}
