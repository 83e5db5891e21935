//! Test support: every test gets its own RabbitMQ vhost and its own Postgres
//! database (created here, removed on drop, even when the test panics), runs the
//! real roles in-process, and talks to a real local HTTP receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use hookfleet::Roles;
use hookfleet_core::Settings;
use hookfleet_store::endpoints::Endpoint;
use hookfleet_store::Pool;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use std::collections::HashMap;
use std::future::Future;
use std::process::Command;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The key that seals signing secrets in the tests (`secrets.encryption_keys`).
pub const TEST_SEALING_KEY: &str = "test:dGVzdC1zZWFsaW5nLWtleS0zMi1ieXRlcy1sb25nISE=";

pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("TEST_LOG")
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
    });
}

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl must be installed for the tests");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test's own vhost, database and settings.
pub struct TestEnv {
    pub name: String,
    pub db_url: String,
    pub amqp_url: String,
    pub pool: Pool,
    overrides: Vec<(String, String)>,
    apps: Mutex<Vec<CancellationToken>>,
}

impl TestEnv {
    /// A fresh vhost and database, migrated. `overrides` are settings keys.
    pub async fn new(overrides: &[(&str, &str)]) -> TestEnv {
        init_tracing();
        let name = format!("hft_{}", ulid::Ulid::new().to_string().to_lowercase());
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        let db_url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        let amqp_url = format!("amqp://guest:guest@127.0.0.1:5672/{name}");
        hookfleet_store::migrate::run(&db_url)
            .await
            .expect("migrate");
        let pool = hookfleet_store::pool::connect(&db_url, 4).unwrap();
        let mut all = vec![
            ("database.url".to_owned(), db_url.clone()),
            ("amqp.url".to_owned(), amqp_url.clone()),
            (
                "delivery.allow_networks".to_owned(),
                "127.0.0.0/8".to_owned(),
            ),
            ("retry.schedule".to_owned(), "1s,1s".to_owned()),
            ("delivery.timeout".to_owned(), "5s".to_owned()),
            ("registry.resync_interval".to_owned(), "5s".to_owned()),
            // Signing secrets are sealed in every test, as in production.
            (
                "secrets.encryption_keys".to_owned(),
                TEST_SEALING_KEY.to_owned(),
            ),
        ];
        all.extend(
            overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        TestEnv {
            name,
            db_url,
            amqp_url,
            pool,
            overrides: all,
            apps: Mutex::new(Vec::new()),
        }
    }

    /// The same environment with one more settings key (it wins over the
    /// ones set before).
    pub fn with_override(mut self, key: &str, value: &str) -> TestEnv {
        self.overrides.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn settings(&self) -> Arc<Settings> {
        let o: Vec<(&str, &str)> = self
            .overrides
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Arc::new(Settings::with_overrides(&o).expect("settings"))
    }

    /// Starts `roles` in-process; returns its shutdown token and task.
    pub async fn start(&self, roles: Roles) -> App {
        let ops = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ops_addr = ops.local_addr().unwrap();
        let token = CancellationToken::new();
        self.apps.lock().unwrap().push(token.clone());
        let task = tokio::spawn(hookfleet::run(self.settings(), roles, ops, token.clone()));
        App {
            token,
            task: Some(task),
            ops_addr,
        }
    }

    /// Registers an endpoint through the same code path as the CLI.
    pub async fn add_endpoint(
        &self,
        url: &str,
        events: &[&str],
        tenant: Option<&str>,
    ) -> (Endpoint, String) {
        let input = hookfleet::admin::EndpointInput {
            url: url.to_owned(),
            events: events.iter().map(|s| s.to_string()).collect(),
            tenant_id: tenant.map(str::to_owned),
            is_active: true,
            ..Default::default()
        };
        hookfleet::admin::create_endpoint(&self.settings(), &self.pool, input)
            .await
            .expect("create endpoint")
    }

    /// A producer's connection and confirming channel, the topology declared.
    pub async fn producer(&self) -> (lapin::Connection, lapin::Channel) {
        let conn = hookfleet_broker::connect_url(&self.amqp_url, "test-producer")
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let settings = self.settings();
        hookfleet_broker::topology::declare(&ch, settings.amqp.queue_type, &settings.retry.tiers())
            .await
            .unwrap();
        (conn, ch)
    }

    /// Publishes raw bytes to `hookfleet.events` like any AMQP producer, with a confirm.
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8]) {
        let (conn, ch) = self.producer().await;
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        let conf = ch
            .basic_publish(
                "hookfleet.events".into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(conf.is_ack());
        let _ = conn.close(200, "bye".into()).await;
    }

    /// Publishes a well-formed event; returns its id.
    pub async fn publish(
        &self,
        event_type: &str,
        data: serde_json::Value,
        tenant: Option<&str>,
    ) -> String {
        let id = format!("evt_{}", ulid::Ulid::new());
        let body =
            serde_json::json!({"id": id, "type": event_type, "tenant_id": tenant, "data": data});
        self.publish_raw(event_type, &serde_json::to_vec(&body).unwrap())
            .await;
        id
    }

    /// Publishes a well-formed event with message `headers` (a producer's
    /// `traceparent`, say), with a confirm; returns its id.
    pub async fn publish_with_headers(
        &self,
        event_type: &str,
        data: serde_json::Value,
        headers: FieldTable,
    ) -> String {
        let id = format!("evt_{}", ulid::Ulid::new());
        let body = serde_json::json!({"id": id, "type": event_type, "data": data});
        let (conn, ch) = self.producer().await;
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_headers(headers);
        let conf = ch
            .basic_publish(
                "hookfleet.events".into(),
                event_type.into(),
                BasicPublishOptions::default(),
                &serde_json::to_vec(&body).unwrap(),
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(conf.is_ack());
        let _ = conn.close(200, "bye".into()).await;
        id
    }

    /// Publishes many well-formed events of one type on one channel, pipelined,
    /// each confirmed; returns their ids in order.
    pub async fn publish_many(
        &self,
        event_type: &str,
        data: impl IntoIterator<Item = serde_json::Value>,
        tenant: Option<&str>,
    ) -> Vec<String> {
        let (conn, ch) = self.producer().await;
        let mut ids = Vec::new();
        let mut bodies = Vec::new();
        for d in data {
            let id = format!("evt_{}", ulid::Ulid::new());
            bodies.push(
                serde_json::to_vec(
                    &serde_json::json!({"id": id, "type": event_type, "tenant_id": tenant, "data": d}),
                )
                .unwrap(),
            );
            ids.push(id);
        }
        for chunk in bodies.chunks(500) {
            hookfleet_broker::publish_confirmed(
                &ch,
                chunk.iter().map(|b| hookfleet_broker::Outgoing {
                    exchange: "hookfleet.events",
                    routing_key: event_type,
                    mandatory: true,
                    payload: b,
                    properties: BasicProperties::default()
                        .with_content_type("application/json".into())
                        .with_delivery_mode(2),
                }),
            )
            .await
            .unwrap();
        }
        let _ = conn.close(200, "bye".into()).await;
        ids
    }

    /// A passive declare of `queue`: its ready messages and its consumers,
    /// `None` when it does not exist.
    async fn passive_declare(&self, queue: &str) -> Option<(u32, u32)> {
        let conn = hookfleet_broker::connect_url(&self.amqp_url, "test-inspect")
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let opts = QueueDeclareOptions {
            passive: true,
            durable: true,
            ..Default::default()
        };
        let n = ch
            .queue_declare(queue.into(), opts, FieldTable::default())
            .await
            .ok()
            .map(|q| (q.message_count(), q.consumer_count()));
        let _ = conn.close(200, "bye".into()).await;
        n
    }

    /// Consumers of a queue right now (0 when it does not exist).
    pub async fn consumers(&self, queue: &str) -> u32 {
        self.passive_declare(queue).await.map_or(0, |(_, c)| c)
    }

    /// Messages in a queue right now (0 when it does not exist).
    pub async fn queue_len(&self, queue: &str) -> u32 {
        self.passive_declare(queue).await.map_or(0, |(n, _)| n)
    }

    /// Dead letters kept in PostgreSQL (the workers' keepers move them there
    /// from `hookfleet.dead`).
    pub async fn dead_letters(&self) -> i64 {
        self.count("SELECT count(*) FROM dead_letters").await
    }

    /// Dead letters anywhere: kept in PostgreSQL, or still on `hookfleet.dead`
    /// (no worker's keeper has taken them yet, or none runs).
    pub async fn dead_total(&self) -> i64 {
        self.dead_letters().await + i64::from(self.queue_len("hookfleet.dead").await)
    }

    /// Whether a queue exists right now (passive declare).
    /// The names of the endpoint queues on this test's vhost.
    pub fn endpoint_queues(&self) -> Vec<String> {
        let out = Command::new("rabbitmqctl")
            .args(["list_queues", "-q", "-p", &self.name, "name"])
            .output()
            .expect("rabbitmqctl must be installed for the tests");
        assert!(out.status.success(), "rabbitmqctl list_queues");
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("hookfleet.endpoint."))
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }

    pub async fn queue_exists(&self, queue: &str) -> bool {
        self.passive_declare(queue).await.is_some()
    }

    /// Deletes a queue (as an operator or a broker without its definitions
    /// would lose it).
    pub async fn delete_queue(&self, queue: &str) {
        let conn = hookfleet_broker::connect_url(&self.amqp_url, "test-inspect")
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.queue_delete(queue.into(), Default::default())
            .await
            .unwrap();
        let _ = conn.close(200, "bye".into()).await;
    }

    /// Takes (and acks) every message of a queue: `(headers, body)`.
    pub async fn drain(&self, queue: &str) -> Vec<(FieldTable, Vec<u8>)> {
        let conn = hookfleet_broker::connect_url(&self.amqp_url, "test-inspect")
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let mut out = Vec::new();
        while let Some(m) = ch
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            out.push((
                m.delivery.properties.headers().clone().unwrap_or_default(),
                m.delivery.data.clone(),
            ));
            m.delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
        }
        let _ = conn.close(200, "bye".into()).await;
        out
    }

