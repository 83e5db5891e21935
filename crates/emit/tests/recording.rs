//! How a producer tests its own code with `Emitter::recording()`: no broker, no
//! files, the same calls as in production (docs/PRODUCERS.md shows this file).
use hookfleet_emit::Emitter;
use serde_json::json;

/// The producer's code: saves a match, then announces it.
struct MatchService {
    emitter: Emitter,
}

impl MatchService {
    fn save_match(&self, match_id: i64, query: &str, matched: &str, confidence: f64) {
        // ... the producer's own database commit goes here ...
        if confidence >= 0.9 {
            self.emitter.emit_match_found(
                match_id,
                query,
                matched,
                confidence,
                None,
                None,
                Some("acme"),
            );
        }
    }
}

#[test]
fn a_confident_match_is_announced() {
    let service = MatchService {
        emitter: Emitter::recording(),
    };
    service.save_match(42, "dQw4w9WgXcQ", "9bZkp7q19f0", 0.95);

    let event = service.emitter.assert_emitted(
        "match.found",
        json!({"match_id": 42, "matched_video_id": "9bZkp7q19f0"}),
    );
    assert_eq!(event.tenant_id.as_deref(), Some("acme"));
    assert_eq!(event.data["confidence"], 0.95);
    assert_eq!(service.emitter.recorded().len(), 1);
}

#[test]
fn a_weak_match_is_not_announced() {
    let service = MatchService {
        emitter: Emitter::recording(),
    };
    service.save_match(43, "dQw4w9WgXcQ", "9bZkp7q19f0", 0.5);
    service.emitter.assert_not_emitted("match.found");
}

// Below: checks of the recording emitter itself, not part of the example.

#[test]
fn assert_emitted_names_what_was_emitted_when_it_fails() {
    let e = Emitter::recording();
    e.emit_user_created(7, "ada", None, None);
    let err = std::panic::catch_unwind(|| {
        e.assert_emitted("user.created", json!({"user_id": 8}));
    })
    .expect_err("user 8 was never emitted");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("\"user_id\":7"), "{msg}");
    assert!(msg.contains("user.created"), "{msg}");
}

#[test]
fn every_helper_records_a_valid_envelope_and_counts_it_confirmed() {
    let e = Emitter::recording();
    e.emit_match_found(1, "q", "m", 0.9, Some(1.0), Some(2.0), None);
    e.emit_video_processed(
        "v1",
        None,
        Some("A video"),
        Some(120.5),
        Some(10),
        Some(3.2),
        None,
    );
    e.emit_job_failed("j1", "fingerprint", None, "boom", Some(3), None);
    e.emit_user_created(7, "ada", Some("a@example.com"), Some("acme"));
    e.emit_subscription_updated("s1", 7, "pro", "active", Some("free"), None);
    e.emit_api_limit_reached(7, "daily", 1000, 1000, None, None);
    let types: Vec<String> = e.recorded().into_iter().map(|r| r.event_type).collect();
    assert_eq!(
        types,
        [
            "match.found",
            "video.processed",
            "job.failed",
            "user.created",
            "subscription.updated",
            "api_limit.reached"
        ]
    );
    assert!(e.flush(std::time::Duration::from_millis(1)));
    assert_eq!(e.metrics().confirmed.get(), 6);
    e.assert_emitted("job.failed", json!({"job_id": "j1", "attempt_count": 3}));
    e.clear_recorded();
    assert!(e.recorded().is_empty());
}

#[test]
#[should_panic(expected = "would be quarantined")]
fn an_event_the_router_would_refuse_fails_the_test() {
    Emitter::recording().emit_data("Not A Type", json!({}), None);
}
