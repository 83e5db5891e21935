//! Signing secrets at rest: sealed with AES-256-GCM (the RustCrypto `aes-gcm`
//! crate) under a key from `secrets.encryption_keys`, bound to their endpoint
//! (the endpoint id is the associated data, so a sealed secret copied to
//! another row does not open).
//!
//! The stored form is `enc:v1:<key id>:<base64 of nonce ‖ ciphertext>`. Keys
//! rotate: the first key of the list seals, every listed key opens, and
//! `hookfleet secrets reseal` rewrites every secret under the first key.
//! A secret stored before encryption was turned on (plain `whsec_…`) still
//! opens, and is sealed by the next reseal.
//!
//! There is no process-wide keyring: the [`Keyring`] is built once, with the
//! settings (`Settings::encryption_keys`), and handed to whatever seals or
//! opens (as the Svix server passes `&cfg.encryption`).
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore as _;
use std::fmt;

const PREFIX: &str = "enc:v1:";

/// The configured keys: the first seals, all open.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(String, Aes256Gcm)>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "Keyring({ids:?}, keys ***)")
    }
}

impl Keyring {
    /// Parses `id:base64-of-32-bytes[,id:…]`; the message never shows a key.
    pub fn parse(s: &str) -> Result<Option<Keyring>, String> {
        let mut keys = Vec::new();
        for (i, part) in s.split(',').map(str::trim).enumerate() {
            if part.is_empty() {
                continue;
            }
            let Some((id, b64)) = part.split_once(':') else {
                return Err(format!(
                    "entry {} must be `<id>:<base64 of 32 random bytes>`",
                    i + 1
                ));
            };
            if id.is_empty()
                || id.len() > 32
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!(
                    "entry {}: the key id must be 1-32 letters, digits, `-` or `_`",
                    i + 1
                ));
            }
            if keys.iter().any(|(k, _)| k == id) {
                return Err(format!("key id `{id}` is listed twice"));
            }
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| format!("key `{id}` is not valid base64"))?;
            let cipher = Aes256Gcm::new_from_slice(&raw).map_err(|_| {
                format!(
                    "key `{id}` must be 32 bytes (base64 of 32 random bytes: `openssl rand -base64 32`), not {}",
                    raw.len()
                )
            })?;
            keys.push((id.to_owned(), cipher));
        }
        Ok((!keys.is_empty()).then_some(Keyring { keys }))
    }

    /// The id of the key that seals.
    pub fn current(&self) -> &str {
        &self.keys[0].0
    }

    /// The sealed form of `plain` for the endpoint `bound_to`, under the first key.
    pub fn seal(&self, bound_to: &str, plain: &str) -> String {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: bound_to.as_bytes(),
        };
        // Encryption with a valid key and a 12-byte nonce cannot fail.
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{PREFIX}{id}:{}", STANDARD.encode(out))
    }

    /// Whether a stored value is sealed under the current key already.
    pub fn is_current(&self, stored: &str) -> bool {
        stored.starts_with(&format!("{PREFIX}{}:", self.current()))
    }

    /// Opens a sealed value (`enc:v1:<key id>:…`, prefix already removed).
    fn open_sealed(&self, bound_to: &str, rest: &str) -> Result<String, OpenError> {
        let (id, b64) = rest.split_once(':').unwrap_or((rest, ""));
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| OpenError::UnknownKey(id.to_owned()))?;
        let corrupt = || OpenError::Corrupt(id.to_owned());
        let raw = STANDARD.decode(b64).map_err(|_| corrupt())?;
        if raw.len() < 12 {
            return Err(corrupt());
        }
        let (nonce, ct) = raw.split_at(12);
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: bound_to.as_bytes(),
                },
            )
            .map_err(|_| corrupt())?;
        String::from_utf8(plain).map_err(|_| corrupt())
    }
}

/// Why a stored secret cannot be opened. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("sealed with key `{0}`, which secrets.encryption_keys does not list")]
    UnknownKey(String),
    #[error("sealed, but secrets.encryption_keys is not set")]
    NoKeys,
    #[error("does not open with key `{0}` (altered, or sealed for another endpoint)")]
    Corrupt(String),
}

/// The stored form of `secret` for the endpoint `bound_to`: sealed when keys
/// are configured (`secrets.encryption_keys`), else as is.
pub fn seal(keys: Option<&Keyring>, bound_to: &str, secret: &str) -> String {
    match keys {
        Some(k) => k.seal(bound_to, secret),
        None => secret.to_owned(),
    }
}

/// Whether a stored value is sealed under the current key already.
pub fn is_current(keys: Option<&Keyring>, stored: &str) -> bool {
    keys.is_some_and(|k| k.is_current(stored))
}

/// The secret of a stored value (sealed or, from before encryption, plain).
pub fn open(keys: Option<&Keyring>, bound_to: &str, stored: &str) -> Result<String, OpenError> {
    match stored.strip_prefix(PREFIX) {
        None => Ok(stored.to_owned()),
        Some(rest) => keys.ok_or(OpenError::NoKeys)?.open_sealed(bound_to, rest),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:HxwdHhscGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";

    #[test]
    fn keys_are_checked_and_never_shown() {
        assert!(Keyring::parse("").unwrap().is_none());
        let e = Keyring::parse("k1:c2hvcnQ=").unwrap_err();
        assert!(e.contains("32 bytes"), "{e}");
        assert!(Keyring::parse("nokey").unwrap_err().contains("<id>:"));
        assert!(Keyring::parse("bad id:AAAA")
            .unwrap_err()
            .contains("key id"));
        assert!(Keyring::parse(&format!("{K1},{K1}"))
            .unwrap_err()
            .contains("twice"));
        let k = Keyring::parse(&format!("{K2},{K1}")).unwrap().unwrap();
        assert_eq!(k.current(), "k2");
        assert!(!format!("{k:?}").contains("HxwdH"));
    }

    #[test]
    fn seal_open_rotate() {
        assert_eq!(seal(None, "ep_1", "whsec_x"), "whsec_x", "no keys: as is");
        let k1 = Keyring::parse(K1).unwrap();
        let sealed = seal(k1.as_ref(), "ep_1", "whsec_abc");
        assert!(sealed.starts_with("enc:v1:k1:"), "{sealed}");
        assert!(!sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            seal(k1.as_ref(), "ep_1", "whsec_abc"),
            "a fresh nonce each time"
        );
        assert_eq!(open(k1.as_ref(), "ep_1", &sealed).unwrap(), "whsec_abc");
        assert_eq!(
            open(k1.as_ref(), "ep_1", "whsec_plain").unwrap(),
            "whsec_plain"
        );
        assert_eq!(
            open(k1.as_ref(), "ep_2", &sealed),
            Err(OpenError::Corrupt("k1".into())),
            "bound to its endpoint"
        );
        // Rotation: k2 seals, k1 still opens.
        let k21 = Keyring::parse(&format!("{K2},{K1}")).unwrap();
        assert!(!is_current(k21.as_ref(), &sealed));
        assert_eq!(open(k21.as_ref(), "ep_1", &sealed).unwrap(), "whsec_abc");
        let resealed = seal(k21.as_ref(), "ep_1", "whsec_abc");
        assert!(is_current(k21.as_ref(), &resealed));
        // k1 dropped too early: named in the error.
        let k2 = Keyring::parse(K2).unwrap();
        assert_eq!(
            open(k2.as_ref(), "ep_1", &sealed),
            Err(OpenError::UnknownKey("k1".into()))
        );
        assert_eq!(open(None, "ep_1", &resealed), Err(OpenError::NoKeys));
    }
}
