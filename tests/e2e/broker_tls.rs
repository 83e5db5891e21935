//! TLS to the broker (`amqps://`, `amqp.tls.*`) and several broker addresses
//! (`amqp.url` as a list), against the local RabbitMQ.
//!
//! The TLS tests need the node's TLS listener on 127.0.0.1:5671, which
//! `scripts/services.sh` (run by `make test` and `.ci/run`) sets up with a
//! development CA in /var/lib/rabbitmq/hookfleet-tls (`HOOKFLEET_TEST_MQ_TLS_DIR`
//! to use another). The tests sign their own client certificates with that CA
//! and make their own untrusted CA. Without the listener they say they are
//! skipped, or fail under CI, where services.sh always runs first.
use hookfleet::Roles;
use hookfleet_tests::{free_port, wait_for, Behaviour, Receiver, TestEnv};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);
const TLS_PORT: u16 = 5671;

/// The directory of the local listener's CA (`ca.pem`, `ca.key`), when the
/// listener is up; otherwise says why the test is skipped (or fails under CI).
fn tls_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("HOOKFLEET_TEST_MQ_TLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/rabbitmq/hookfleet-tls"));
    let listening = std::net::TcpStream::connect(("127.0.0.1", TLS_PORT)).is_ok();
    let readable =
        std::fs::read(dir.join("ca.pem")).is_ok() && std::fs::read(dir.join("ca.key")).is_ok();
    if listening && readable {
        return Some(dir);
    }
    let why = format!(
        "no RabbitMQ TLS listener on 127.0.0.1:{TLS_PORT} with its CA readable in {} \
         (listening: {listening}, CA readable: {readable}); run scripts/services.sh",
        dir.display()
    );
    if matches!(std::env::var("CI").as_deref(), Ok("true" | "1")) {
        panic!("{test}: {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
    None
}

/// Files a test writes (certificates, keys), removed when dropped.
struct TempDir(PathBuf);
impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("{name}-tls"));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn write(&self, file: &str, contents: &str) -> String {
        let p = self.0.join(file);
        std::fs::write(&p, contents).unwrap();
        p.to_string_lossy().into_owned()
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A client certificate and key (PEM) for `cn`, signed by `issuer`.
fn client_cert(cn: &str, issuer: &rcgen::Issuer<'_, rcgen::KeyPair>) -> (String, String) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// The local listener's CA, to sign client certificates with.
fn local_ca(dir: &Path) -> rcgen::Issuer<'static, rcgen::KeyPair> {
    let key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca.key")).unwrap()).unwrap();
    rcgen::Issuer::from_ca_cert_pem(&std::fs::read_to_string(dir.join("ca.pem")).unwrap(), key)
        .unwrap()
}

/// A CA of the test's own, which the broker does not know: its certificate
/// (PEM) and the issuer to sign with.
fn stranger_ca() -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "a CA nobody trusts");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), rcgen::Issuer::new(params, key))
}

/// A `match.found` event's data, valid for the catalog's schema.
fn match_found(id: i64) -> serde_json::Value {
    json!({"match_id": id, "query_video_id": "q", "matched_video_id": "m", "confidence": 0.9})
}

fn amqps_url(env: &TestEnv, host: &str) -> String {
    format!("amqps://guest:guest@{host}:{TLS_PORT}/{}", env.name)
}

