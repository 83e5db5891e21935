//! The "many endpoints" scenario of issue #16: N endpoints (10,000; 100,000
//! with `--long`) registered through the HTTP API, then what the fleet costs
//! at that size. Separate processes: 1 `hookfleet api`, 1 `hookfleet router`,
//! 4 `hookfleet worker`, each with its own metrics port.
//!
//! Measured, each against the target:
//! - registration: webhooks/s (POST /api/v1/webhooks, 16 clients) for the
//!   first and the last 1,000; tenants and their keys are made before, timed apart;
//! - consumers on the broker, RSS of every process and bytes per endpoint;
//! - one endpoint paused: time until the router and every worker applied it;
//! - workers ready after a cold start with N endpoints;
//! - deliveries/s spread over N endpoints vs over 100 (same run);
//! - a worker SIGKILLed under load: nothing lost, its endpoints consumed again.
use crate::{free_port, now_us, publish, rss_mb, start_receiver, wait_api, Env, Recv, Row};
use crate::{Args, ADMIN_KEY};
use anyhow::Context as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One hookfleet process of the fleet, with its metrics port.
struct Proc {
    kind: &'static str,
    child: Child,
    metrics: u16,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn rss(&self) -> f64 {
        rss_mb(self.pid())
    }
    /// SIGTERM, then SIGKILL after 30 s.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every process of the fleet; killed when dropped (before the vhost and the
/// database are, since `Env` is declared first).
#[derive(Default)]
struct Fleet {
    procs: Vec<Proc>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

impl Fleet {
    fn spawn(
        &mut self,
        env: &Env,
        bin: &str,
        kind: &'static str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let metrics = free_port();
        let listen = format!("127.0.0.1:{metrics}");
        let mut vars = vec![("HOOKFLEET__METRICS__LISTEN", listen.as_str())];
        vars.extend_from_slice(extra);
        let child = env.spawn(bin, kind, &vars)?;
        self.procs.push(Proc {
            kind,
            child,
            metrics,
        });
        Ok(())
    }
    fn of(&self, kind: &str) -> impl Iterator<Item = &Proc> + '_ {
        let kind = kind.to_owned();
        self.procs.iter().filter(move |p| p.kind == kind)
    }
    /// The sum of `name` over the workers (0 for one not answering yet).
    async fn workers_sum(&self, http: &reqwest::Client, name: &str) -> i64 {
        let mut sum = 0.0;
        for p in self.of("worker") {
            sum += scrape(http, p.metrics, name).await.unwrap_or(0.0);
        }
        sum as i64
    }
    /// Waits until the workers see each other and consume `want` queues in all; the time it took,
    /// or `None` after `limit`.
    async fn wait_consumed(
        &self,
        http: &reqwest::Client,
        want: i64,
        limit: Duration,
    ) -> Option<Duration> {
        let t = Instant::now();
        let k = self.of("worker").count() as i64;
        loop {
            // Counted only once every worker sees all the others: a worker
            // alone at its start consumes everything for a moment.
            if self.workers_sum(http, "hookfleet_worker_members").await == k * k
                && self
                    .workers_sum(http, "hookfleet_worker_consumed_queues")
                    .await
                    == want
            {
                return Some(t.elapsed());
            }
            if t.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The sum of the samples of `name` (a metric name, or a name with its labels
/// as rendered, e.g. `x{kind="endpoint"}`) on a process's `/metrics`.
async fn scrape(http: &reqwest::Client, port: u16, name: &str) -> Option<f64> {
    let text = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let mut found = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(name) {
            if rest.starts_with(' ') || (rest.starts_with('{') && !name.contains('{')) {
                let v: f64 = rest.rsplit(' ').next()?.parse().ok()?;
                *found.get_or_insert(0.0) += v;
            }
        }
    }
    found
}

/// Consumers and queues on the broker over `hookfleet.endpoint.*`.
fn broker_consumers(vhost: &str) -> anyhow::Result<(u64, u64)> {
    let out = Command::new("rabbitmqctl")
        .args(["list_queues", "-q", "-p", vhost, "name", "consumers"])
        .stderr(Stdio::null())
        .output()?;
    anyhow::ensure!(out.status.success(), "rabbitmqctl list_queues failed");
    let (mut queues, mut consumers) = (0, 0);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.split_whitespace();
        if let (Some(name), Some(c)) = (f.next(), f.next()) {
            if name.starts_with("hookfleet.endpoint.") {
                queues += 1;
                consumers += c.parse::<u64>().unwrap_or(0);
            }
        }
    }
    Ok((queues, consumers))
}

/// RabbitMQ's own figures: total memory (GB) and file descriptors "used/limit".
fn broker_status() -> String {
    let Ok(out) = Command::new("rabbitmqctl")
        .args(["status"])
        .stderr(Stdio::null())
        .output()
    else {
        return "rabbitmqctl status failed".into();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mem = text
        .lines()
        .find(|l| l.starts_with("Total memory used:"))
        .map(|l| l.trim_start_matches("Total memory used:").trim().to_owned())
        .unwrap_or_default();
    let fds = text
        .lines()
        .skip_while(|l| !l.contains("File Descriptors"))
        .find(|l| l.starts_with("Total:"))
        .unwrap_or("")
        .to_owned();
    format!("RabbitMQ memory {mem}, file descriptors {fds}")
}

/// CPU time (user + system, seconds) of a process, from `/proc/<pid>/stat`.
fn cpu_secs(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds so far of each kind of process on the machine that takes part:
/// the fleet's, RabbitMQ, PostgreSQL (its processes alive now) and this bench.
fn cpu_by_kind(fleet: &Fleet) -> Vec<(&'static str, f64)> {
    let pids = |name: &str| -> Vec<String> {
        Command::new("pgrep")
            .args(["-x", name])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for kind in ["api", "router", "worker"] {
        let s = fleet.of(kind).map(|p| cpu_secs(&p.pid().to_string())).sum();
        out.push((kind, s));
    }
    out.push((
        "rabbitmq",
        pids("beam.smp").iter().map(|p| cpu_secs(p)).sum(),
    ));
    out.push((
        "postgres",
        pids("postgres").iter().map(|p| cpu_secs(p)).sum(),
    ));
    out.push(("bench", cpu_secs("self")));
    out
}

/// "kind 1.2 s, …" between two [`cpu_by_kind`] snapshots, and ms per `per`.
fn cpu_since(before: &[(&str, f64)], after: &[(&str, f64)], per: usize) -> String {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| {
            let d = a.1 - b.1;
            format!(
                "{} {d:.1} s ({:.2} ms each)",
                b.0,
                d * 1e3 / per.max(1) as f64
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// RabbitMQ's CPU seconds so far (every `beam.smp`).
fn beam_cpu() -> f64 {
    Command::new("pgrep")
        .args(["-x", "beam.smp"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(cpu_secs)
                .sum::<f64>()
        })
        .unwrap_or(0.0)
}

/// One broker operation of [`broker_ops`], on queue `i`.
#[derive(Clone, Copy)]
enum Op {
    /// `queue.declare` (durable, as an endpoint queue) of a queue.
    Declare,
    /// `queue.bind` to `hookfleet.deliveries`.
    Bind,
    /// Both, as `topology::declare_endpoint` does.
    DeclareBind,
    /// `basic.consume` with a tag of its own.
    Consume,
    /// `basic.cancel` of that tag.
    Cancel,
}

/// Runs `op` on queues `0..k` from `chans` (16 concurrent tasks, queue `i` on
/// channel `i % chans.len()`); "name: rate/s (ms of RabbitMQ CPU each)".
async fn broker_pass(
    name: &str,
    chans: &[lapin::Channel],
    prefix: &str,
    k: usize,
    op: Op,
) -> anyhow::Result<String> {
    let qt = crate::hookfleet_core_queue_type();
    let (t, cpu) = (Instant::now(), beam_cpu());
    let next = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (chans, next, prefix) = (chans.to_vec(), next.clone(), prefix.to_owned());
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= k {
                    return anyhow::Ok(());
                }
                let ch = &chans[i % chans.len()];
                let id = format!("{prefix}{i}");
                let q = hookfleet_broker::names::endpoint_queue(&id);
                let tag = format!("bench-{id}");
                match op {
                    Op::Declare => {
                        ch.queue_declare(
                            q.as_str().into(),
                            lapin::options::QueueDeclareOptions {
                                durable: true,
                                ..Default::default()
                            },
                            Default::default(),
                        )
                        .await?;
                    }
                    Op::Bind => {
                        ch.queue_bind(
                            q.as_str().into(),
                            hookfleet_broker::names::DELIVERIES_EXCHANGE.into(),
                            id.as_str().into(),
                            Default::default(),
                            Default::default(),
                        )
                        .await?;
                    }
                    Op::DeclareBind => {
                        hookfleet_broker::topology::declare_endpoint(ch, qt, &id, false).await?;
                    }
                    Op::Consume => {
                        ch.basic_consume(
                            q.as_str().into(),
                            tag.as_str().into(),
                            Default::default(),
                            Default::default(),
                        )
                        .await?;
                    }
                    Op::Cancel => {
                        ch.basic_cancel(tag.as_str().into(), Default::default())
                            .await?;
                    }
                }
            }
        });
    }
    for r in set.join_all().await {
        r?;
    }
    let secs = t.elapsed().as_secs_f64();
    Ok(format!(
        "{name}: {:.0}/s ({:.2} ms of RabbitMQ CPU each)",
        k as f64 / secs,
        (beam_cpu() - cpu) * 1e3 / k as f64
    ))
}

/// What the broker alone takes for each operation a new endpoint brings,
/// on `k` endpoint queues: a new queue declared then bound (two steps, to see
/// which costs), declared and bound together (as `topology::declare_endpoint`
/// does) from 16 channels and from 1, again on existing queues (what a
/// redundant declare costs), a `basic.consume` and its cancel; and its idle
/// CPU while `2 k` queues exist, with and without a consumer each. The queues
/// are deleted after.
async fn broker_ops(env: &Env, k: usize) -> anyhow::Result<String> {
    let conn = hookfleet_broker::connect_url(&env.amqp_url, "bench-declares").await?;
    let mut chans = Vec::new();
    for _ in 0..16 {
        chans.push(conn.create_channel().await?);
    }
    let qt = crate::hookfleet_core_queue_type();
    hookfleet_broker::topology::declare(&chans[0], qt, &[]).await?;
    let one = &chans[..1];
    let text = vec![
        broker_pass("declare new", &chans, "ep_benchA", k, Op::Declare).await?,
        broker_pass("bind new", &chans, "ep_benchA", k, Op::Bind).await?,
        broker_pass(
            "declare + bind new",
            &chans,
            "ep_benchB",
            k,
            Op::DeclareBind,
        )
        .await?,
        broker_pass(
            "declare + bind new, 1 channel",
            one,
            "ep_benchC",
            k / 4,
            Op::DeclareBind,
        )
        .await?,
        broker_pass(
            "declare + bind again",
            &chans,
            "ep_benchB",
            k,
            Op::DeclareBind,
        )
        .await?,
        {
            let c = beam_cpu();
            tokio::time::sleep(Duration::from_secs(5)).await;
            format!(
                "idle with {} queues: {:.1}% of a core",
                2 * k + k / 4,
                (beam_cpu() - c) / 5.0 * 100.0
            )
        },
        broker_pass("basic.consume", &chans, "ep_benchB", k, Op::Consume).await?,
        {
            let c = beam_cpu();
            tokio::time::sleep(Duration::from_secs(5)).await;
            format!(
                "idle with {k} of them consumed: {:.1}% of a core",
                (beam_cpu() - c) / 5.0 * 100.0
            )
        },
        broker_pass("basic.cancel", &chans, "ep_benchB", k, Op::Cancel).await?,
    ];
    for (prefix, n) in [("ep_benchA", k), ("ep_benchB", k), ("ep_benchC", k / 4)] {
        for i in 0..n {
            let q = hookfleet_broker::names::endpoint_queue(&format!("{prefix}{i}"));
            chans[i % 16]
                .queue_delete(q.as_str().into(), Default::default())
                .await?;
        }
    }
    let _ = conn.close(200, "".into()).await;
    Ok(text.join("; "))
}

/// The `i`th endpoint's tenant.
fn tenant(i: usize) -> String {
    format!("t{i}")
}

/// Runs `n` jobs `f(i)` on 16 concurrent clients; returns when each finished
/// (seconds from the start, in completion order) and the failures.
async fn sixteen<F, Fut>(n: usize, f: F) -> (Vec<f64>, Vec<String>)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (next, done, errors, f) = (next.clone(), done.clone(), errors.clone(), f.clone());
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    break;
                }
                match f(i).await {
                    Ok(()) => done.lock().unwrap().push(start.elapsed().as_secs_f64()),
                    Err(e) => errors.lock().unwrap().push(format!("#{i}: {e:#}")),
                }
            }
        });
    }
    set.join_all().await;
    let mut done = std::mem::take(&mut *done.lock().unwrap());
    done.sort_by(f64::total_cmp);
    let errors = std::mem::take(&mut *errors.lock().unwrap());
    (done, errors)
}

