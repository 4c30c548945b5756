//! Provider secrets (`secrets:` in a provider file): read once when the server starts, held in
//! a type that never prints them, and kept out of every answer.

use std::collections::HashMap;
use std::fmt;

/// A password or a provider secret: `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A provider secret: read from the environment variable `env` when the server starts.
#[derive(Debug)]
pub struct SecretDef {
    pub key: &'static str,
    pub env: &'static str,
}

/// One provider's secrets, by name.
#[derive(Debug, Default)]
pub struct Secrets {
    values: Vec<(&'static str, Secret)>,
}

/// No secrets: for providers that declare none.
pub static NONE: Secrets = Secrets { values: Vec::new() };

impl Secrets {
    /// The secret `key`, if the provider declares it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.expose())
    }

    /// `text` with every secret value replaced by `***`: for anything the provider sent back
    /// that is shown to the user (an error message, a display field), in case it echoes one.
    pub fn redact(&self, text: String) -> String {
        self.values
            .iter()
            .map(|(_, v)| v.expose())
            .filter(|v| !v.is_empty())
            .fold(text, |t, v| {
                if t.contains(v) {
                    t.replace(v, "***")
                } else {
                    t
                }
            })
    }
}

/// Reads the secrets of every provider, given as (provider id, its secrets), through `lookup`
/// (the environment, or values a demo sets). Fails naming every provider and variable that is
/// unset or empty, or holds a line break or NUL (it could not be sent in a header).
pub fn load<'p>(
    providers: impl IntoIterator<Item = (&'static str, &'p [SecretDef])>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<HashMap<&'static str, Secrets>, String> {
    let mut out = HashMap::new();
    let mut problems = Vec::new();
    for (id, declared) in providers {
        let mut secrets = Secrets::default();
        for s in declared {
            match lookup(s.env) {
                Some(v) if v.contains(['\r', '\n', '\0']) => problems.push(format!(
                    "provider `{id}`: {} (secret `{}`) holds a line break or NUL",
                    s.env, s.key
                )),
                Some(v) if !v.is_empty() => secrets.values.push((s.key, Secret::new(v))),
                _ => problems.push(format!(
                    "provider `{id}` needs {} (secret `{}`), which is not set",
                    s.env, s.key
                )),
            }
        }
        out.insert(id, secrets);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static P: (&str, &[SecretDef]) = (
        "indee",
        &[SecretDef {
            key: "api_key",
            env: "TEST_INDEE_KEY",
        }],
    );

    #[test]
    fn an_unset_secret_names_provider_and_variable() {
        let err = load([P], |_| None).unwrap_err();
        assert_eq!(
            err,
            "provider `indee` needs TEST_INDEE_KEY (secret `api_key`), which is not set"
        );
        assert!(load([P], |_| Some(String::new())).is_err());
        assert!(load([P], |_| Some("a\nb".into())).is_err());
    }

    #[test]
    fn secrets_are_read_and_redacted() {
        let all = load([P], |v| (v == "TEST_INDEE_KEY").then(|| "k-123".into())).unwrap();
        let s = &all["indee"];
        assert_eq!(s.get("api_key"), Some("k-123"));
        assert_eq!(s.redact("bad key k-123!".into()), "bad key ***!");
        assert!(!format!("{s:?}").contains("k-123"));
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
        assert_eq!(Secret::new("hunter2").to_string(), "***");
    }
}