/// `rabbitmqctl list_connections` of the test's vhost: one line per
/// connection with its `ssl` flag, peer certificate subject and client
/// properties (which carry the connection name).
fn connections(vhost: &str) -> Vec<String> {
    let out = Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "--silent",
            "vhost",
            "ssl",
            "peer_cert_subject",
            "client_properties",
        ])
        .output()
        .expect("rabbitmqctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split('\t').next() == Some(vhost))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_event_published_over_amqps_is_delivered_and_every_role_uses_tls() {
    let Some(dir) = tls_dir("tls_event_published_over_amqps_is_delivered_and_every_role_uses_tls")
    else {
        return;
    };
    let ca = dir.join("ca.pem").to_string_lossy().into_owned();
    let env = TestEnv::new(&[("amqp.tls.ca_file", &ca)]).await;
    let url = amqps_url(&env, "localhost");
    let env = env.with_override("amqp.url", &url);
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    let app = env.start(Roles::ALL).await;

    // A producer with the emit SDK over amqps, trusting the same CA.
    let settings = env.settings();
    let emitter = hookfleet_emit::Emitter::connect(hookfleet_emit::EmitterConfig {
        amqp_url: url.clone(),
        amqp_tls: settings.amqp.target.tls.clone(),
        spill_dir: std::env::temp_dir().join(format!("{}-spill", env.name)),
        ..Default::default()
    })
    .unwrap();
    let mut ev = hookfleet_emit::Event::new("match.found", match_found(1));
    ev.id = "evt_tls_1".into();
    emitter.emit(ev);
    assert!(emitter.flush(LONG), "the emitter's event was confirmed");
    wait_for(
        "the receiver to get the event sent over amqps",
        LONG,
        || async { rx.count() >= 1 },
    )
    .await;
    assert_eq!(rx.received()[0].webhook_id(), "evt_tls_1");

    // Every connection on the test's vhost is TLS: the router's, the worker's
    // and the producer's.
    let conns = connections(&env.name);
    for name in ["hookfleet-router", "hookfleet-worker", "hookfleet-emit"] {
        assert!(
            conns.iter().any(|c| c.contains(name)),
            "no {name} connection on the vhost: {conns:#?}"
        );
    }
    for c in &conns {
        assert_eq!(c.split('\t').nth(1), Some("true"), "not TLS: {c}");
    }
    emitter.shutdown(Duration::from_secs(10));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_certificate_is_presented_and_checked_by_the_broker() {
    let Some(dir) = tls_dir("tls_client_certificate_is_presented_and_checked_by_the_broker") else {
        return;
    };
    let env = TestEnv::new(&[]).await;
    let files = TempDir::new(&env.name);
    let ca = dir.join("ca.pem").to_string_lossy().into_owned();
    let cn = format!("hookfleet-test-{}", env.name);
    let (cert, key) = client_cert(&cn, &local_ca(&dir));
    let (cert_file, key_file) = (
        files.write("client.pem", &cert),
        files.write("client.key", &key),
    );
    // 127.0.0.1 in the URL; the server certificate names localhost too, and
    // server_name makes the client check that name instead.
    let settings = hookfleet_core::Settings::with_overrides(&[
        ("amqp.url", &amqps_url(&env, "127.0.0.1")),
        ("amqp.tls.ca_file", &ca),
        ("amqp.tls.cert_file", &cert_file),
        ("amqp.tls.key_file", &key_file),
        ("amqp.tls.server_name", "localhost"),
    ])
    .unwrap();
    let conn = hookfleet_broker::connect(&settings.amqp.target, "test-client-cert")
        .await
        .expect("connects with a client certificate the broker trusts");
    // The broker saw the certificate: its subject is on the connection.
    let conns = connections(&env.name);
    assert!(
        conns
            .iter()
            .any(|c| c.contains("test-client-cert") && c.contains(&cn)),
        "the broker did not record the client certificate {cn}: {conns:#?}"
    );
    hookfleet_broker::close(&conn, "done").await;

    // A client certificate from a CA the broker does not trust is refused by it
    // (verify_peer): proof that the certificate is sent and checked.
    let (_, stranger) = stranger_ca();
    let (cert, key) = client_cert("nobody", &stranger);
    let (cert_file, key_file) = (files.write("bad.pem", &cert), files.write("bad.key", &key));
    let settings = hookfleet_core::Settings::with_overrides(&[
        ("amqp.url", &amqps_url(&env, "localhost")),
        ("amqp.tls.ca_file", &ca),
        ("amqp.tls.cert_file", &cert_file),
        ("amqp.tls.key_file", &key_file),
    ])
    .unwrap();
    let err = hookfleet_broker::connect(&settings.amqp.target, "test-bad-client-cert")
        .await
        .expect_err("the broker refuses a client certificate from an unknown CA");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("127.0.0.1:5671") || msg.contains("localhost:5671"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_untrusted_ca_or_wrong_name_fails_with_a_clear_error() {
    let Some(dir) = tls_dir("tls_untrusted_ca_or_wrong_name_fails_with_a_clear_error") else {
        return;
    };
    let env = TestEnv::new(&[]).await;
    let files = TempDir::new(&env.name);
    let (stranger_pem, _) = stranger_ca();
    let stranger_file = files.write("stranger-ca.pem", &stranger_pem);
    let url = amqps_url(&env, "localhost");

    // The broker's certificate does not chain to amqp.tls.ca_file.
    let settings = hookfleet_core::Settings::with_overrides(&[
        ("amqp.url", &url),
        ("amqp.tls.ca_file", &stranger_file),
    ])
    .unwrap();
    let msg = format!(
        "{:#}",
        hookfleet_broker::connect(&settings.amqp.target, "test-bad-ca")
            .await
            .expect_err("an untrusted server certificate is refused")
    );
    assert!(msg.contains("TLS handshake failed"), "{msg}");
    assert!(msg.contains("UnknownIssuer"), "{msg}");
    assert!(msg.contains("amqp.tls.ca_file"), "{msg}");
    assert!(msg.contains("amqps://localhost:5671"), "{msg}");
    assert!(
        !msg.contains("guest:guest"),
        "the password is not shown: {msg}"
    );

    // The right CA, but a name the certificate does not carry.
    let ca = dir.join("ca.pem").to_string_lossy().into_owned();
    let settings = hookfleet_core::Settings::with_overrides(&[
        ("amqp.url", &url),
        ("amqp.tls.ca_file", &ca),
        ("amqp.tls.server_name", "rabbitmq.example.com"),
    ])
    .unwrap();
    let msg = format!(
        "{:#}",
        hookfleet_broker::connect(&settings.amqp.target, "test-bad-name")
            .await
            .expect_err("a certificate for another name is refused")
    );
    assert!(msg.contains("not valid for name"), "{msg}");
    assert!(msg.contains("amqp.tls.server_name"), "{msg}");

    // The right CA and the URL's own name work.
    let ok =
        hookfleet_core::Settings::with_overrides(&[("amqp.url", &url), ("amqp.tls.ca_file", &ca)])
            .unwrap();
    let conn = hookfleet_broker::connect(&ok.amqp.target, "test-good-ca")
        .await
        .expect("the local CA is trusted");
    hookfleet_broker::close(&conn, "done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_addresses_skip_a_dead_one_and_the_service_works() {
    let dead = free_port();
    let env = TestEnv::new(&[]).await;
    let url = format!(
        "amqp://guest:guest@127.0.0.1:{dead}/{vhost}, amqp://guest:guest@127.0.0.1:5672/{vhost}",
        vhost = env.name
    );
    let env = env.with_override("amqp.url", &url);
    assert_eq!(env.settings().amqp.target.addresses.len(), 2);
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    let app = env.start(Roles::ALL).await;
    let id = env.publish("match.found", match_found(2), None).await;
    wait_for("the receiver to get the event", LONG, || async {
        rx.count() >= 1
    })
    .await;
    assert_eq!(rx.received()[0].webhook_id(), id);
    let conns = connections(&env.name);
    for name in ["hookfleet-router", "hookfleet-worker"] {
        assert!(
            conns.iter().any(|c| c.contains(name)),
            "no {name} connection on the vhost: {conns:#?}"
        );
    }

    // The CLI takes the same list: `hookfleet emit` publishes through it.
    let out = env
        .command(&["emit", "match.found", "--data", &match_found(3).to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hookfleet emit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the CLI's event to be delivered too", LONG, || async {
        rx.count() >= 2
    })
    .await;
    app.stop().await.unwrap();
}

/// `(pid, ssl)` of the connections on `vhost` whose client properties name
/// `name` (`hookfleet-router`, say).
fn connections_named(vhost: &str, name: &str) -> Vec<(String, bool)> {
    let out = Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "--silent",
            "pid",
            "vhost",
            "ssl",
            "client_properties",
        ])
        .output()
        .expect("rabbitmqctl");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (pid, vh, ssl, props) = (f.next()?, f.next()?, f.next()?, f.next()?);
            (vh == vhost && props.contains(name)).then(|| (pid.to_owned(), ssl == "true"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_moves_on_to_the_next_address_and_the_api_skips_a_dead_one() {
    let Some(dir) = tls_dir("a_lost_connection_moves_on_to_the_next_address") else {
        return;
    };
    // Three addresses of the one local node, told apart by the broker's `ssl`
    // flag: a dead port, the plain listener, the TLS listener.
    let dead = free_port();
    let ca = dir.join("ca.pem").to_string_lossy().into_owned();
    let env = TestEnv::new(&[("amqp.tls.ca_file", &ca)]).await;
    let url = format!(
        "amqp://guest:guest@127.0.0.1:{dead}/{vh}, amqp://guest:guest@127.0.0.1:5672/{vh}, {tls}",
        vh = env.name,
        tls = amqps_url(&env, "localhost"),
    );
    let env = env.with_override("amqp.url", &url);
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    let (app, base) = env.start_api(Roles::ALL).await;

    // The API's HTTP ingest publishes past the dead first address.
    let api = hookfleet_tests::Api::new(&base, hookfleet_tests::ADMIN_KEY);
    let (s, body) = api
        .call(
            "POST",
            "/api/v1/events",
            Some(json!({"id": "evt_failover_1", "type": "match.found", "data": match_found(1)})),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    wait_for("the ingested event to be delivered", LONG, || async {
        rx.count() >= 1
    })
    .await;
    let routers = connections_named(&env.name, "hookfleet-router");
    assert_eq!(routers.len(), 1, "{routers:?}");
    assert!(
        !routers[0].1,
        "the router took the first live address, the plain one"
    );

    // The broker closes the router's connection: its supervisor reconnects
    // with the next address, the TLS one, not the one it just lost.
    let out = Command::new("rabbitmqctl")
        .args(["close_connection", &routers[0].0, "test: failover"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the router to reconnect over TLS", LONG, || async {
        let now = connections_named(&env.name, "hookfleet-router");
        now.len() == 1 && now[0].1
    })
    .await;
    let id = env.publish("match.found", match_found(2), None).await;
    wait_for(
        "an event routed after the failover to be delivered",
        LONG,
        || async { rx.received().iter().any(|r| r.webhook_id() == id) },
    )
    .await;
    app.stop().await.unwrap();
}
