//! Sealing what the store keeps: provider tokens, cookies and remembered inputs are written as
//! XChaCha20-Poly1305 ciphertext under the server's session key, with the row's provider, owner
//! and column bound as associated data, so a value copied to another row does not open.
//!
//! A key is 32 random bytes, written as 64 hex digits or as base64 (`otvi session-key` prints a
//! new one). Older keys are kept for reading only: a value sealed under one is sealed again under
//! the current key when its row is next written.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Marks a sealed value; anything else in a column is plain JSON.
const PREFIX: &str = "otvi1:";
const NONCE: usize = 24;

/// How the store writes values: sealed under a key, or (only when asked for) plain.
#[derive(Clone)]
pub enum Sealer {
    Keys {
        /// Seals and opens.
        current: Box<XChaCha20Poly1305>,
        /// Open only, tried in order after `current`.
        old: Vec<XChaCha20Poly1305>,
    },
    /// `--insecure-plaintext-sessions`: values are stored as JSON text.
    Plaintext,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sealer::Keys { old, .. } => write!(f, "Sealer::Keys(current + {} old)", old.len()),
            Sealer::Plaintext => f.write_str("Sealer::Plaintext"),
        }
    }
}

/// Which row and column a value belongs to: the associated data of its seal.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub column: &'static str,
    pub provider: &'a str,
    pub owner: &'a str,
}

impl Place<'_> {
    fn aad(&self) -> Vec<u8> {
        // Lengths first, so no two places share an encoding.
        let mut v = Vec::with_capacity(32 + self.provider.len() + self.owner.len());
        for part in [self.column, self.provider, self.owner] {
            v.extend_from_slice(&(part.len() as u64).to_be_bytes());
            v.extend_from_slice(part.as_bytes());
        }
        v
    }
}

/// Parses one key: 64 hex digits, or base64 (standard or URL-safe, padded or not) of 32 bytes.
pub fn parse_key(text: &str) -> Result<XChaCha20Poly1305, String> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|e| e.to_string())?
    } else {
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|e| e.decode(text).ok())
            .ok_or("a session key is 32 bytes as 64 hex digits or as base64")?
    };
    if bytes.len() != 32 {
        return Err(format!(
            "a session key is 32 bytes; this one is {} bytes",
            bytes.len()
        ));
    }
    XChaCha20Poly1305::new_from_slice(&bytes).map_err(|e| e.to_string())
}

