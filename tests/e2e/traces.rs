//! One trace from producer to receiver (issue #17, docs/OPERATIONS.md
//! "Tracing"): real `hookfleet all` processes export their hop spans over
//! OTLP/HTTP to a collector in this test, which decodes them with
//! `opentelemetry-proto`; the receivers check the `traceparent` they get.
use axum::body::Bytes;
use axum::extract::State;
use hookfleet_tests::{wait_for, Behaviour, Receiver, TestEnv, ADMIN_KEY};
use lapin::types::FieldTable;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const LONG: Duration = Duration::from_secs(120);
/// The producer's trace and span, as a `traceparent` names them.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PRODUCER_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP receiver: `POST /v1/traces` with a protobuf
/// `ExportTraceServiceRequest`, as a collector takes it.
struct Collector {
    endpoint: String,
    spans: Arc<Mutex<Vec<(String, Span)>>>,
    stop: CancellationToken,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

type Got = Arc<Mutex<Vec<(String, Span)>>>;

async fn export(State(got): State<Got>, body: Bytes) -> axum::http::StatusCode {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    let mut got = got.lock().unwrap();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            got.extend(ss.spans.into_iter().map(|s| (service.clone(), s)));
        }
    }
    axum::http::StatusCode::OK
}

fn text(v: &AnyValue) -> Option<String> {
    match v {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

impl Collector {
    async fn start() -> Collector {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", l.local_addr().unwrap());
        let spans: Got = Arc::default();
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(export))
            .with_state(spans.clone());
        let stop = CancellationToken::new();
        let t = stop.clone();
        tokio::spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(t.cancelled_owned())
                .await
        });
        Collector {
            endpoint,
            spans,
            stop,
        }
    }

    /// The spans of one trace (`trace` in hex) received so far, with the
    /// service that sent each.
    fn trace(&self, trace: &str) -> Vec<(String, Span)> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| hex(&s.trace_id) == trace)
            .cloned()
            .collect()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// A span's attribute as text.
fn attr(s: &Span, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
}

