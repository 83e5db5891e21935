//! Standard Webhooks signing (docs/ARCHITECTURE.md §20.2).
//!
//! The signed content is `"<webhook-id>.<webhook-timestamp>.<body>"`, the MAC is
//! HMAC-SHA256 keyed with the base64-decoded part of a `whsec_` secret, and the
//! header carries one `v1,<base64>` per valid secret, space separated.
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;
use std::fmt;

const PREFIX: &str = "whsec_";

/// A signing secret. Debug and Display never show the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    encoded: String,
    key: Vec<u8>,
}

/// Why a secret string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("a secret must start with `whsec_`")]
    MissingPrefix,
    #[error("the part after `whsec_` is not valid base64")]
    NotBase64,
    #[error("a secret must hold 24 to 64 bytes, this one holds {0}")]
    BadLength(usize),
}

impl Secret {
    /// A fresh secret of 32 random bytes.
    pub fn generate() -> Self {
        let mut key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self {
            encoded: format!("{PREFIX}{}", STANDARD.encode(&key)),
            key,
        }
    }

    /// Parses `whsec_<base64 of 24–64 bytes>`.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let b64 = s.strip_prefix(PREFIX).ok_or(SecretError::MissingPrefix)?;
        let key = STANDARD.decode(b64).map_err(|_| SecretError::NotBase64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::BadLength(key.len()));
        }
        Ok(Self {
            encoded: s.to_owned(),
            key,
        })
    }

    /// The `whsec_…` form, for showing to the endpoint's owner once and for storage.
    pub fn expose(&self) -> &str {
        &self.encoded
    }

    /// `v1,<base64 mac>` for one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        #[allow(clippy::expect_used)]
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(whsec_***)")
    }
}

/// The `webhook-signature` header value: one signature per secret, space separated.
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a Secret>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut out = String::new();
    for s in secrets {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&s.sign(msg_id, timestamp, body));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardwebhooks_accepts_our_signature() {
        let secret = Secret::generate();
        let body = br#"{"id":"evt_1","type":"match.found","data":{}}"#;
        let ts = time::OffsetDateTime::now_utc().unix_timestamp();
        let other = Secret::generate();
        let header = signature_header([&other, &secret], "evt_1", ts, body);
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "evt_1".parse().unwrap());
        headers.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        headers.insert("webhook-signature", header.parse().unwrap());
        for s in [&secret, &other] {
            standardwebhooks::Webhook::new(s.expose())
                .unwrap()
                .verify(body, &headers)
                .unwrap();
        }
        let stranger = Secret::generate();
        assert!(standardwebhooks::Webhook::new(stranger.expose())
            .unwrap()
            .verify(body, &headers)
            .is_err());
    }

    #[test]
    fn known_vector() {
        // The example from the Standard Webhooks specification's reference tests.
        let s = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = s.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn parse_refuses_bad_secrets() {
        assert_eq!(Secret::parse("abc"), Err(SecretError::MissingPrefix));
        assert_eq!(Secret::parse("whsec_***"), Err(SecretError::NotBase64));
        assert_eq!(Secret::parse("whsec_AAAA"), Err(SecretError::BadLength(3)));
        assert!(format!("{:?}", Secret::generate()).contains("***"));
    }
}
