//! `hookfleet verify`: checks one captured delivery and says exactly why it
//! fails. The signature is checked first, ignoring time, so a stale capture of a
//! good delivery is told apart from a forged or altered one.
use hookfleet_core::signing::Secret;

/// What was captured from one delivery.
pub struct Captured<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    /// The `webhook-signature` header: `v1,<base64>` entries, space separated.
    pub signature: &'a str,
    pub body: &'a [u8],
}

/// A delivery that verified.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// 1-based position of the matching entry in the header.
    pub matched: usize,
    pub entries: usize,
    /// Seconds between the delivery's timestamp and now (negative: in the future).
    pub age_secs: i64,
}

/// Why a delivery does not verify, in the words `hookfleet verify` prints.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("the signing secret (--secret, --secret-file or HOOKFLEET_SECRET) is not one: {0}")]
    BadSecret(String),
    #[error("--timestamp `{0}` is not a number of seconds since 1970")]
    BadTimestamp(String),
    #[error("the webhook-signature header holds no `v1,<base64>` entry")]
    NoSignature,
    #[error("body changed: the signature matches the body {0}; verify the raw bytes as received, before any parsing or re-encoding")]
    BodyChanged(&'static str),
    #[error("wrong secret, or body changed: none of the {entries} signature(s) matches. If the body is byte-for-byte what was received, the secret is not this endpoint's (after a rotation, both the old and the new secret sign for the grace period); check --id and --timestamp are the webhook-id and webhook-timestamp headers{hint}")]
    Mismatch { entries: usize, hint: &'static str },
    #[error("timestamp too old: the signature is valid, but the delivery was signed {age} s ago, beyond the tolerance of {tolerance} s (a replayed capture, or a clock off)")]
    TooOld { age: i64, tolerance: i64 },
    #[error("timestamp too new: the signature is valid, but the timestamp is {ahead} s in the future, beyond the tolerance of {tolerance} s (check the clocks)")]
    TooNew { ahead: i64, tolerance: i64 },
}

/// Checks `c` against `secret` at `now` (seconds since 1970) with a tolerance of
/// `tolerance` seconds either side.
pub fn check(
    secret: &str,
    c: &Captured<'_>,
    now: i64,
    tolerance: i64,
) -> Result<Verified, Failure> {
    let secret = Secret::parse(secret.trim()).map_err(|e| Failure::BadSecret(e.to_string()))?;
    let ts: i64 = c
        .timestamp
        .trim()
        .parse()
        .map_err(|_| Failure::BadTimestamp(c.timestamp.to_owned()))?;
    let entries: Vec<&str> = c
        .signature
        .split_whitespace()
        .filter(|e| e.starts_with("v1,"))
        .collect();
    if entries.is_empty() {
        return Err(Failure::NoSignature);
    }
    let matches = |body: &[u8]| {
        let expected = secret.sign(c.id.trim(), ts, body);
        entries.iter().position(|e| *e == expected)
    };
    let Some(i) = matches(c.body) else {
        return Err(diagnose(c, &matches, entries.len()));
    };
    let age = now - ts;
    if age > tolerance {
        return Err(Failure::TooOld { age, tolerance });
    }
    if -age > tolerance {
        return Err(Failure::TooNew {
            ahead: -age,
            tolerance,
        });
    }
    Ok(Verified {
        matched: i + 1,
        entries: entries.len(),
        age_secs: age,
    })
}

/// No entry matched: tries the common ways a body gets altered on its way to the
/// receiver's code, so "body changed" can be said for sure when it is so.
fn diagnose(c: &Captured<'_>, matches: &dyn Fn(&[u8]) -> Option<usize>, entries: usize) -> Failure {
    let body = c.body;
    let mut variants: Vec<(&'static str, Vec<u8>)> = Vec::new();
    if let Some(stripped) = body.strip_suffix(b"\n") {
        variants.push((
            "without its final newline (an editor or `echo` added one)",
            stripped.to_vec(),
        ));
    }
    if body.windows(2).any(|w| w == b"\r\n") {
        let lf = String::from_utf8_lossy(body).replace("\r\n", "\n");
        variants.push(("with LF line ends (CRLF was added)", lf.into_bytes()));
    }
    if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
        variants.push((
            "without the spaces and line breaks between its JSON tokens (it was parsed and re-encoded, pretty-printed)",
            minified(body),
        ));
    }
    for (what, bytes) in variants {
        if bytes != body && matches(&bytes).is_some() {
            return Failure::BodyChanged(what);
        }
    }
    let hint = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v["id"].as_str() == Some(c.id.trim()) => {
            " (--id is the event's id from the body; the webhook-id header is another value)"
        }
        _ => "",
    };
    Failure::Mismatch { entries, hint }
}

