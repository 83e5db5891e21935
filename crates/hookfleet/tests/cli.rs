//! The binary's start-up behaviour: bad configuration stops it with exit code
//! 78 and a message naming the key and its variable; `--help` lists every role
//! and the exit codes; `listen` and `verify` need no configuration and read the
//! signing secret from the command line, HOOKFLEET_SECRET or a file.
use hookfleet_core::signing::Secret;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Command, Stdio};

/// Exit code of a configuration error (EX_CONFIG).
const CONFIG: i32 = 78;
/// Exit code of a usage error (clap's).
const USAGE: i32 = 2;

fn command(env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookfleet"));
    cmd.args(args).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The exit code, and stdout followed by stderr.
fn outcome(out: std::process::Output) -> (i32, String) {
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn hookfleet(env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    outcome(command(env, args).output().expect("run hookfleet"))
}

#[test]
fn invalid_configuration_names_the_key() {
    let cases = [
        (
            "HOOKFLEET__DELIVERY__TIMEOUT",
            "forever",
            "delivery.timeout",
        ),
        ("HOOKFLEET__RETRY__SCHEDULE", "5s,never", "retry.schedule"),
        ("HOOKFLEET__AMQP__URL", "http://localhost", "amqp.url"),
        (
            "HOOKFLEET__AMQP__TLS__CA_FILE",
            "/nonexistent/hookfleet-ca.pem",
            "amqp.tls.ca_file",
        ),
        ("HOOKFLEET__DATABASE__URL", "mysql://x", "database.url"),
        (
            "HOOKFLEET__DELIVERY__ALLOW_NETWORKS",
            "10.0.0.0/99",
            "delivery.allow_networks",
        ),
        ("HOOKFLEET__DELIVERY__TIMEOTU", "1s", "timeotu"),
        (
            "HOOKFLEET__DELIVERY__PROXY",
            "ftp://proxy.internal:21",
            "delivery.proxy",
        ),
        (
            "HOOKFLEET__DELIVERY__NO_PROXY",
            "ok.example, not a host",
            "delivery.no_proxy",
        ),
        (
            "HOOKFLEET__API__MAX_CONNECTIONS",
            "0",
            "api.max_connections",
        ),
        (
            "HOOKFLEET__API__HEADER_READ_TIMEOUT",
            "soon",
            "api.header_read_timeout",
        ),
    ];
    for (k, v, want) in cases {
        let (code, out) = hookfleet(&[(k, v)], &["worker"]);
        assert_eq!(code, CONFIG, "{k}={v} should stop the process: {out}");
        assert!(
            out.contains(want),
            "{k}={v}: message should name {want}: {out}"
        );
        if want.contains('.') {
            assert!(out.contains(k), "{k}={v}: message should name {k}: {out}");
        }
    }
}

#[test]
fn unreadable_config_file_is_an_error() {
    let (code, out) = hookfleet(&[], &["--config", "/nonexistent/hookfleet.toml", "router"]);
    assert_eq!(code, CONFIG);
    assert!(out.contains("hookfleet.toml"), "{out}");
}

#[test]
fn a_key_the_command_needs_is_a_configuration_error() {
    let (code, out) = hookfleet(&[], &["api"]);
    assert_eq!(code, CONFIG, "{out}");
    assert!(
        out.contains("api.admin_key") && out.contains("HOOKFLEET__API__ADMIN_KEY"),
        "{out}"
    );
    let (code, out) = hookfleet(&[], &["secrets", "reseal"]);
    assert_eq!(code, CONFIG, "{out}");
    assert!(out.contains("secrets.encryption_keys"), "{out}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, out) = hookfleet(&[], &["frobnicate"]);
    assert_eq!(code, USAGE, "{out}");
    let (code, out) = hookfleet(&[], &["verify", "--id", "msg_1"]);
    assert_eq!(code, USAGE, "{out}");
}

#[test]
fn help_lists_the_roles_and_the_exit_codes() {
    let (code, out) = hookfleet(&[], &["--help"]);
    assert_eq!(code, 0);
    for role in [
        "migrate", "router", "worker", "all", "endpoint", "listen", "emit",
    ] {
        assert!(out.contains(role), "--help should list {role}: {out}");
    }
    for exit in ["Exit codes", "78", "usage error", "configuration error"] {
        assert!(out.contains(exit), "--help should explain {exit}: {out}");
    }
}

/// A bad configuration in the environment: commands that load it stop.
const BROKEN_CONFIG: (&str, &str) = ("HOOKFLEET__DELIVERY__TIMEOUT", "never");

/// A delivery signed with a fresh secret: (secret, id, timestamp, signature, body).
fn signed() -> (Secret, String, String, String, Vec<u8>) {
    let secret = Secret::generate();
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let body = br#"{"type":"match.found","data":{}}"#.to_vec();
    let sig = secret.sign("msg_cli", ts, &body);
    (secret, "msg_cli".into(), ts.to_string(), sig, body)
}

fn secret_file(secret: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("hookfleet-cli-{}", ulid::Ulid::new()));
    std::fs::write(&path, format!("{secret}\n")).expect("write the secret file");
    path
}

/// `hookfleet verify` with `args`, the body on stdin.
fn verify(env: &[(&str, &str)], args: &[&str], body: &[u8]) -> (i32, String) {
    let mut child = command(env, &["verify"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hookfleet verify");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body)
        .expect("write the body");
    outcome(child.wait_with_output().expect("hookfleet verify"))
}

#[test]
fn verify_needs_no_configuration_and_reads_the_secret_from_env_or_file() {
    let (secret, id, ts, sig, body) = signed();
    let headers = ["--id", &id, "--timestamp", &ts, "--signature", &sig];
    fn with<'a>(headers: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [headers, extra].concat()
    }
    // On the command line, as before.
    let (code, out) = verify(
        &[BROKEN_CONFIG],
        &with(&headers, &["--secret", secret.expose()]),
        &body,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("signature OK"), "{out}");
    // From the environment.
    let (code, out) = verify(
        &[BROKEN_CONFIG, ("HOOKFLEET_SECRET", secret.expose())],
        &headers,
        &body,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("signature OK"), "{out}");
    // From a file, which wins over the environment.
    let file = secret_file(secret.expose());
    let other = Secret::generate();
    let (code, out) = verify(
        &[BROKEN_CONFIG, ("HOOKFLEET_SECRET", other.expose())],
        &with(
            &headers,
            &["--secret-file", file.to_str().expect("utf-8 path")],
        ),
        &body,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("signature OK"), "{out}");
    // The wrong secret from the environment still fails, with the reason.
    let (code, out) = verify(&[("HOOKFLEET_SECRET", other.expose())], &headers, &body);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("wrong secret"), "{out}");
    // No secret at all is a usage error; a missing file a failure naming it.
    let (code, out) = verify(&[], &headers, &body);
    assert_eq!(code, USAGE, "{out}");
    assert!(out.contains("HOOKFLEET_SECRET"), "{out}");
    let (code, out) = verify(
        &[],
        &with(&headers, &["--secret-file", "/nonexistent/secret"]),
        &body,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("/nonexistent/secret"), "{out}");
    // Both flags at once: clap refuses.
    let (code, out) = verify(
        &[],
        &with(
            &headers,
            &["--secret", secret.expose(), "--secret-file", "/x"],
        ),
        &body,
    );
    assert_eq!(code, USAGE, "{out}");
    let _ = std::fs::remove_file(file);
}

/// Kills the `listen` process even when an assertion fails.
struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn listen_needs_no_configuration_and_reads_the_secret_from_a_file() {
    let (secret, id, ts, sig, body) = signed();
    let file = secret_file(secret.expose());
    let mut child = Killed(
        command(
            &[BROKEN_CONFIG],
            &[
                "listen",
                "--port",
                "0",
                "--secret-file",
                file.to_str().expect("utf-8 path"),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hookfleet listen"),
    );
    // "listening on http://127.0.0.1:<port>/"
    let mut line = String::new();
    BufReader::new(child.0.stderr.take().expect("stderr"))
        .read_line(&mut line)
        .expect("read stderr");
    let port = line
        .trim()
        .strip_prefix("listening on http://127.0.0.1:")
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("listen did not start: {line}"));
    let mut conn = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect");
    write!(
        conn,
        "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\nwebhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {sig}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .expect("send the head");
    conn.write_all(&body).expect("send the body");
    let mut response = String::new();
    conn.read_to_string(&mut response).expect("read the answer");
    assert!(response.starts_with("HTTP/1.1 204"), "{response}");
    let mut printed = String::new();
    BufReader::new(child.0.stdout.take().expect("stdout"))
        .read_line(&mut printed)
        .expect("read stdout");
    assert!(
        printed.contains("msg_cli") && printed.contains("signature OK"),
        "{printed}"
    );
    let _ = std::fs::remove_file(file);
}
