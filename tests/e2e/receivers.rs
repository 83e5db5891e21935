//! The receiver side (docs/WEBHOOKS.md): every example receiver under
//! `examples/receivers/` verifies a real delivery from a running hookfleet,
//! rejects a tampered one and drops a duplicate; the openssl script and
//! `hookfleet verify` check a captured delivery and say why one fails; the docs
//! show exactly the files that these tests run.
use hookfleet::Roles;
use hookfleet_core::signing::Secret;
use hookfleet_tests::*;
use serde_json::json;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(90);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A receiver process whose stdout lines are collected; killed when dropped.
struct Running {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    name: &'static str,
}

impl Running {
    fn start(name: &'static str, mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting the {name} receiver: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    lines.lock().unwrap().push(l);
                }
            });
        }
        Running { child, lines, name }
    }

    /// Waits for a line that starts with `prefix`; returns it.
    async fn line(&self, prefix: &str) -> String {
        let find = || {
            self.lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with(prefix))
                .cloned()
        };
        let what = format!("the {} receiver to print `{prefix}…`", self.name);
        let lines = self.lines.clone();
        wait_for(&what, LONG, || {
            let found = find().is_some();
            let lines = lines.clone();
            async move {
                if !found {
                    // Shown when the wait times out.
                    eprintln!("so far: {:?}", lines.lock().unwrap());
                }
                found
            }
        })
        .await;
        find().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signed request from the test itself (for the tampered and duplicate cases).
