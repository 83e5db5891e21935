//! Signed tokens of the tenant portal: portal links and sign-in sessions.
//!
//! A token is `base64url(JSON claims) "." base64url(HMAC-SHA256)`. Links are
//! keyed by a key derived from an admin key (`api.admin_keys`: the first
//! signs, every listed one verifies, so a link lives as long as the key that
//! signed it is listed); sessions, CSRF and form tokens by `api.session_keys`
//! (the same way), or, when those are unset, by the first admin key's (then
//! rotating that key ends every session). See [`Keys`]. Claims name the kind (`link` or `session`), the tenant, the
//! expiry, the API key behind it (the key a session was opened with, or the
//! key that issued a link) and an id (`nonce`): a link's id, recorded when the
//! link is used (a link opens one session), or a session's row in
//! `portal_sessions`, which every portal request checks (sign-out and key
//! revocation end it there). The signature only proves the server issued the
//! token; whether it is still good is the database's answer.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// `link` or `session`.
    pub kind: String,
    pub tenant: String,
    /// Unix seconds.
    pub exp: i64,
    /// The API key a session was opened with, or that issued a link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The token's id, random: a link's id (recorded when used) or a
    /// session's row id.
    pub nonce: String,
    /// A link's tenant generation: the tenant's `created_at` in Unix
    /// microseconds. A link for a tenant since deleted and created again
    /// under the same id opens nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not ours, changed, or of another kind.
    Invalid,
    /// Genuine but past its expiry.
    Expired,
}

/// Signs and checks portal tokens.
#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

impl Signer {
    pub fn new(admin_key: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"hookfleet portal tokens v1\0");
        h.update(admin_key.as_bytes());
        Self {
            key: h.finalize().into(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        // A 32-byte key is always accepted by HMAC.
        HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mut m = self.mac();
        m.update(body.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
        format!("{body}.{sig}")
    }

    /// The claims of a genuine, unexpired token of `kind`.
    pub fn verify(&self, token: &str, kind: &str, now: i64) -> Result<Claims, Refused> {
        let (body, sig) = token.trim().split_once('.').ok_or(Refused::Invalid)?;
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| Refused::Invalid)?;
        let mut m = self.mac();
        m.update(body.as_bytes());
        m.verify_slice(&sig).map_err(|_| Refused::Invalid)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Refused::Invalid)?;
        if claims.kind != kind {
            return Err(Refused::Invalid);
        }
        if claims.exp <= now {
            return Err(Refused::Expired);
        }
        Ok(claims)
    }

    /// The CSRF token of a session: forms carry it, and a POST without it
    /// (another site's form) is refused.
    pub fn csrf(&self, session: &str) -> String {
        self.tag(&["csrf", session])
    }

    /// A short MAC of `parts` (NUL separated): CSRF tokens, the sign-in form's
    /// token, the details of a flash banner.
    pub fn tag(&self, parts: &[&str]) -> String {
        let mut m = self.mac();
        for p in parts {
            m.update(p.as_bytes());
            m.update(b"\0");
        }
        URL_SAFE_NO_PAD.encode(&m.finalize().into_bytes()[..18])
    }

    /// `tag(parts) == got`, in constant time.
    pub fn tag_matches(&self, parts: &[&str], got: &str) -> bool {
        same(&self.tag(parts), got)
    }
}

/// `a == b`, in constant time (for tokens: a mismatch tells nothing of where).
pub fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Signers of one kind of token, from a list of secrets: the first signs,
/// every one verifies (a rotation lists the new secret first, and drops the
/// old one once what it signed may end).
#[derive(Clone)]
pub struct Keys {
    /// Never empty.
    signers: Vec<Signer>,
}

impl Keys {
    /// `None` when `secrets` is empty.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let signers: Vec<Signer> = secrets.into_iter().map(Signer::new).collect();
        (!signers.is_empty()).then_some(Keys { signers })
    }

    fn first(&self) -> &Signer {
        &self.signers[0]
    }

    pub fn sign(&self, claims: &Claims) -> String {
        self.first().sign(claims)
    }

    /// The claims of a genuine, unexpired token of `kind` signed by any of
    /// the keys; `Expired` when genuine but expired.
    pub fn verify(&self, token: &str, kind: &str, now: i64) -> Result<Claims, Refused> {
        let mut refused = Refused::Invalid;
        for s in &self.signers {
            match s.verify(token, kind, now) {
                Ok(c) => return Ok(c),
                Err(Refused::Expired) => refused = Refused::Expired,
                Err(Refused::Invalid) => {}
            }
        }
        Err(refused)
    }

    /// [`Signer::csrf`] of the first key.
    pub fn csrf(&self, session: &str) -> String {
        self.first().csrf(session)
    }

    /// [`Signer::tag`] of the first key.
    pub fn tag(&self, parts: &[&str]) -> String {
        self.first().tag(parts)
    }

    /// Whether `got` is the tag of `parts` under any of the keys.
    pub fn tag_matches(&self, parts: &[&str], got: &str) -> bool {
        self.signers
            .iter()
            .fold(false, |ok, s| ok | s.tag_matches(parts, got))
    }
}

pub fn nonce() -> String {
    use rand::RngCore as _;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            kind: "link".into(),
            tenant: "acme".into(),
            exp,
            key_id: None,
            nonce: nonce(),
            since: None,
        }
    }

    #[test]
    fn round_trip_expiry_tampering_and_kind() {
        let s = Signer::new("admin-key-0123456789");
        let t = s.sign(&claims(100));
        assert_eq!(s.verify(&t, "link", 99).unwrap().tenant, "acme");
        assert_eq!(s.verify(&t, "link", 100), Err(Refused::Expired));
        assert_eq!(s.verify(&t, "session", 99), Err(Refused::Invalid));
        // Another tenant in the claims, same signature.
        let (body, sig) = t.split_once('.').unwrap();
        let mut c: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        c.tenant = "other".into();
        let forged = format!(
            "{}.{sig}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap())
        );
        assert_eq!(s.verify(&forged, "link", 99), Err(Refused::Invalid));
        // Another admin key.
        assert_eq!(
            Signer::new("another-admin-key-000").verify(&t, "link", 99),
            Err(Refused::Invalid)
        );
        assert_eq!(s.verify("garbage", "link", 99), Err(Refused::Invalid));
        assert_ne!(s.csrf(&t), s.csrf(&s.sign(&claims(100))));
    }

    #[test]
    fn keys_sign_with_the_first_and_verify_with_any() {
        let old = Keys::new(["old-admin-key-0123"]).unwrap();
        let both = Keys::new(["new-admin-key-0123", "old-admin-key-0123"]).unwrap();
        let new = Keys::new(["new-admin-key-0123"]).unwrap();
        assert!(Keys::new([]).is_none());
        let by_old = old.sign(&claims(100));
        let by_both = both.sign(&claims(100));
        assert_eq!(both.verify(&by_old, "link", 99).unwrap().tenant, "acme");
        assert_eq!(new.verify(&by_both, "link", 99).unwrap().tenant, "acme");
        assert_eq!(new.verify(&by_old, "link", 99), Err(Refused::Invalid));
        assert_eq!(both.verify(&by_old, "link", 100), Err(Refused::Expired));
        // Tags: the first key's, matched under any.
        assert_eq!(both.tag(&["x"]), new.tag(&["x"]));
        assert!(both.tag_matches(&["x"], &old.tag(&["x"])));
        assert!(!new.tag_matches(&["x"], &old.tag(&["x"])));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
