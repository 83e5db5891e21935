//! The binary's start-up behaviour: bad configuration stops it with a message
//! naming the key; `--help` lists every role.
use std::process::Command;

fn hookfleet(env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookfleet"));
    cmd.args(args).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hookfleet");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
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
        assert_eq!(code, 2, "{k}={v} should stop the process: {out}");
        assert!(
            out.contains(want),
            "{k}={v}: message should name {want}: {out}"
        );
    }
}

#[test]
fn unreadable_config_file_is_an_error() {
    let (code, out) = hookfleet(&[], &["--config", "/nonexistent/hookfleet.toml", "router"]);
    assert_eq!(code, 2);
    assert!(out.contains("hookfleet.toml"), "{out}");
}

#[test]
fn help_lists_the_roles() {
    let (code, out) = hookfleet(&[], &["--help"]);
    assert_eq!(code, 0);
    for role in [
        "migrate", "router", "worker", "all", "endpoint", "listen", "emit",
    ] {
        assert!(out.contains(role), "--help should list {role}: {out}");
    }
}
