//! JWT: the claims the existing OTVI server issues, HS256 with a shared secret.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::{Arc, Mutex};

/// The shortest secret `serve` takes: HS256 needs a key at least as long as its hash, 256
/// bits (RFC 7518, section 3.2).
pub const MIN_SECRET: usize = 32;

/// Why a secret cannot sign tokens, if it cannot.
pub fn weak_secret(secret: &str) -> Option<String> {
    (secret.len() < MIN_SECRET).then(|| {
        format!(
            "OTVI_JWT_SECRET is {} bytes; HS256 needs at least {MIN_SECRET} (RFC 7518, 3.2). \
             Make one with:  export OTVI_JWT_SECRET=\"$(openssl rand -hex 32)\"",
            secret.len()
        )
    })
}

/// The token of an `Authorization` header value: the scheme `Bearer`, in any case, then the
/// token.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A claim sent as `null` is a claim not sent: it takes its default.
fn null_is_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// `admin` or `user` (absent or `null`: `user`).
    #[serde(default = "default_role", deserialize_with = "role_or_default")]
    pub role: String,
    #[serde(default, deserialize_with = "null_is_default")]
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

fn role_or_default<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_else(default_role))
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

/// What a token must say beyond its signature and expiry: `--jwt-audience`, `--jwt-issuer`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// One of these must be in `aud`; empty: `aud` is not looked at.
    pub audience: Vec<String>,
    /// `iss` must be this.
    pub issuer: Option<String>,
}

impl Jwt {
    pub fn new(secret: &[u8]) -> Self {
        Jwt::expecting(secret, &Expect::default())
    }

    /// A verifier that also wants `expect`'s audience and issuer. `nbf` is honoured: a token
    /// is not valid before it.
    pub fn expecting(secret: &[u8], expect: &Expect) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if expect.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&expect.audience);
            required.push("aud");
        }
        if let Some(iss) = &expect.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
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

    /// A token with extra claims, signed with `secret`.
    fn raw(secret: &[u8], claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn a_token_is_not_valid_before_its_nbf() {
        let jwt = Jwt::new(b"secret");
        let now = unix_now();
        let later = raw(
            b"secret",
            serde_json::json!({"sub": "a", "exp": now + 60, "nbf": now + 30}),
        );
        assert!(jwt.verify(&later).is_none());
        assert!(jwt.verify_cached(&later).is_none());
        let now_valid = raw(
            b"secret",
            serde_json::json!({"sub": "a", "exp": now + 60, "nbf": now - 1}),
        );
        assert!(jwt.verify(&now_valid).is_some());
    }

    #[test]
    fn audience_and_issuer_are_checked_only_when_configured() {
        let now = unix_now();
        let t = |extra: serde_json::Value| {
            let mut c = serde_json::json!({"sub": "a", "exp": now + 60});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            raw(b"secret", c)
        };
        let open = Jwt::new(b"secret");
        assert!(open
            .verify(&t(serde_json::json!({"aud": "anything"})))
            .is_some());
        assert!(open
            .verify(&t(serde_json::json!({"aud": ["a", "b"], "iss": "x"})))
            .is_some());
        let strict = Jwt::expecting(
            b"secret",
            &Expect {
                audience: vec!["otvi".into()],
                issuer: Some("https://issuer.example".into()),
            },
        );
        let both = serde_json::json!({"aud": ["web", "otvi"], "iss": "https://issuer.example"});
        assert!(strict.verify(&t(both)).is_some());
        let wrong_aud = serde_json::json!({"aud": "web", "iss": "https://issuer.example"});
        assert!(strict.verify(&t(wrong_aud)).is_none());
        let wrong_iss = serde_json::json!({"aud": "otvi", "iss": "https://other.example"});
        assert!(strict.verify(&t(wrong_iss)).is_none());
        assert!(strict
            .verify(&t(serde_json::json!({"iss": "https://issuer.example"})))
            .is_none());
        assert!(strict
            .verify(&t(serde_json::json!({"aud": "otvi"})))
            .is_none());
    }

    #[test]
    fn null_claims_take_their_defaults() {
        let c: Claims = serde_json::from_str(
            r#"{"sub":"a","exp":1,"role":null,"must_change_password":null,"providers":null}"#,
        )
        .unwrap();
        assert_eq!(c.role, "user");
        assert!(!c.must_change_password);
        assert!(c.allows("x"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearerabc"), None);
    }

    #[test]
    fn a_secret_under_32_bytes_is_weak() {
        assert!(weak_secret("test-secret").unwrap().contains("11 bytes"));
        assert_eq!(weak_secret(&"k".repeat(32)), None);
    }

    #[test]
    fn role_defaults_to_user() {
        let c: Claims = serde_json::from_str(r#"{"sub":"a","exp":1}"#).unwrap();
        assert!(!c.is_admin());
        assert!(c.allows("x"));
    }
}
