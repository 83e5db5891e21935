use hookfleet::Roles;
use hookfleet_tests::{wait_for, Behaviour, Receiver, TestEnv};
use serde_json::json;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_rule() {
    let env = TestEnv::new(&[]).await;
    let acme = Receiver::start(Behaviour::Ok).await;
    let globex = Receiver::start(Behaviour::Ok).await;
    let single = Receiver::start(Behaviour::Ok).await;
    env.add_endpoint(&acme.url, &["*"], Some("acme")).await;
    env.add_endpoint(&globex.url, &["*"], Some("globex")).await;
    env.add_endpoint(&single.url, &["*"], None).await;
    let app = env.start(Roles::ALL).await;

    let data = json!({"user_id": 1, "username": "ada"});
    let a = env
        .publish("user.created", data.clone(), Some("acme"))
        .await;
    let g = env
        .publish("user.created", data.clone(), Some("globex"))
        .await;
    let n = env.publish("user.created", data.clone(), None).await;
    // A tenant with no endpoints: delivered nowhere.
    env.publish("user.created", data, Some("initech")).await;

    wait_for("one delivery to each", LONG, || async {
        acme.count() == 1 && globex.count() == 1 && single.count() == 1
    })
    .await;
    wait_for("all four events stored", LONG, || async {
        env.count("SELECT count(*) FROM events").await == 4
    })
    .await;
    assert_eq!(acme.received()[0].webhook_id(), a);
    assert_eq!(acme.received()[0].json()["tenant_id"], "acme");
    assert_eq!(globex.received()[0].webhook_id(), g);
    assert_eq!(single.received()[0].webhook_id(), n);
    assert!(single.received()[0].json()["tenant_id"].is_null());
    assert_eq!(env.count("SELECT count(*) FROM deliveries").await, 3);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_type_filter() {
    let env = TestEnv::new(&[]).await;
    let matches_only = Receiver::start(Behaviour::Ok).await;
    let two_types = Receiver::start(Behaviour::Ok).await;
    let everything = Receiver::start(Behaviour::Ok).await;
    let (m, _) = env
        .add_endpoint(&matches_only.url, &["match.found"], None)
        .await;
    env.add_endpoint(&two_types.url, &["match.found", "job.failed"], None)
        .await;
    env.add_endpoint(&everything.url, &["*"], None).await;
    let app = env.start(Roles::ALL).await;

    env.publish(
        "match.found",
        json!({"match_id": 1, "query_video_id": "a", "matched_video_id": "b", "confidence": 0.5}),
        None,
    )
    .await;
    env.publish(
        "job.failed",
        json!({"job_id": 1, "job_type": "t", "error_message": "e"}),
        None,
    )
    .await;
    env.publish("user.created", json!({"user_id": 1, "username": "u"}), None)
        .await;

    wait_for("the wildcard endpoint to get all three", LONG, || async {
        everything.count() == 3
    })
    .await;
    wait_for("the two-type endpoint to get two", LONG, || async {
        two_types.count() == 2
    })
    .await;
    wait_for("the match endpoint to get one", LONG, || async {
        matches_only.count() == 1
    })
    .await;
    assert_eq!(matches_only.received()[0].json()["type"], "match.found");
    let q = format!(
        "SELECT count(*) FROM deliveries WHERE endpoint_id = '{}'",
        m.id
    );
    assert_eq!(env.count(&q).await, 1);
    assert_eq!(env.count("SELECT count(*) FROM deliveries").await, 6);
    app.stop().await.unwrap();
}