async fn post(url: &str, secret: &str, id: &str, body: &[u8], tamper: bool) -> u16 {
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let sig = Secret::parse(secret).unwrap().sign(id, ts, body);
    let mut sent = body.to_vec();
    if tamper {
        sent.extend_from_slice(b" ");
    }
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(sent)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The shared scenario: hookfleet delivers a real event to the example, which
/// verifies it; a tampered body is refused; a repeated webhook-id is a duplicate.
async fn example_receiver_verifies(name: &'static str, program: &str, args: &[&str]) {
    let env = TestEnv::new(&[]).await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/webhooks");
    let (_, secret) = env.add_endpoint(&url, &["match.found"], None).await;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(repo())
        .env("PORT", port.to_string())
        .env("WEBHOOK_SECRET", &secret);
    let rx = Running::start(name, cmd);
    rx.line("listening on").await;
    let app = env.start(Roles::ALL).await;

    env.publish(
        "match.found",
        json!({"match_id": 42, "query_video_id": "dQw4w9WgXcQ", "matched_video_id": "9bZkp7q19f0", "confidence": 0.95}),
        None,
    )
    .await;
    let line = rx.line("verified ").await;
    assert!(line.ends_with(" match.found"), "{line}");
    let webhook_id = line.split_whitespace().nth(1).unwrap().to_owned();
    wait_for("the delivery recorded as succeeded", LONG, || async {
        env.count(&format!(
            "SELECT count(*) FROM deliveries WHERE event_id = '{webhook_id}' AND status = 'succeeded'"
        ))
        .await
            == 1
    })
    .await;

    let body = br#"{"id":"evt_t","type":"user.created","tenant_id":null,"timestamp":"2026-11-28T12:00:00Z","data":{"user_id":1,"username":"ada"}}"#;
    assert_eq!(post(&url, &secret, "msg_tampered", body, true).await, 400);
    rx.line("rejected msg_tampered").await;
    assert_eq!(post(&url, &secret, "msg_twice", body, false).await, 204);
    assert_eq!(post(&url, &secret, "msg_twice", body, false).await, 204);
    rx.line("verified msg_twice user.created").await;
    rx.line("duplicate msg_twice").await;
    app.stop().await.unwrap();
}

fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_receiver_verifies_a_real_delivery() {
    if !python_has("standardwebhooks") {
        // Installed by .ci/run; installed here for a developer machine that lacks it.
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "-q", "standardwebhooks"])
            .status();
    }
    example_receiver_verifies(
        "python",
        "python3",
        &["-u", "examples/receivers/python/receiver.py"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_receiver_verifies_a_real_delivery() {
    let dir = repo().join("examples/receivers/node");
    if !dir.join("node_modules/standardwebhooks").exists() {
        // Installed by .ci/run from the lockfile; here for a developer machine.
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "npm ci in {} failed", dir.display());
    }
    example_receiver_verifies("node", "node", &["examples/receivers/node/receiver.js"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_receiver_verifies_a_real_delivery() {
    example_receiver_verifies("rust", env!("CARGO_BIN_EXE_example-receiver"), &[]).await;
}

/// One real delivery, captured by a plain receiver.
async fn capture() -> (Received, String) {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let (_, secret) = env.add_endpoint(&rx.url, &["*"], None).await;
    let app = env.start(Roles::ALL).await;
    env.publish(
        "user.created",
        json!({"user_id": 7, "username": "ada"}),
        None,
    )
    .await;
    wait_for("one delivery", LONG, || async { rx.count() == 1 }).await;
    app.stop().await.unwrap();
    (rx.received().remove(0), secret)
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers[name].to_str().unwrap()
}

/// Runs `cmd` with `body` on stdin; returns (success, stdout + stderr).
fn run_with_stdin(mut cmd: Command, body: &[u8]) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_script_and_hookfleet_verify_check_a_captured_delivery() {
    let (got, secret) = capture().await;
    let (id, ts, sig) = (
        header(&got, "webhook-id"),
        header(&got, "webhook-timestamp"),
        header(&got, "webhook-signature"),
    );
    let script = repo().join("examples/receivers/shell/verify.sh");
    let shell = |secret: &str| {
        let mut c = Command::new("bash");
        c.arg(&script)
            .args([id, ts, sig])
            .env("WEBHOOK_SECRET", secret);
        c
    };
    let (ok, out) = run_with_stdin(shell(&secret), &got.body);
    assert!(ok && out.contains("signature OK"), "{out}");
    let mut tampered = got.body.to_vec();
    tampered[0] = b' ';
    let (ok, out) = run_with_stdin(shell(&secret), &tampered);
    assert!(!ok && out.contains("signature mismatch"), "{out}");

    let verify = |secret: &str, extra: &[&str]| {
        let mut c = Command::new(hookfleet_bin());
        c.args(["verify", "--secret", secret, "--id", id, "--timestamp", ts])
            .args(["--signature", sig])
            .args(extra);
        c
    };
    let (ok, out) = run_with_stdin(verify(&secret, &[]), &got.body);
    assert!(ok && out.contains("signature OK"), "{out}");
    let other = Secret::generate();
    let (ok, out) = run_with_stdin(verify(other.expose(), &[]), &got.body);
    assert!(!ok && out.contains("wrong secret"), "{out}");
    let mut newline = got.body.to_vec();
    newline.push(b'\n');
    let (ok, out) = run_with_stdin(verify(&secret, &[]), &newline);
    assert!(!ok && out.contains("body changed"), "{out}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (ok, out) = run_with_stdin(verify(&secret, &["--tolerance", "1"]), &got.body);
    assert!(!ok && out.contains("timestamp too old"), "{out}");
}

/// Fenced blocks of a Markdown file: (language, text).
fn fenced_blocks(md: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in md.lines() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(lang)) => current = Some((lang.trim().to_owned(), Vec::new())),
            (Some(_), Some(_)) => {
                let (lang, text) = current.take().unwrap();
                blocks.push((lang, text.join("\n")));
            }
            (Some((_, text)), None) => text.push(line),
            (None, None) => {}
        }
    }
    blocks
}

/// Lines trimmed, blank ones dropped: indentation inside a test function does
/// not count.
fn normalized(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every program in docs/WEBHOOKS.md and docs/PRODUCERS.md (rust, python,
/// javascript and shell-script blocks) is part of a file the suite runs: an
/// example under `examples/`, or a test that executes it.
#[test]
fn the_docs_show_the_examples_the_tests_run() {
    let tested = [
        "examples/receivers/python/receiver.py",
        "examples/receivers/node/receiver.js",
        "examples/receivers/rust/src/main.rs",
        "examples/receivers/shell/verify.sh",
        "examples/producers/soundhash_publisher.py",
        "crates/emit/tests/recording.rs",
        "tests/e2e/doc_examples.rs",
        "sdks/python/tests/test_docs.py",
        "sdks/python/tests/src/webhooks/__init__.py",
    ];
    let sources: Vec<(String, String)> = tested
        .iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(repo().join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            (f.to_string(), normalized(&text))
        })
        .collect();
    // Each receiver example appears whole in the receivers' guide.
    let webhooks = std::fs::read_to_string(repo().join("docs/WEBHOOKS.md")).unwrap();
    let blocks = fenced_blocks(&webhooks);
    for f in &tested[..4] {
        let whole = std::fs::read_to_string(repo().join(f)).unwrap();
        assert!(
            blocks.iter().any(|(_, b)| b.trim_end() == whole.trim_end()),
            "docs/WEBHOOKS.md must show {f} whole, as it is"
        );
    }
    for doc in ["docs/WEBHOOKS.md", "docs/PRODUCERS.md"] {
        let md = std::fs::read_to_string(repo().join(doc)).unwrap();
        for (lang, block) in fenced_blocks(&md) {
            let program = matches!(lang.as_str(), "rust" | "python" | "javascript" | "js")
                || (lang == "sh" && block.starts_with("#!"));
            if !program {
                continue;
            }
            let b = normalized(&block);
            assert!(
                sources.iter().any(|(_, s)| s.contains(&b)),
                "{doc}: this {lang} block is in none of the tested files {tested:?}:\n{block}"
            );
        }
    }
}