/// `json` without whitespace outside its strings.
fn minified(json: &[u8]) -> Vec<u8> {
    let (mut out, mut in_string, mut escaped) = (Vec::with_capacity(json.len()), false, false);
    for &b in json {
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if !b.is_ascii_whitespace() {
            in_string = b == b'"';
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"match.found","data":{"match_id":42}}"#;

    fn signed(secret: &Secret, ts: i64, body: &[u8]) -> String {
        secret.sign("msg_1", ts, body)
    }

    fn cap<'a>(sig: &'a str, ts: &'a str, body: &'a [u8]) -> Captured<'a> {
        Captured {
            id: "msg_1",
            timestamp: ts,
            signature: sig,
            body,
        }
    }

    #[test]
    fn a_good_delivery_verifies_with_either_secret_during_rotation() {
        let (old, new) = (Secret::generate(), Secret::generate());
        let header = format!(
            "{} {}",
            signed(&new, NOW - 3, BODY),
            signed(&old, NOW - 3, BODY)
        );
        let ts = (NOW - 3).to_string();
        let v = check(old.expose(), &cap(&header, &ts, BODY), NOW, 300).unwrap();
        assert_eq!((v.matched, v.entries, v.age_secs), (2, 2, 3));
        assert_eq!(
            check(new.expose(), &cap(&header, &ts, BODY), NOW, 300)
                .unwrap()
                .matched,
            1
        );
    }

    #[test]
    fn each_failure_is_named() {
        let s = Secret::generate();
        let ts = NOW.to_string();
        let sig = signed(&s, NOW, BODY);
        let other = Secret::generate();
        assert!(matches!(
            check(other.expose(), &cap(&sig, &ts, BODY), NOW, 300),
            Err(Failure::Mismatch { entries: 1, .. })
        ));
        let mut newline = BODY.to_vec();
        newline.push(b'\n');
        assert!(matches!(
            check(s.expose(), &cap(&sig, &ts, &newline), NOW, 300),
            Err(Failure::BodyChanged(w)) if w.contains("newline")
        ));
        // As a framework that parses and pretty-prints keeps the key order.
        let pretty = b"{\n  \"id\": \"evt_1\",\n  \"type\": \"match.found\",\n  \"data\": {\n    \"match_id\": 42\n  }\n}";
        assert!(matches!(
            check(s.expose(), &cap(&sig, &ts, pretty), NOW, 300),
            Err(Failure::BodyChanged(w)) if w.contains("pretty-printed")
        ));
        assert_eq!(
            check(s.expose(), &cap(&sig, &ts, BODY), NOW + 301, 300),
            Err(Failure::TooOld {
                age: 301,
                tolerance: 300
            })
        );
        assert_eq!(
            check(s.expose(), &cap(&sig, &ts, BODY), NOW - 400, 300),
            Err(Failure::TooNew {
                ahead: 400,
                tolerance: 300
            })
        );
        assert_eq!(
            check(s.expose(), &cap("v2,abc", &ts, BODY), NOW, 300),
            Err(Failure::NoSignature)
        );
        assert!(matches!(
            check("nope", &cap(&sig, &ts, BODY), NOW, 300),
            Err(Failure::BadSecret(_))
        ));
        assert!(matches!(
            check(s.expose(), &cap(&sig, "soon", BODY), NOW, 300),
            Err(Failure::BadTimestamp(_))
        ));
    }

    #[test]
    fn the_event_id_given_as_webhook_id_is_pointed_out() {
        let s = Secret::generate();
        let sig = signed(&s, NOW, BODY);
        let c = Captured {
            id: "evt_1",
            timestamp: "1700000000",
            signature: &sig,
            body: BODY,
        };
        let e = check(s.expose(), &c, NOW, 300).unwrap_err().to_string();
        assert!(e.contains("event's id"), "{e}");
    }
}