    /// Runs a query returning one text value.
    pub async fn count_text(&self, sql: &str) -> String {
        let c = self.pool.get().await.unwrap();
        c.query_one(sql, &[]).await.unwrap().get::<_, String>(0)
    }

    /// Runs a query returning one i64.
    pub async fn count(&self, sql: &str) -> i64 {
        let c = self.pool.get().await.unwrap();
        c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for t in self.apps.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            t.cancel();
        }
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.name])
            .output();
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

/// A running in-process app.
pub struct App {
    pub token: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub ops_addr: std::net::SocketAddr,
}

impl App {
    /// Graceful stop; returns the app's result.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.token.cancel();
        let task = self.task.take().unwrap();
        match tokio::time::timeout(Duration::from_secs(60), task).await {
            Ok(r) => r.unwrap(),
            Err(_) => panic!("the app did not stop within 60 s of its shutdown signal"),
        }
    }

    /// Aborts the app's task tree without a graceful stop (no acks, no flush): the
    /// in-process equivalent of `kill -9` for what the broker can tell.
    pub fn kill(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.token.cancel();
    }
}

/// Waits for `cond` to hold, polling, up to `timeout`; panics with `what` otherwise.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {timeout:?} waiting for: {what}");
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    pub fn webhook_id(&self) -> String {
        self.headers["webhook-id"].to_str().unwrap().to_owned()
    }
    /// Verifies the signature with the `standardwebhooks` crate.
    pub fn verify(&self, secret: &str) -> Result<(), String> {
        standardwebhooks::Webhook::new(secret)
            .map_err(|e| format!("{e:?}"))?
            .verify(&self.body, &self.headers)
            .map_err(|e| format!("{e:?}"))
    }
}