/// Rate of the first and of the last 1,000 completions.
fn first_last(done: &[f64]) -> (f64, f64) {
    let k = 1000.min(done.len());
    if k == 0 {
        return (0.0, 0.0);
    }
    let first = k as f64 / done[k - 1];
    let n = done.len();
    let last = if n > k {
        k as f64 / (done[n - 1] - done[n - 1 - k])
    } else {
        first
    };
    (first, last)
}

async fn post_ok(
    http: &reqwest::Client,
    url: String,
    key: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let mut req = http.post(url).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await?;
    let status = r.status();
    let text = r.text().await?;
    anyhow::ensure!(status.is_success(), "{status}: {text}");
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// Deliveries/s of `events` events published round-robin over `tenants`, from
/// the first publish to the last receipt; `None` if they did not all arrive.
async fn deliver(
    env: &Env,
    recv: &Recv,
    events: u64,
    tenants: &[Option<String>],
) -> anyhow::Result<Option<f64>> {
    let base = recv.total.load(Ordering::Relaxed);
    let start_us = now_us();
    publish(&env.amqp_url, events, tenants, None).await?;
    if !crate::wait_total(recv, base + events, Duration::from_secs(900)).await {
        return Ok(None);
    }
    let us = recv
        .last_us
        .load(Ordering::Relaxed)
        .saturating_sub(start_us);
    Ok(Some(events as f64 / (us.max(1) as f64 / 1e6)))
}

/// A measure of the table: its figure and its target, as text, with the
/// numbers the JSON carries.
struct Measure {
    name: String,
    figure: String,
    target: &'static str,
    seconds: f64,
    per_s: f64,
    rss_mb: f64,
}

fn measure(name: &str, figure: String, target: &'static str) -> Measure {
    eprintln!("  {name}: {figure} (target {target})");
    Measure {
        name: name.to_owned(),
        figure,
        target,
        seconds: 0.0,
        per_s: 0.0,
        rss_mb: 0.0,
    }
}

/// Runs the scenario with `n` endpoints; its rows for the JSON, one per measure.
pub async fn bench_many(args: &Args, n: usize) -> anyhow::Result<Vec<Row>> {
    let env = Env::new(&args.bin).await?;
    let mut fleet = Fleet::default();
    let recv = Arc::new(Recv::default());
    let addr = start_receiver(recv.clone()).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let mut out: Vec<Measure> = Vec::new();

    // The fleet, with no endpoint yet.
    let api = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{api}");
    fleet.spawn(
        &env,
        &args.bin,
        "api",
        &[
            ("HOOKFLEET__API__ADMIN_KEY", ADMIN_KEY),
            ("HOOKFLEET__API__LISTEN", &api),
        ],
    )?;
    wait_api(&base).await?;
    fleet.spawn(&env, &args.bin, "router", &[])?;
    for _ in 0..4 {
        fleet.spawn(&env, &args.bin, "worker", &[])?;
    }
    let t = Instant::now();
    while fleet.workers_sum(&http, "hookfleet_worker_members").await < 16 {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(60),
            "the 4 workers did not see each other"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss0: Vec<(&str, f64)> = fleet.procs.iter().map(|p| (p.kind, p.rss())).collect();
    let broker0 = broker_status();

    // 0. The broker alone: its rate of the declares a new endpoint brings.
    let declares = broker_ops(&env, 2000).await?;
    out.push(measure(
        "broker alone: each operation a new endpoint brings (16 channels unless said)",
        declares,
        "-",
    ));

    // 1. Registration: tenants and their keys first, then the webhooks, timed.
    eprintln!("  registering {n} endpoints (16 clients)");
    let keys: Arc<Vec<Mutex<String>>> = Arc::new((0..n).map(|_| Mutex::default()).collect());
    let (done, errors) = {
        let (http, base, keys) = (http.clone(), base.clone(), keys.clone());
        sixteen(n, move |i| {
            let (http, base, keys) = (http.clone(), base.clone(), keys.clone());
            async move {
                let t = tenant(i);
                post_ok(
                    &http,
                    format!("{base}/api/v1/tenants"),
                    ADMIN_KEY,
                    Some(serde_json::json!({ "id": t })),
                )
                .await?;
                let k = post_ok(
                    &http,
                    format!("{base}/api/v1/tenants/{t}/api-keys"),
                    ADMIN_KEY,
                    None,
                )
                .await?;
                *keys[i].lock().unwrap() = k["key"].as_str().context("a key")?.to_owned();
                Ok(())
            }
        })
        .await
    };
    anyhow::ensure!(
        errors.is_empty(),
        "{} tenants or keys failed, first: {}",
        errors.len(),
        errors[0]
    );
    let tenants_per_s = n as f64 / done.last().copied().unwrap_or(1.0);
    let ids: Arc<Vec<Mutex<String>>> = Arc::new((0..n).map(|_| Mutex::default()).collect());
    let cpu0 = cpu_by_kind(&fleet);
    let (done, errors) = {
        let (http, base, keys, ids) = (http.clone(), base.clone(), keys.clone(), ids.clone());
        sixteen(n, move |i| {
            let (http, base, keys, ids) = (http.clone(), base.clone(), keys.clone(), ids.clone());
            async move {
                let key = keys[i].lock().unwrap().clone();
                let w = post_ok(
                    &http,
                    format!("{base}/api/v1/webhooks"),
                    &key,
                    Some(serde_json::json!({
                        "url": format!("http://{addr}/ep/{i}"),
                        "events": ["match.found"],
                    })),
                )
                .await?;
                *ids[i].lock().unwrap() = w["id"].as_str().context("an id")?.to_owned();
                Ok(())
            }
        })
        .await
    };
    let registered = done.len();
    let cpu = cpu_since(&cpu0, &cpu_by_kind(&fleet), n);
    let total_secs = done.last().copied().unwrap_or(0.0);
    let (first, last) = first_last(&done);
    let mut m = measure(
        "register: webhooks/s, first 1,000 / last 1,000 (16 clients)",
        format!(
            "{first:.0} / {last:.0} (all {registered}: {:.0}/s; tenants + keys before: {tenants_per_s:.0} tenants/s){}",
            registered as f64 / total_secs.max(1e-9),
            if errors.is_empty() {
                String::new()
            } else {
                format!("; {} FAILED, first: {}", errors.len(), errors[0])
            }
        ),
        ">= 1,000/s at 10,000 existing, not falling",
    );
    m.seconds = total_secs;
    m.per_s = last;
    out.push(m);
    out.push(measure(
        "register: CPU per process kind while the webhooks were created",
        cpu,
        "-",
    ));
    anyhow::ensure!(registered == n, "only {registered}/{n} webhooks created");

    // 2. Consumers, RSS, bytes per endpoint.
    let t = Instant::now();
    let attached = fleet
        .wait_consumed(&http, 2 * n as i64, Duration::from_secs(300))
        .await;
    let consumed = fleet
        .workers_sum(&http, "hookfleet_worker_consumed_queues")
        .await;
    out.push(measure(
        "registered -> every queue consumed twice",
        match attached {
            Some(d) => format!("{:.1} s after the last webhook", d.as_secs_f64()),
            None => format!(
                "NOT within {:.0} s: {consumed}/{} consumed",
                t.elapsed().as_secs_f64(),
                2 * n
            ),
        },
        "-",
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (queues, consumers) = broker_consumers(&env.name)?;
    out.push(measure(
        "consumers on the broker",
        format!(
            "{consumers} on {queues} endpoint queues ({:.2} per endpoint); {}",
            consumers as f64 / n as f64,
            broker_status()
        ),
        "<= 2 x endpoints + a constant",
    ));
    let rss_n: Vec<(&str, f64)> = fleet.procs.iter().map(|p| (p.kind, p.rss())).collect();

    // 3. One endpoint changed: time until the router and every worker applied it.
    let key0 = keys[0].lock().unwrap().clone();
    let id0 = ids[0].lock().unwrap().clone();
    let mut worst: Vec<f64> = Vec::new();
    let mut drops = Vec::new();
    for round in 0..6 {
        let pause = round % 2 == 0;
        let watched: Vec<&Proc> = fleet.procs.iter().filter(|p| p.kind != "api").collect();
        let name = "hookfleet_registry_updates_total{kind=\"endpoint\"}";
        let mut before = Vec::new();
        for p in &watched {
            before.push(scrape(&http, p.metrics, name).await.unwrap_or(0.0));
        }
        let consumed_before = fleet
            .workers_sum(&http, "hookfleet_worker_consumed_queues")
            .await;
        let t = Instant::now();
        let r = http
            .patch(format!("{base}/api/v1/webhooks/{id0}"))
            .bearer_auth(&key0)
            .json(&serde_json::json!({ "is_active": !pause }))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "PATCH: {}", r.status());
        let mut seen = vec![None; watched.len()];
        while seen.iter().any(Option::is_none) && t.elapsed() < Duration::from_secs(30) {
            for (k, p) in watched.iter().enumerate() {
                if seen[k].is_none()
                    && scrape(&http, p.metrics, name).await.unwrap_or(0.0) > before[k]
                {
                    seen[k] = Some(t.elapsed().as_secs_f64());
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let max = seen
            .iter()
            .map(|s| s.unwrap_or(f64::INFINITY))
            .fold(0.0, f64::max);
        worst.push(max);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let consumed_after = fleet
            .workers_sum(&http, "hookfleet_worker_consumed_queues")
            .await;
        drops.push(consumed_after - consumed_before);
    }
    let worst_ms: Vec<String> = worst.iter().map(|s| format!("{:.0}", s * 1e3)).collect();
    let mut m = measure(
        "one endpoint paused/resumed: every process applied it (router + 4 workers)",
        format!(
            "max {} ms over 6 changes (each: {} ms); consumed queues changed by {:?}",
            worst_ms
                .iter()
                .max_by_key(|s| s.parse::<u64>().unwrap_or(u64::MAX))
                .cloned()
                .unwrap_or_default(),
            worst_ms.join(", "),
            drops
        ),
        "<= 1 s at any size",
    );
    m.seconds = worst.iter().copied().fold(0.0, f64::max);
    out.push(m);

    // 4. Cold start: every worker stopped, 4 fresh ones.
    for p in fleet.procs.iter_mut().filter(|p| p.kind == "worker") {
        p.stop();
    }
    fleet.procs.retain(|p| p.kind != "worker");
    let t = Instant::now();
    for _ in 0..4 {
        fleet.spawn(&env, &args.bin, "worker", &[])?;
    }
    let ready = fleet
        .wait_consumed(&http, 2 * n as i64, Duration::from_secs(300))
        .await;
    let mut m = measure(
        "workers ready after a cold start (4 fresh workers, 2 x N queues consumed)",
        match ready {
            Some(_) => format!("{:.1} s", t.elapsed().as_secs_f64()),
            None => format!(
                "NOT within 300 s: {}/{} consumed",
                fleet
                    .workers_sum(&http, "hookfleet_worker_consumed_queues")
                    .await,
                2 * n
            ),
        },
        "<= 30 s at 100,000",
    );
    m.seconds = t.elapsed().as_secs_f64();
    out.push(m);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_cold: Vec<f64> = fleet.of("worker").map(Proc::rss).collect();

    let avg = |v: &[(&str, f64)], kind: &str| {
        let x: Vec<f64> = v.iter().filter(|p| p.0 == kind).map(|p| p.1).collect();
        x.iter().sum::<f64>() / x.len().max(1) as f64
    };
    let max_of = |v: &[(&str, f64)], kind: &str| {
        v.iter()
            .filter(|p| p.0 == kind)
            .map(|p| p.1)
            .fold(0.0, f64::max)
    };
    let per_ep = |at_n: f64, at_0: f64| (at_n - at_0) * 1024.0 * 1024.0 / n as f64;
    let cold_avg = rss_cold.iter().sum::<f64>() / rss_cold.len().max(1) as f64;
    let cold_max = rss_cold.iter().copied().fold(0.0, f64::max);
    for (kind, target) in [
        ("worker", "<= 150 MB per worker at 100,000"),
        ("router", "<= 150 MB at 100,000"),
        ("api", "<= 150 MB at 100,000"),
    ] {
        let (at0, atn) = (avg(&rss0, kind), avg(&rss_n, kind));
        let figure = if kind == "worker" {
            format!(
                "{atn:.0} MB (max {:.0}) after registering, {cold_avg:.0} MB (max {cold_max:.0}) fresh after a cold start; {at0:.0} MB at 0 endpoints: {:.0} / {:.0} bytes per endpoint",
                max_of(&rss_n, kind),
                per_ep(atn, at0),
                per_ep(cold_avg, at0)
            )
        } else {
            format!(
                "{atn:.0} MB; {at0:.0} MB at 0 endpoints: {:.0} bytes per endpoint",
                per_ep(atn, at0)
            )
        };
        let mut m = measure(&format!("RSS of a {kind}"), figure, target);
        m.rss_mb = if kind == "worker" {
            cold_max.max(max_of(&rss_n, kind))
        } else {
            atn
        };
        out.push(m);
    }
    out.push(measure(
        "RabbitMQ before / after",
        format!("{broker0} / {}", broker_status()),
        "-",
    ));

    // 5. Deliveries/s over 100 endpoints, then over all N.
    let events = args.events.max(n as u64);
    let hundred: Vec<Option<String>> = (0..100.min(n)).map(|i| Some(tenant(i))).collect();
    let all: Vec<Option<String>> = (0..n).map(|i| Some(tenant(i))).collect();
    eprintln!("  delivering {events} events over 100 endpoints, then over {n}");
    let c0 = cpu_by_kind(&fleet);
    let r100 = deliver(&env, &recv, events, &hundred).await?;
    let c1 = cpu_by_kind(&fleet);
    let rn = deliver(&env, &recv, events, &all).await?;
    let c2 = cpu_by_kind(&fleet);
    let cpu_100 = cpu_since(&c0, &c1, events as usize);
    let cpu_n = cpu_since(&c1, &c2, events as usize);
    let mut m = measure(
        "deliveries/s spread over every endpoint vs over 100 (same run)",
        match (r100, rn) {
            (Some(a), Some(b)) => format!(
                "{b:.0}/s over {n} vs {a:.0}/s over 100: {:.0}% ({events} events each)",
                100.0 * b / a
            ),
            _ => format!("INCOMPLETE: over 100 {r100:?}, over {n} {rn:?}"),
        },
        ">= 80%",
    );
    m.per_s = rn.unwrap_or(0.0);
    out.push(m);
    out.push(measure(
        "deliver: CPU per process kind, over 100 endpoints",
        cpu_100,
        "-",
    ));
    out.push(measure(
        "deliver: CPU per process kind, over every endpoint",
        cpu_n,
        "-",
    ));

    // 6. A worker SIGKILLed under load.
    let base_recv = recv.total.load(Ordering::Relaxed);
    let producer = {
        let (url, all) = (env.amqp_url.clone(), all.clone());
        tokio::spawn(async move { publish(&url, events, &all, None).await })
    };
    while recv.total.load(Ordering::Relaxed) < base_recv + events / 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let victim = fleet
        .procs
        .iter()
        .position(|p| p.kind == "worker")
        .context("a worker")?;
    let mut killed = fleet.procs.remove(victim);
    let t = Instant::now();
    let _ = killed.child.kill();
    let _ = killed.child.wait();
    // Two phases: the survivors see the worker gone, then consume its share.
    let k = fleet.of("worker").count() as i64;
    while fleet.workers_sum(&http, "hookfleet_worker_members").await != k * k
        && t.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen_gone = t.elapsed();
    let back = fleet
        .wait_consumed(&http, 2 * n as i64, Duration::from_secs(120))
        .await
        .map(|_| t.elapsed());
    producer.await??;
    let all_in = crate::wait_total(&recv, base_recv + events, Duration::from_secs(600)).await;
    // Every delivery row of the run, by status, once the attempts are recorded.
    // Lost is counted by (event, endpoint) pair: a router batch whose confirms
    // timed out is routed again with new delivery rows, so rows can succeed
    // twice for one pair, or stay pending beside the pair's success.
    let c = env.sql().await?;
    let expected = 3 * events as i64;
    let t_rows = Instant::now();
    let (mut statuses, mut delivered): (Vec<(String, i64)>, i64);
    loop {
        statuses = c
            .query(
                "SELECT status, count(*) FROM deliveries GROUP BY 1 ORDER BY 1",
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        delivered = c
            .query_one(
                "SELECT count(*) FROM (SELECT 1 FROM deliveries GROUP BY event_id, endpoint_id
                 HAVING bool_or(status = 'succeeded')) pairs",
                &[],
            )
            .await?
            .get(0);
        if delivered >= expected || t_rows.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let succeeded = statuses
        .iter()
        .find(|s| s.0 == "succeeded")
        .map_or(0, |s| s.1);
    let rows: i64 = statuses.iter().map(|s| s.1).sum();
    let received = recv.total.load(Ordering::Relaxed) - base_recv;
    let mut m = measure(
        "a worker SIGKILLed under load: lost, and its endpoints consumed again",
        format!(
            "{} lost ({delivered}/{expected} event x endpoint pairs delivered; {rows} delivery rows {statuses:?}, {} successes beyond one per pair; {received} received for {events} published, all arrived: {all_in}); consumed again (2 x N) {}",
            expected - delivered,
            succeeded - delivered,
            match back {
                Some(d) => format!(
                    "{:.1} s after the kill (every survivor saw it gone after {:.1} s)",
                    d.as_secs_f64(),
                    seen_gone.as_secs_f64()
                ),
                None => format!("NOT within 120 s ({:.0} s)", t.elapsed().as_secs_f64()),
            }
        ),
        "0 lost, consumed again within 10 s",
    );
    m.seconds = back.map_or(f64::INFINITY, |d| d.as_secs_f64());
    out.push(m);

    drop(fleet);
    let label = format!("many endpoints ({n})");
    println!("\n| {label}: measure | figure | target |\n|---|---|---|");
    for m in &out {
        println!("| {} | {} | {} |", m.name, m.figure, m.target);
    }
    Ok(out
        .into_iter()
        .map(|m| Row {
            scenario: format!("{label}: {}", m.name),
            deliveries: 0,
            seconds: m.seconds,
            deliveries_per_s: m.per_s,
            p50_ms: 0.0,
            p99_ms: 0.0,
            rss_mb: m.rss_mb,
            attempts_recorded: 0,
            note: format!("{} (target: {})", m.figure, m.target),
            cpu: None,
        })
        .collect())
}

/// Issue #16 item 6 on the broker alone: `n` endpoint queues declared and
/// bound from 16 channels (as the API does per webhook), with no hookfleet
/// process; RabbitMQ's memory and file descriptors before and after, and its
/// memory per idle queue. The vhost (and the queues) go with the `Env`.
pub async fn broker_queues(args: &Args, n: usize) -> anyhow::Result<Vec<Row>> {
    let env = Env::new(&args.bin).await?;
    let conn = hookfleet_broker::connect_url(&env.amqp_url, "bench-queues").await?;
    let mut chans = Vec::new();
    for _ in 0..16 {
        chans.push(conn.create_channel().await?);
    }
    hookfleet_broker::topology::declare(&chans[0], crate::hookfleet_core_queue_type(), &[]).await?;
    let before = broker_status();
    let mem0 = broker_memory_bytes();
    let mut lines = vec![format!("before: {before}")];
    let step = (n / 10).max(1);
    let mut done = 0;
    let t = Instant::now();
    while done < n {
        let k = step.min(n - done);
        let pass = broker_pass(
            &format!("queues {done}..{}", done + k),
            &chans,
            &format!("ep_q{done}_"),
            k,
            Op::DeclareBind,
        )
        .await;
        match pass {
            Ok(p) => lines.push(p),
            Err(e) => {
                lines.push(format!("STOPPED at {done}: {e:#}"));
                break;
            }
        }
        done += k;
        let mem = broker_memory_bytes();
        lines.push(format!(
            "{done} queues after {:.0} s: {}; {:.1} KB per queue (Erlang total), {:.1} KB (RSS)",
            t.elapsed().as_secs_f64(),
            broker_status(),
            (mem.0 - mem0.0) as f64 / 1024.0 / done as f64,
            (mem.1 - mem0.1) as f64 / 1024.0 / done as f64
        ));
        eprintln!("  {}", lines.last().map(String::as_str).unwrap_or(""));
    }
    let _ = conn.close(200, "".into()).await;
    println!("\n| broker alone, {n} endpoint queues |\n|---|");
    for l in &lines {
        println!("| {l} |");
    }
    Ok(vec![Row {
        scenario: format!("broker alone: {n} endpoint queues"),
        deliveries: 0,
        seconds: t.elapsed().as_secs_f64(),
        deliveries_per_s: done as f64 / t.elapsed().as_secs_f64(),
        p50_ms: 0.0,
        p99_ms: 0.0,
        rss_mb: 0.0,
        attempts_recorded: 0,
        note: lines.join("; "),
        cpu: None,
    }])
}

/// RabbitMQ's memory in bytes, as it counts it and as the OS does
/// (`rabbitmqctl status --formatter json`: `memory.total.erlang`, `.rss`).
fn broker_memory_bytes() -> (i64, i64) {
    let v = Command::new("rabbitmqctl")
        .args(["status", "--formatter", "json"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .unwrap_or_default();
    let total = &v["memory"]["total"];
    (
        total["erlang"].as_i64().unwrap_or(0),
        total["rss"].as_i64().unwrap_or(0),
    )
}
