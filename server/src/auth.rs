//! JWT: the claims the existing OTVI server issues, HS256 with a shared secret.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// `admin` or `user`.
    #[serde(default = "default_role")]
    pub role: String,
    #[serde(default)]
    pub must_change_password: bool,
    /// Providers this token may use; absent or empty: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub providers: Option<Vec<String>>,
    /// Display name; carried, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

fn default_role() -> String {
    "user".into()
}

impl Claims {
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }
    /// Does the allow-list (if any) permit `provider`.
    pub fn allows(&self, provider: &str) -> bool {
        match &self.providers {
            Some(list) if !list.is_empty() => list.iter().any(|p| p == provider),
            _ => true,
        }
    }
}

/// Signs and verifies tokens with one secret.
#[derive(Clone)]
pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Tokens whose signature was verified, with their claims: a token is the same bytes on
    /// every request of a client, and its validity depends only on those bytes, the secret
    /// and the time, so only its expiry is checked again.
    verified: Arc<Mutex<crate::FastMap<Box<str>, Arc<Claims>>>>,
}

/// Verified tokens remembered before the cache starts over.
const VERIFIED_MAX: usize = 10_000;

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Jwt(***)")
    }
}

impl Jwt {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Jwt {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            verified: Default::default(),
        }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding).unwrap_or_default()
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|d| d.claims)
    }

    /// `verify`, remembering the tokens that passed: a token seen before costs a lookup and an
    /// expiry check instead of a signature check and two JSON decodes.
    pub fn verify_cached(&self, token: &str) -> Option<Arc<Claims>> {
        let now = unix_now();
        // `exp` is checked as `verify` does, without leeway: valid through its second.
        let unexpired = |c: &Claims| c.exp >= now;
        if let Some(c) = self.verified.lock().ok()?.get(token) {
            return unexpired(c).then(|| c.clone());
        }
        let claims = Arc::new(self.verify(token)?);
        let mut cache = self.verified.lock().ok()?;
        if cache.len() >= VERIFIED_MAX {
            cache.clear();
        }
        cache.insert(token.into(), claims.clone());
        Some(claims)
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether two secrets are equal, taking the same time wherever they differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "alice".into(),
            exp,
            role: "user".into(),
            must_change_password: false,
            providers: None,
            username: None,
        }
    }

    #[test]
    fn a_signed_token_verifies_and_a_foreign_one_does_not() {
        let jwt = Jwt::new(b"secret");
        let t = jwt.sign(&claims(unix_now() + 60));
        assert_eq!(jwt.verify(&t).unwrap().sub, "alice");
        assert!(Jwt::new(b"other").verify(&t).is_none());
        assert!(jwt.verify("garbage").is_none());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let jwt = Jwt::new(b"secret");
        assert!(jwt.verify(&jwt.sign(&claims(unix_now() - 5))).is_none());
        assert!(jwt
            .verify_cached(&jwt.sign(&claims(unix_now() - 5)))
            .is_none());
    }

    #[test]
    fn a_remembered_token_expires_and_a_tampered_one_is_not_taken_for_it() {
        let jwt = Jwt::new(b"secret");
        let t = jwt.sign(&claims(unix_now() + 60));
        assert_eq!(jwt.verify_cached(&t).unwrap().sub, "alice");
        assert_eq!(jwt.verify_cached(&t).unwrap().sub, "alice");
        // The same signature over other claims is another token, checked on its own.
        let (_, sig) = t.rsplit_once('.').unwrap();
        let other = jwt.sign(&Claims {
            sub: "mallory".into(),
            ..claims(unix_now() + 60)
        });
        let (head, _) = other.rsplit_once('.').unwrap();
        assert!(jwt.verify_cached(&format!("{head}.{sig}")).is_none());
        // A remembered token is refused once its expiry has passed.
        let soon = jwt.sign(&claims(unix_now()));
        assert!(jwt.verify_cached(&soon).is_some());
        jwt.verified
            .lock()
            .unwrap()
            .get_mut(soon.as_str())
            .map(|c| Arc::make_mut(c).exp = unix_now() - 1)
            .unwrap();
        assert!(jwt.verify_cached(&soon).is_none());
    }

    #[test]
    fn role_defaults_to_user() {
        let c: Claims = serde_json::from_str(r#"{"sub":"a","exp":1}"#).unwrap();
        assert!(!c.is_admin());
        assert!(c.allows("x"));
    }
}