/// How a receiver answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    Ok,
    /// 500 for the first N requests of each webhook-id, then 200.
    FailFirst(u32),
    /// Always this status.
    Always(u16),
    /// Never answers (until the client gives up).
    Hang,
    /// 200 after this many milliseconds.
    Delay(u64),
}

struct RecvState {
    /// Requests being answered now, and the most seen at once.
    open: std::sync::atomic::AtomicUsize,
    max_open: std::sync::atomic::AtomicUsize,
    got: Mutex<Vec<Received>>,
    per_id: Mutex<HashMap<String, u32>>,
    behaviour: Mutex<Behaviour>,
}

/// A local HTTP receiver on 127.0.0.1:<random>.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<RecvState>,
    _stop: Arc<DropCancel>,
}

struct DropCancel(CancellationToken);
impl Drop for DropCancel {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Receiver {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let state = Arc::new(RecvState {
            open: Default::default(),
            max_open: Default::default(),
            got: Mutex::new(Vec::new()),
            per_id: Mutex::new(HashMap::new()),
            behaviour: Mutex::new(behaviour),
        });
        let token = CancellationToken::new();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let t = token.clone();
        tokio::spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(t.cancelled_owned())
                .await
        });
        Receiver {
            url,
            state,
            _stop: Arc::new(DropCancel(token)),
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.got.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.got.lock().unwrap().len()
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        *self.state.behaviour.lock().unwrap() = b;
    }

    /// The most requests this receiver was answering at the same time.
    pub fn max_concurrent(&self) -> usize {
        self.state
            .max_open
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Counts a request as open while it lives.
struct Open(Arc<RecvState>);
impl Open {
    fn new(s: &Arc<RecvState>) -> Open {
        use std::sync::atomic::Ordering::SeqCst;
        let now = s.open.fetch_add(1, SeqCst) + 1;
        s.max_open.fetch_max(now, SeqCst);
        Open(s.clone())
    }
}
impl Drop for Open {
    fn drop(&mut self) {
        self.0
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn handle(
    State(s): State<Arc<RecvState>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let _open = Open::new(&s);
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let seen = {
        let mut m = s.per_id.lock().unwrap();
        let c = m.entry(id).or_default();
        *c += 1;
        *c
    };
    s.got.lock().unwrap().push(Received { headers, body });
    let b = s.behaviour.lock().unwrap().clone();
    match b {
        Behaviour::Ok => StatusCode::OK.into_response(),
        Behaviour::FailFirst(n) if seen <= n => {
            (StatusCode::INTERNAL_SERVER_ERROR, "not yet").into_response()
        }
        Behaviour::FailFirst(_) => StatusCode::OK.into_response(),
        Behaviour::Always(code) => (StatusCode::from_u16(code).unwrap(), "nope").into_response(),
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Behaviour::Delay(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            StatusCode::OK.into_response()
        }
    }
}

/// The `hookfleet` binary built next to the test executable (the `hookfleet`
/// package's own CLI test makes cargo build it).
pub fn hookfleet_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("hookfleet");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p hookfleet`",
        bin.display()
    );
    bin
}

impl TestEnv {
    /// `hookfleet <args>` configured for this test (environment only).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(hookfleet_bin());
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &self.overrides {
            cmd.env(
                format!("HOOKFLEET__{}", k.replace('.', "__").to_uppercase()),
                v,
            );
        }
        cmd.env("HOOKFLEET__METRICS__LISTEN", "127.0.0.1:0");
        cmd
    }

    /// Starts `hookfleet <role>` as a child process with this test's configuration.
    pub fn spawn_process(&self, role: &str, extra_env: &[(&str, &str)]) -> std::process::Child {
        let mut cmd = self.command(&[role]);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd.spawn().expect("spawn hookfleet")
    }

    /// [`TestEnv::spawn_process`] with `/metrics` on a port of its own; returns
    /// the process (killed when dropped, so a failing test leaves none behind)
    /// and its ops base URL (`http://127.0.0.1:<port>`).
    pub fn spawn_with_ops(&self, args: &[&str], extra_env: &[(&str, &str)]) -> (Proc, String) {
        let port = free_port();
        let mut cmd = self.command(args);
        cmd.env("HOOKFLEET__METRICS__LISTEN", format!("127.0.0.1:{port}"));
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        // Its log, for when a test fails: <tmp>/<test env>-<role>-<port>.log
        let log = std::env::temp_dir().join(format!("{}-{}-{port}.log", self.name, args[0]));
        cmd.stdout(std::process::Stdio::null()).stderr(
            std::fs::File::create(&log)
                .map(std::process::Stdio::from)
                .unwrap_or_else(|_| std::process::Stdio::null()),
        );
        (
            Proc {
                child: cmd.spawn().expect("spawn hookfleet"),
                log,
            },
            format!("http://127.0.0.1:{port}"),
        )
    }
}

/// A child process that is killed (SIGKILL) when dropped, unless it has exited.
pub struct Proc {
    pub child: std::process::Child,
    /// Its stderr: the log.
    pub log: std::path::PathBuf,
}

impl std::ops::Deref for Proc {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.child
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.child
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Kept only when the test failed.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A loopback port free right now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fetches `<base>/metrics` and returns the value of one sample (the sum over
/// every series of `name` whose labels contain all of `labels`, e.g.
/// `outcome="dead"`); `None` when unreachable or absent.
pub async fn scrape(base: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        if metric == name && labels.iter().all(|l| rest.contains(l)) {
            *found.get_or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    found
}

/// Sends SIGTERM to a child process.
pub fn sigterm(child: &std::process::Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -TERM {}", child.id());
}

/// Waits for a child to exit, at most `timeout`; kills it (and fails) otherwise.
pub async fn wait_exit(
    child: &mut std::process::Child,
    timeout: Duration,
) -> std::process::ExitStatus {
    let end = std::time::Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            panic!("process {} did not exit within {timeout:?}", child.id());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The admin key the API tests run with.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

impl TestEnv {
    /// Starts router, worker and the REST API in-process; returns the app and the
    /// API's base URL.
    pub async fn start_api(&self, roles: Roles) -> (App, String) {
        let ops = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", api.local_addr().unwrap());
        let ops_addr = ops.local_addr().unwrap();
        let token = CancellationToken::new();
        self.apps.lock().unwrap().push(token.clone());
        let mut settings = (*self.settings()).clone();
        if settings.api.admin_key.is_none() {
            let mut o: Vec<(&str, &str)> = self
                .overrides
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            o.push(("api.admin_key", ADMIN_KEY));
            settings = Settings::with_overrides(&o).unwrap();
        }
        let task = tokio::spawn(hookfleet::app::run_with_api(
            Arc::new(settings),
            roles,
            ops,
            Some(api),
            token.clone(),
        ));
        let client = reqwest::Client::new();
        wait_for("the API to answer", Duration::from_secs(30), || async {
            client
                .get(format!("{base}/api/v1/openapi.json"))
                .send()
                .await
                .is_ok()
        })
        .await;
        (
            App {
                token,
                task: Some(task),
                ops_addr,
            },
            base,
        )
    }
}

/// A small API client: bearer key and base URL.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
    /// Sent as `Hookfleet-Tenant` when set ([`Api::for_tenant`]).
    pub tenant: Option<String>,
}

impl Api {
    pub fn new(base: &str, key: &str) -> Api {
        Api {
            base: base.to_owned(),
            key: key.to_owned(),
            http: reqwest::Client::new(),
            tenant: None,
        }
    }

    /// The same client, acting for `tenant` (`Hookfleet-Tenant`).
    pub fn for_tenant(&self, tenant: &str) -> Api {
        Api {
            tenant: Some(tenant.to_owned()),
            ..self.clone()
        }
    }

    pub fn with_key(&self, key: &str) -> Api {
        Api {
            key: key.to_owned(),
            ..self.clone()
        }
    }

    /// Sends a request; returns the status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(m, format!("{}{}", self.base, path))
            .bearer_auth(&self.key);
        if let Some(t) = &self.tenant {
            req = req.header("Hookfleet-Tenant", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            if text.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
            },
        )
    }
}

/// Stops the RabbitMQ application; the returned guard starts it again when dropped
/// (also when the test panics), so the broker is always left running. Only for the
/// tests named `*broker_restart*`, which `make test` runs alone.
pub fn stop_broker_app() -> BrokerRestart {
    let out = Command::new("rabbitmqctl")
        .arg("stop_app")
        .output()
        .expect("rabbitmqctl");
    assert!(
        out.status.success(),
        "stop_app: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    BrokerRestart
}

pub struct BrokerRestart;
impl Drop for BrokerRestart {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").output();
        let _ = Command::new("rabbitmqctl")
            .args(["await_startup", "--timeout", "60"])
            .output();
    }
}

/// Makes sure the pinned PyPI packages (`name`, `version`) are installed for
/// `python3`: .ci/run installs them; this installs them on a developer machine
/// that lacks them (or has another version).
pub fn ensure_python_packages(pins: &[(&str, &str)]) {
    let missing: Vec<String> = pins
        .iter()
        .filter(|(name, version)| {
            let check = format!(
                "import importlib.metadata as m, sys; sys.exit(m.version('{name}') != '{version}')"
            );
            !Command::new("python3")
                .args(["-c", &check])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|(name, version)| format!("{name}=={version}"))
        .collect();
    if !missing.is_empty() {
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "-q"])
            .args(&missing)
            .status();
    }
}