/// `hookfleet all` with the API, exporting to `collector`; returns the
/// process (killed on drop) and the API's base URL.
async fn start(env: &TestEnv, collector: &Collector) -> (hookfleet_tests::Proc, String) {
    let port = hookfleet_tests::free_port();
    let listen = format!("127.0.0.1:{port}");
    let (proc, ops) = env.spawn_with_ops(
        &["all"],
        &[
            ("HOOKFLEET__API__LISTEN", listen.as_str()),
            ("HOOKFLEET__API__ADMIN_KEY", ADMIN_KEY),
            (
                "HOOKFLEET__TELEMETRY__OTLP_ENDPOINT",
                collector.endpoint.as_str(),
            ),
            ("HOOKFLEET__TELEMETRY__SERVICE_NAME", "hookfleet-test"),
            // The SDK's batch delay (5 s by default): spans arrive sooner.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    wait_for("hookfleet ready", LONG, || async {
        reqwest::get(format!("{ops}/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    (proc, format!("http://{listen}"))
}

/// The trace id and parent span id of a received `traceparent`.
fn parent_of(r: &hookfleet_tests::Received) -> (String, String) {
    let tp = r
        .headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .expect("the delivery has a traceparent");
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[0], "00", "{tp}");
    (parts[1].to_owned(), parts[2].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_with_a_traceparent_is_one_trace_from_route_to_receivers_and_retries() {
    let env = TestEnv::new(&[]).await;
    let collector = Collector::start().await;
    let ok = Receiver::start(Behaviour::Ok).await;
    let flaky = Receiver::start(Behaviour::FailFirst(1)).await;
    let (ep_ok, _) = env.add_endpoint(&ok.url, &["user.created"], None).await;
    let (ep_flaky, _) = env.add_endpoint(&flaky.url, &["user.created"], None).await;
    let (_proc, _api) = start(&env, &collector).await;

    let mut headers = FieldTable::default();
    let traceparent = format!("00-{TRACE}-{PRODUCER_SPAN}-01");
    hookfleet_broker::headers::set_str(&mut headers, "traceparent", &traceparent);
    hookfleet_broker::headers::set_str(&mut headers, "tracestate", "vendor=opaque");
    let event_id = env
        .publish_with_headers(
            "user.created",
            json!({"user_id": 1, "username": "traced"}),
            headers,
        )
        .await;

    wait_for("both deliveries, one after a retry", LONG, || async {
        ok.count() == 1 && flaky.count() == 2
    })
    .await;
    // route + three attempts (one to `ok`, two to `flaky`).
    wait_for("the spans of the trace", LONG, || async {
        collector.trace(TRACE).len() >= 4
    })
    .await;
    let spans = collector.trace(TRACE);
    let named = |n: &str| -> Vec<Span> {
        spans
            .iter()
            .filter(|(_, s)| s.name == n)
            .map(|(_, s)| s.clone())
            .collect()
    };
    assert!(
        spans.iter().all(|(svc, _)| svc == "hookfleet-test"),
        "service.name"
    );

    // One route span, a child of the producer's span, with what operators filter on.
    let route = named("route");
    assert_eq!(route.len(), 1, "{spans:#?}");
    let route = &route[0];
    assert_eq!(hex(&route.parent_span_id), PRODUCER_SPAN);
    assert_eq!(
        attr(route, "hookfleet.event.id").as_deref(),
        Some(&*event_id)
    );
    assert_eq!(
        attr(route, "hookfleet.event.type").as_deref(),
        Some("user.created")
    );
    assert_eq!(attr(route, "hookfleet.fanout").as_deref(), Some("2"));

    // Each attempt is a span of the same trace, a child of the route span.
    let attempts = named("attempt");
    assert_eq!(attempts.len(), 3, "{attempts:#?}");
    for a in &attempts {
        assert_eq!(a.parent_span_id, route.span_id, "{a:#?}");
        assert_eq!(attr(a, "http.request.method").as_deref(), Some("POST"));
        assert_eq!(attr(a, "server.address").as_deref(), Some("127.0.0.1"));
    }
    let to = |ep: &str| -> Vec<&Span> {
        let mut v: Vec<&Span> = attempts
            .iter()
            .filter(|a| attr(a, "hookfleet.endpoint.id").as_deref() == Some(ep))
            .collect();
        v.sort_by_key(|a| attr(a, "hookfleet.attempt"));
        v
    };
    let ok_attempts = to(ep_ok.id.as_str());
    assert_eq!(ok_attempts.len(), 1);
    assert_eq!(
        attr(ok_attempts[0], "http.response.status_code").as_deref(),
        Some("200")
    );
    // The retry is a new span in the same trace: attempt 1 answered 500 and
    // went through the 1 s tier, attempt 2 succeeded.
    let flaky_attempts = to(ep_flaky.id.as_str());
    assert_eq!(flaky_attempts.len(), 2);
    let (first, second) = (flaky_attempts[0], flaky_attempts[1]);
    assert_ne!(first.span_id, second.span_id);
    assert_eq!(attr(first, "hookfleet.attempt").as_deref(), Some("1"));
    assert_eq!(
        attr(first, "http.response.status_code").as_deref(),
        Some("500")
    );
    assert_eq!(attr(first, "error.type").as_deref(), Some("500"));
    assert_eq!(attr(first, "hookfleet.retry.tier").as_deref(), Some("1s"));
    assert_eq!(
        first.status.as_ref().map(|s| s.code),
        Some(2),
        "an error status"
    );
    assert_eq!(attr(second, "hookfleet.attempt").as_deref(), Some("2"));
    assert_eq!(
        attr(second, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(second, "hookfleet.outcome").as_deref(),
        Some("succeeded")
    );

    // Each receiver continues the trace as a child of the attempt that
    // reached it, and gets the producer's tracestate.
    let (tid, parent) = parent_of(&ok.received()[0]);
    assert_eq!(tid, TRACE);
    assert_eq!(parent, hex(&ok_attempts[0].span_id));
    for (r, a) in flaky.received().iter().zip([first, second]) {
        let (tid, parent) = parent_of(r);
        assert_eq!(tid, TRACE);
        assert_eq!(parent, hex(&a.span_id));
        assert_eq!(
            r.headers.get("tracestate").and_then(|v| v.to_str().ok()),
            Some("vendor=opaque")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ingest_continues_the_traceparent_of_the_request() {
    let env = TestEnv::new(&[]).await;
    let collector = Collector::start().await;
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["user.created"], None).await;
    let (_proc, api) = start(&env, &collector).await;

    let trace = "0af7651916cd43dd8448eb211c80319c";
    let client_span = "b7ad6b7169203331";
    let resp = reqwest::Client::new()
        .post(format!("{api}/api/v1/events"))
        .bearer_auth(ADMIN_KEY)
        .header("traceparent", format!("00-{trace}-{client_span}-01"))
        .json(&json!({"type": "user.created", "data": {"user_id": 2, "username": "ingested"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    wait_for("the delivery", LONG, || async { rx.count() == 1 }).await;
    wait_for("ingest, route and attempt spans", LONG, || async {
        let names: Vec<String> = collector
            .trace(trace)
            .into_iter()
            .map(|(_, s)| s.name)
            .collect();
        ["ingest", "route", "attempt"]
            .iter()
            .all(|n| names.iter().any(|m| m == n))
    })
    .await;
    let spans = collector.trace(trace);
    let one = |n: &str| {
        spans
            .iter()
            .find(|(_, s)| s.name == n)
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    let (ingest, route, attempt) = (one("ingest"), one("route"), one("attempt"));
    assert_eq!(hex(&ingest.parent_span_id), client_span);
    assert_eq!(
        attr(&ingest, "http.response.status_code").as_deref(),
        Some("202")
    );
    assert_eq!(
        attr(&ingest, "hookfleet.event.type").as_deref(),
        Some("user.created")
    );
    assert_eq!(route.parent_span_id, ingest.span_id);
    assert_eq!(attempt.parent_span_id, route.span_id);
    let (tid, parent) = parent_of(&rx.received()[0]);
    assert_eq!(tid, trace);
    assert_eq!(parent, hex(&attempt.span_id));
}

/// With telemetry off (the default; the roles run in this process, which
/// installs no exporter), a `traceparent` is passed on untouched: the
/// receiver gets exactly what the producer sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_telemetry_a_traceparent_passes_through_unchanged() {
    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["user.created"], None).await;
    let app = env.start(hookfleet::Roles::ALL).await;
    let traceparent = format!("00-{TRACE}-{PRODUCER_SPAN}-01");
    let mut headers = FieldTable::default();
    hookfleet_broker::headers::set_str(&mut headers, "traceparent", &traceparent);
    env.publish_with_headers(
        "user.created",
        json!({"user_id": 3, "username": "untraced"}),
        headers,
    )
    .await;
    wait_for("the delivery", LONG, || async { rx.count() == 1 }).await;
    let got = rx.received()[0]
        .headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(got.as_deref(), Some(traceparent.as_str()));
    assert!(rx.received()[0].headers.get("tracestate").is_none());
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_dead_letter_continues_its_trace() {
    // No retries: the first failure is a dead letter.
    let env = TestEnv::new(&[("retry.schedule", "")]).await;
    let collector = Collector::start().await;
    let rx = Receiver::start(Behaviour::Always(500)).await;
    env.add_endpoint(&rx.url, &["user.created"], None).await;
    let (_proc, api) = start(&env, &collector).await;
    let mut headers = FieldTable::default();
    let traceparent = format!("00-{TRACE}-{PRODUCER_SPAN}-01");
    hookfleet_broker::headers::set_str(&mut headers, "traceparent", &traceparent);
    env.publish_with_headers(
        "user.created",
        json!({"user_id": 4, "username": "replayed"}),
        headers,
    )
    .await;
    wait_for("the dead letter kept", LONG, || async {
        env.dead_letters().await == 1
    })
    .await;
    rx.set_behaviour(Behaviour::Ok);
    let (s, job) = hookfleet_tests::Api::new(&api, ADMIN_KEY)
        .call("POST", "/api/v1/dead-letters/replay", Some(json!({})))
        .await;
    assert_eq!(s, 202, "{job}");
    wait_for("the replayed delivery", LONG, || async { rx.count() == 2 }).await;
    wait_for("route, replay and two attempts", LONG, || async {
        let spans = collector.trace(TRACE);
        spans.iter().filter(|(_, s)| s.name == "attempt").count() == 2
            && spans.iter().any(|(_, s)| s.name == "replay")
    })
    .await;
    let spans: Vec<Span> = collector.trace(TRACE).into_iter().map(|(_, s)| s).collect();
    let route = spans.iter().find(|s| s.name == "route").unwrap();
    let replay = spans.iter().find(|s| s.name == "replay").unwrap();
    // The dead letter kept the route's context: the replay is its child,
    // and the new attempt the replay's.
    assert_eq!(replay.parent_span_id, route.span_id);
    assert_eq!(
        attr(replay, "hookfleet.replay.id").as_deref(),
        job["id"].as_str()
    );
    assert_eq!(attr(replay, "hookfleet.attempt").as_deref(), Some("2"));
    let again = spans
        .iter()
        .find(|s| s.name == "attempt" && s.parent_span_id == replay.span_id)
        .expect("an attempt under the replay");
    assert_eq!(attr(again, "hookfleet.attempt").as_deref(), Some("2"));
    assert_eq!(
        attr(again, "http.response.status_code").as_deref(),
        Some("200")
    );
    let (tid, parent) = parent_of(&rx.received()[1]);
    assert_eq!(tid, TRACE);
    assert_eq!(parent, hex(&again.span_id));
}

/// The trace of the `n`th delivery the receiver got: the span named `root`
/// that starts it (no parent) and the attempt under it.
async fn started_by(collector: &Collector, r: &hookfleet_tests::Received, root: &str) -> Span {
    let (tid, parent) = parent_of(r);
    let found = |spans: &[(String, Span)]| {
        spans.iter().any(|(_, s)| s.name == root) && spans.iter().any(|(_, s)| s.name == "attempt")
    };
    let deadline = std::time::Instant::now() + LONG;
    while !found(&collector.trace(&tid)) {
        if std::time::Instant::now() > deadline {
            let all: Vec<(String, String, String)> = collector
                .spans
                .lock()
                .unwrap()
                .iter()
                .map(|(_, s)| (s.name.clone(), hex(&s.trace_id), hex(&s.parent_span_id)))
                .collect();
            panic!("no {root} span with its attempt in trace {tid}; every span: {all:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let spans: Vec<Span> = collector.trace(&tid).into_iter().map(|(_, s)| s).collect();
    let start = spans.iter().find(|s| s.name == root).unwrap();
    assert!(start.parent_span_id.is_empty(), "{root} starts the trace");
    let attempt = spans
        .iter()
        .find(|s| s.name == "attempt" && s.parent_span_id == start.span_id)
        .unwrap_or_else(|| panic!("an attempt under {root}: {spans:#?}"));
    assert_eq!(parent, hex(&attempt.span_id), "the receiver joins it");
    start.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_sends_recovers_and_resends_start_a_trace_the_attempt_continues() {
    // No retries: the first failure is a dead letter.
    let env = TestEnv::new(&[("retry.schedule", "")]).await;
    let collector = Collector::start().await;
    let rx = Receiver::start(Behaviour::Always(500)).await;
    let (ep, _) = env.add_endpoint(&rx.url, &["user.created"], None).await;
    let (_proc, base) = start(&env, &collector).await;
    let api = hookfleet_tests::Api::new(&base, ADMIN_KEY);

    // A test send, failed and dead-lettered, then purged: only /recover's
    // second step (from the stored event) can send it again.
    let (s, sent) = api
        .call(
            "POST",
            &format!("/api/v1/webhooks/{}/test", ep.id),
            Some(json!({"event_type": "user.created"})),
        )
        .await;
    assert_eq!(s, 202, "{sent}");
    let delivery = sent["delivery_id"].as_str().unwrap().to_owned();
    wait_for("the test send dead-lettered", LONG, || async {
        env.dead_letters().await == 1
    })
    .await;
    let test_send = started_by(&collector, &rx.received()[0], "test_send").await;
    assert_eq!(
        attr(&test_send, "hookfleet.delivery.id").as_deref(),
        Some(delivery.as_str())
    );
    assert_eq!(attr(&test_send, "hookfleet.attempt").as_deref(), Some("1"));
    let (s, body) = api
        .call(
            "POST",
            "/api/v1/dead-letters/purge",
            Some(json!({"all": true})),
        )
        .await;
    assert_eq!((s, &body["purged"]), (200, &json!(1)), "{body}");

    rx.set_behaviour(Behaviour::Ok);
    let (s, body) = api
        .call(
            "POST",
            &format!("/api/v1/webhooks/{}/recover", ep.id),
            Some(json!({"since": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    wait_for("the recovered delivery", LONG, || async { rx.count() == 2 }).await;
    let recover = started_by(&collector, &rx.received()[1], "recover").await;
    assert_eq!(attr(&recover, "hookfleet.attempt").as_deref(), Some("2"));

    let (s, body) = api
        .call(
            "POST",
            &format!("/api/v1/webhooks/{}/deliveries/{delivery}/resend", ep.id),
            None,
        )
        .await;
    assert!((200..300).contains(&s), "{s} {body}");
    wait_for("the resent delivery", LONG, || async { rx.count() == 3 }).await;
    let resend = started_by(&collector, &rx.received()[2], "resend").await;
    assert_eq!(
        attr(&resend, "hookfleet.endpoint.id").as_deref(),
        Some(ep.id.as_str())
    );
    // Three sends, three traces.
    let ids: std::collections::HashSet<_> = [&test_send, &recover, &resend]
        .iter()
        .map(|s| hex(&s.trace_id))
        .collect();
    assert_eq!(ids.len(), 3);
}

/// A producer with an OpenTelemetry layer of its own: the span it is in when
/// it emits (through the SDK or the outbox) is the parent the event carries.
/// The roles run in this process with telemetry off, so the receiver gets
/// the producer's own `traceparent`, unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emit_sdk_and_the_outbox_carry_the_producers_current_span() {
    use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
    use tracing::instrument::{Instrument as _, WithSubscriber as _};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    let env = TestEnv::new(&[]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["user.created"], None).await;
    let app = env.start(hookfleet::Roles::ALL).await;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let producer = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("producer"))),
    );
    let traceparent = |span: &tracing::Span| {
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        format!("00-{}-{}-01", sc.trace_id(), sc.span_id())
    };

    // The SDK.
    let dir = std::env::temp_dir().join(format!("{}-traced", env.name));
    let e = hookfleet_emit::Emitter::connect(hookfleet_emit::EmitterConfig {
        amqp_url: env.amqp_url.clone(),
        spill_dir: dir,
        ..Default::default()
    })
    .unwrap();
    let from_sdk = tracing::dispatcher::with_default(&producer, || {
        let span = tracing::info_span!("signup");
        let _in = span.enter();
        e.emit_data(
            "user.created",
            json!({"user_id": 5, "username": "sdk"}),
            None,
        );
        traceparent(&span)
    });
    // The outbox, emitted inside the producer's span and relayed.
    let (mut client, c) = tokio_postgres::connect(&env.db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(c);
    hookfleet_emit::outbox::create_table(&client).await.unwrap();
    let span = tracing::dispatcher::with_default(&producer, || tracing::info_span!("order"));
    let from_outbox = tracing::dispatcher::with_default(&producer, || traceparent(&span));
    let tx = client.transaction().await.unwrap();
    let ev = hookfleet_emit::Event::new("user.created", json!({"user_id": 6, "username": "ob"}));
    hookfleet_emit::outbox::emit_in_tx(&tx, &ev)
        .instrument(span)
        .with_subscriber(producer.clone())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let stop = CancellationToken::new();
    let relay = tokio::spawn({
        let (db, amqp, stop) = (
            env.db_url.clone(),
            env.settings().amqp.target.clone(),
            stop.clone(),
        );
        async move { hookfleet_emit::outbox::relay(&db, &amqp, 50, stop).await }
    });

    wait_for("both deliveries", LONG, || async { rx.count() == 2 }).await;
    stop.cancel();
    relay.await.unwrap().unwrap();
    let mut got: Vec<(String, String)> = rx
        .received()
        .iter()
        .map(|r| {
            let user = r.json()["data"]["username"].as_str().unwrap().to_owned();
            let tp = r.headers["traceparent"].to_str().unwrap().to_owned();
            (user, tp)
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [("ob".to_owned(), from_outbox), ("sdk".to_owned(), from_sdk)]
    );
    app.stop().await.unwrap();
}
