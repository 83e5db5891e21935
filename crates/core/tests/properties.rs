//! Property tests (proptest) of the code that reads untrusted input: the envelope
//! parser and the signing secrets. Failing cases proptest finds are kept in
//! `proptest-regressions/` next to this file and replayed on every run.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use hookfleet_core::envelope::Envelope;
use hookfleet_core::signing::{signature_header, Secret};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any bytes at all: a parsed envelope or a reason, never a panic.
    #[test]
    fn parse_never_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512),
                                             key in "[a-z._*]{0,20}") {
        let _ = Envelope::parse(&body, &key, None, 256);
    }

    /// Almost-JSON: objects with arbitrary field values.
    #[test]
    fn parse_never_panics_on_odd_json(id in prop::option::of(".{0,40}"), ty in prop::option::of("[a-z._]{0,30}"),
                                      tenant in prop::option::of(".{0,20}"), data in ".{0,60}",
                                      extra in prop::option::of(".{0,10}")) {
        let mut obj = serde_json::Map::new();
        if let Some(i) = &id { obj.insert("id".into(), i.clone().into()); }
        if let Some(t) = &ty { obj.insert("type".into(), t.clone().into()); }
        if let Some(t) = &tenant { obj.insert("tenant_id".into(), t.clone().into()); }
        obj.insert("data".into(), serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data.clone())));
        if let Some(x) = extra { obj.insert(x, serde_json::Value::Null); }
        let body = serde_json::to_vec(&obj).unwrap();
        let key = ty.clone().unwrap_or_default();
        if let Ok(env) = Envelope::parse(&body, &key, None, 1 << 20) {
            // What is accepted round-trips through the stored form.
            let again = Envelope::parse(&env.to_body(), &env.event_type, None, 1 << 20).unwrap();
            prop_assert_eq!(again.id, env.id);
            prop_assert_eq!(again.event_type, env.event_type);
            prop_assert_eq!(again.tenant_id, env.tenant_id);
            prop_assert_eq!(again.data.get(), env.data.get());
        }
    }

    /// A body over the limit is refused whatever it holds.
    #[test]
    fn oversized_bodies_are_refused(extra in 1usize..64) {
        let body = vec![b' '; 64 + extra];
        prop_assert!(Envelope::parse(&body, "x", None, 64).is_err());
    }

    /// Secrets: any string parses or is refused without panicking; a valid one
    /// signs what the Standard Webhooks reference verifies, for any id and body.
    #[test]
    fn secrets_and_signatures(raw in ".{0,80}", key in proptest::collection::vec(any::<u8>(), 24..64),
                              msg_id in "[a-zA-Z0-9_]{1,40}", ts in 1_000_000_000i64..4_000_000_000,
                              body in ".{0,200}") {
        let _ = Secret::parse(&raw);
        use base64::Engine as _;
        let encoded = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(&key));
        let secret = Secret::parse(&encoded).unwrap();
        let header = signature_header([&secret], &msg_id, ts, body.as_bytes());
        // The Standard Webhooks reference implementation signs the same bytes.
        let reference = standardwebhooks::Webhook::new(&encoded).unwrap();
        prop_assert_eq!(header, reference.sign(&msg_id, ts, body.as_bytes()).unwrap());
    }
}
