use hookfleet::Roles;
use hookfleet_broker::headers as h;
use hookfleet_tests::{wait_for, Behaviour, Receiver, TestEnv};
use serde_json::json;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_envelopes_are_quarantined_and_routing_goes_on() {
    let env = TestEnv::new(&[("delivery.max_payload_bytes", "2048")]).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&rx.url, &["*"], None).await;
    let app = env.start(Roles::ALL).await;

    let big = format!(
        r#"{{"type":"user.created","data":{{"pad":"{}"}}}}"#,
        "x".repeat(4096)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("user.created", b"{not json".to_vec(), "not valid JSON"),
        ("user.created", b"\xff\xfe".to_vec(), "not valid JSON"),
        (
            "user.created",
            br#"{"data":{}}"#.to_vec(),
            "missing required field `type`",
        ),
        (
            "user.created",
            br#"{"type":"user.created"}"#.to_vec(),
            "missing required field `data`",
        ),
        (
            "user.created",
            br#"{"type":"user.created","data":"text"}"#.to_vec(),
            "`data` is invalid",
        ),
        (
            "user.created",
            br#"{"type":"user.created","data":{},"tenant_id":7}"#.to_vec(),
            "not valid JSON",
        ),
        (
            "user.created",
            br#"{"type":"user.created","data":{},"timestamp":"noon"}"#.to_vec(),
            "`timestamp` is invalid",
        ),
        (
            "no.such.type",
            br#"{"type":"no.such.type","data":{}}"#.to_vec(),
            "unknown event type",
        ),
        (
            "user.created",
            br#"{"type":"match.found","data":{}}"#.to_vec(),
            "routing key",
        ),
        ("user.created", big.into_bytes(), "exceeds the limit"),
        // PostgreSQL cannot store it: quarantined, not a poison message.
        (
            "user.created",
            br#"{"type":"user.created","data":{"user_id":1,"username":"a\u0000b"}}"#.to_vec(),
            "cannot be stored",
        ),
    ];
    for (key, body, _) in &cases {
        env.publish_raw(key, body).await;
    }
    let ok = env
        .publish("user.created", json!({"user_id": 1, "username": "u"}), None)
        .await;
    wait_for("the valid event after the invalid ones", LONG, || async {
        rx.count() == 1
    })
    .await;
    assert_eq!(rx.received()[0].webhook_id(), ok);
    wait_for("all invalid events quarantined", LONG, || async {
        env.queue_len("hookfleet.events.invalid").await as usize == cases.len()
    })
    .await;
    app.stop().await.unwrap();

    let quarantined = env.drain("hookfleet.events.invalid").await;
    assert_eq!(quarantined.len(), cases.len());
    for ((_, body, want), (headers, qbody)) in cases.iter().zip(&quarantined) {
        let reason = h::get_str(Some(headers), h::INVALID_REASON).expect("reason header");
        assert!(
            reason.contains(want),
            "reason `{reason}` should mention `{want}`"
        );
        assert_eq!(qbody, body, "the original bytes are kept");
    }
    assert_eq!(env.count("SELECT count(*) FROM events").await, 1);
    assert_eq!(env.queue_len("hookfleet.router").await, 0);
}