/// A new random key, as 64 hex digits.
pub fn new_key() -> String {
    XChaCha20Poly1305::generate_key(&mut OsRng)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Sealer {
    /// The current key and older ones (comma- or whitespace-separated), as the environment
    /// gives them.
    pub fn from_keys(current: &str, old: Option<&str>) -> Result<Sealer, String> {
        let current = parse_key(current).map_err(|e| format!("OTVI_SESSION_KEY: {e}"))?;
        let old = old
            .unwrap_or("")
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, k)| {
                parse_key(k).map_err(|e| format!("OTVI_SESSION_KEY_OLD (key {}): {e}", i + 1))
            })
            .collect::<Result<_, _>>()?;
        Ok(Sealer::Keys {
            current: Box::new(current),
            old,
        })
    }

    /// A sealer with a fresh random key: state that lives as long as the process (the demo).
    pub fn ephemeral() -> Sealer {
        Sealer::Keys {
            current: Box::new(XChaCha20Poly1305::new(&XChaCha20Poly1305::generate_key(
                &mut OsRng,
            ))),
            old: Vec::new(),
        }
    }

    /// `text` as it is written to the store at `place`.
    pub fn seal(&self, place: Place<'_>, text: &str) -> String {
        match self {
            Sealer::Plaintext => text.to_string(),
            Sealer::Keys { current, .. } => {
                // 192 random bits: XChaCha20's nonces are long enough to be drawn at random.
                let nonce = XChaCha20Poly1305::generate_nonce(&mut rand::thread_rng());
                let aad = place.aad();
                let sealed = current
                    .encrypt(
                        &nonce,
                        Payload {
                            msg: text.as_bytes(),
                            aad: &aad,
                        },
                    )
                    // Encryption fails only for inputs far past any row's size.
                    .unwrap_or_default();
                let mut raw = Vec::with_capacity(NONCE + sealed.len());
                raw.extend_from_slice(&nonce);
                raw.extend_from_slice(&sealed);
                format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
            }
        }
    }

    /// What `stored` at `place` holds, or `None` when it does not open: sealed under no key this
    /// server has, sealed for another place, tampered with, or plain text while keys are in use.
    pub fn open(&self, place: Place<'_>, stored: &str) -> Option<String> {
        let Some(b64) = stored.strip_prefix(PREFIX) else {
            return matches!(self, Sealer::Plaintext).then(|| stored.to_string());
        };
        let Sealer::Keys { current, old } = self else {
            return None;
        };
        let raw = URL_SAFE_NO_PAD.decode(b64).ok()?;
        if raw.len() < NONCE {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE);
        let nonce = XNonce::from_slice(nonce);
        let aad = place.aad();
        std::iter::once(current.as_ref())
            .chain(old)
            .find_map(|k| {
                k.decrypt(
                    nonce,
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .ok()
            })
            .and_then(|plain| String::from_utf8(plain).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Place = Place {
        column: "session",
        provider: "acme",
        owner: "alice",
    };

    #[test]
    fn a_sealed_value_opens_only_at_its_own_place() {
        let s = Sealer::ephemeral();
        let sealed = s.seal(A, r#"{"access_token":"tok"}"#);
        assert!(
            sealed.starts_with(PREFIX) && !sealed.contains("tok"),
            "{sealed}"
        );
        assert_eq!(
            s.open(A, &sealed).as_deref(),
            Some(r#"{"access_token":"tok"}"#)
        );
        for other in [
            Place { owner: "bob", ..A },
            Place {
                provider: "acme2",
                ..A
            },
            Place {
                column: "pending.inputs",
                ..A
            },
            // The length prefix keeps ("ab","c") apart from ("a","bc").
            Place {
                provider: "acmea",
                owner: "lice",
                ..A
            },
        ] {
            assert_eq!(s.open(other, &sealed), None, "{other:?}");
        }
        assert_eq!(Sealer::ephemeral().open(A, &sealed), None, "another key");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(s.open(A, &tampered), None);
    }

    #[test]
    fn old_keys_open_and_plain_text_opens_only_without_keys() {
        let (k1, k2) = (new_key(), new_key());
        let before = Sealer::from_keys(&k1, None).unwrap();
        let sealed = before.seal(A, "v");
        let rotated = Sealer::from_keys(&k2, Some(&format!(" {k1} ,"))).unwrap();
        assert_eq!(rotated.open(A, &sealed).as_deref(), Some("v"));
        assert_eq!(before.open(A, &rotated.seal(A, "w")), None);
        assert_eq!(rotated.open(A, "{}"), None);
        assert_eq!(Sealer::Plaintext.open(A, "{}").as_deref(), Some("{}"));
        assert_eq!(Sealer::Plaintext.open(A, &sealed), None);
        assert_eq!(Sealer::Plaintext.seal(A, "{}"), "{}");
    }

    #[test]
    fn keys_are_32_bytes_in_hex_or_base64() {
        let hex = new_key();
        assert_eq!(hex.len(), 64);
        assert!(parse_key(&hex).is_ok());
        assert!(parse_key(&STANDARD.encode([7u8; 32])).is_ok());
        assert!(parse_key(&URL_SAFE_NO_PAD.encode([7u8; 32])).is_ok());
        assert!(parse_key(&STANDARD.encode([7u8; 16])).is_err_and(|e| e.contains("16 bytes")));
        assert!(parse_key("not a key").is_err());
        assert!(Sealer::from_keys(&hex, Some("short"))
            .unwrap_err()
            .contains("OTVI_SESSION_KEY_OLD (key 1)"));
    }
}
