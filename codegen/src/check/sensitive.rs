//! Which values are sensitive: the one rule that `explain`, the language server and the
//! checks read (and that generated code will follow when it keeps sensitive values in a type
//! that never prints them).
//!
//! Sensitivity follows where a value comes from, not what it is called:
//! - `{{secret.K}}`: always.
//! - a `password` field: always (`sensitive: false` on one is an error).
//! - a field a prompt asks for (a collected one, not `link` or `info`): the provider asked for
//!   it in the middle of a sign-in, which is where one-time codes, verification codes and codes
//!   copied from a sign-in page come from. `sensitive: false` says it is not one (an account
//!   to choose).
//! - a value kept from the provider's answer (`extract`: a JSONPath, a header, a cookie): it
//!   may be a token or a session. `sensitive: false` on the extract says it is not (a request
//!   id). The status (`status: true`) is a number the server knows the shape of: not sensitive.
//! - `sensitive: true` marks any other field or extract.
//!
//! Names still count where nothing above decides: a flow input whose key contains `password`,
//! `code` or `otp`, a status kept under a key containing `token`, `cookie` or `secret`.
//! An explicit `sensitive:` wins over a name (but never over `password` or a secret).
//!
//! A stored value is one per key, whichever step keeps it (the session holds it by key): it is
//! sensitive when any extract of that key in the provider is.

use crate::model::{Extract, Field, FieldType, Flow, Provider, Source, Var};
use std::collections::BTreeMap;

/// Why a value is sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A provider secret.
    Secret,
    /// A `password` field.
    Password,
    /// A field a prompt asks for: a code.
    Prompted,
    /// Kept from the provider's answer (any source but the status).
    Answer,
    /// Kept from a cookie the provider set.
    Cookie,
    /// `sensitive: true`.
    Marked,
    /// No other rule decides, and the name says so (`password`, `code`, `otp` for an input;
    /// `token`, `cookie`, `secret` for a stored value).
    Named,
}

impl Reason {
    /// In words, for reports and hovers.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Secret => "a provider secret",
            Reason::Password => "a `password` field",
            Reason::Prompted => "a code a prompt asks for",
            Reason::Answer => "kept from the provider's answer",
            Reason::Cookie => "a cookie the provider set",
            Reason::Marked => "marked `sensitive: true`",
            Reason::Named => "its name says so",
        }
    }
}

/// An input key that names a secret the user types.
fn input_name_says_so(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "code", "otp"].iter().any(|w| k.contains(w))
}

/// A stored key that names a credential.
fn stored_name_says_so(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["token", "cookie", "secret"].iter().any(|w| k.contains(w))
}

/// Whether field `f` is sensitive, and why; `prompted`: a prompt asks for it (it is not a flow
/// input). Display fields are shown, not collected: never.
pub fn field(f: &Field, prompted: bool) -> Option<Reason> {
    if f.is_display() {
        return None;
    }
    if f.field_type == FieldType::Password {
        return Some(Reason::Password);
    }
    match f.sensitive.as_ref().map(|s| s.v) {
        Some(true) => Some(Reason::Marked),
        Some(false) => None,
        None if prompted => Some(Reason::Prompted),
        None => input_name_says_so(&f.key.v).then_some(Reason::Named),
    }
}

/// Whether the value extract `e` keeps is sensitive, and why (this extract alone; a key kept
/// by several is `Sensitivity::stored`).
pub fn extract(e: &Extract) -> Option<Reason> {
    match e.sensitive.as_ref().map(|s| s.v) {
        Some(true) => Some(Reason::Marked),
        Some(false) => None,
        None => match &e.source {
            Source::Cookie(_) => Some(Reason::Cookie),
            Source::Path { .. } | Source::Header(_) => Some(Reason::Answer),
            Source::Status => stored_name_says_so(&e.key.v).then_some(Reason::Named),
        },
    }
}

/// Every field of `f` with whether a prompt asks for it (`false`: a flow input).
pub fn fields(f: &Flow) -> impl Iterator<Item = (&Field, bool)> {
    f.inputs.iter().map(|x| (x, false)).chain(
        f.steps
            .iter()
            .flat_map(|s| s.prompt_fields())
            .map(|x| (x, true)),
    )
}

/// The sensitivity of every value of a provider.
#[derive(Debug, Clone, Default)]
pub struct Sensitivity {
    /// Per flow (by index), per input key: `None` when not sensitive.
    inputs: Vec<BTreeMap<String, Option<Reason>>>,
    /// Per stored key.
    stored: BTreeMap<String, Option<Reason>>,
}

impl Sensitivity {
    pub fn of(p: &Provider) -> Self {
        let inputs = p
            .flows
            .iter()
            .map(|f| {
                let mut m: BTreeMap<String, Option<Reason>> = BTreeMap::new();
                for (x, prompted) in fields(f) {
                    let r = field(x, prompted);
                    let e = m.entry(x.key.v.clone()).or_default();
                    *e = e.or(r);
                }
                m
            })
            .collect();
        let mut stored: BTreeMap<String, Option<Reason>> = BTreeMap::new();
        for e in p
            .flows
            .iter()
            .flat_map(|f| &f.steps)
            .flat_map(|s| s.extracts())
        {
            let r = extract(e);
            let slot = stored.entry(e.key.v.clone()).or_default();
            *slot = slot.or(r);
        }
        Sensitivity { inputs, stored }
    }

    /// Input `key` of flow `flow` (an index into `Provider::flows`).
    pub fn input(&self, flow: usize, key: &str) -> Option<Reason> {
        self.inputs.get(flow)?.get(key).copied().flatten()
    }

    /// Stored value `key`: sensitive when any extract of it is.
    pub fn stored(&self, key: &str) -> Option<Reason> {
        self.stored.get(key).copied().flatten()
    }

    /// What placeholder `v` names, used in flow `flow` (`None`: outside a flow, where no
    /// input is defined).
    pub fn var(&self, flow: Option<usize>, v: &Var) -> Option<Reason> {
        match v {
            Var::Secret(_) => Some(Reason::Secret),
            Var::Input(k) => flow.and_then(|f| self.input(f, k)),
            Var::Stored(k) => self.stored(k),
            Var::Uuid | Var::UtcNow | Var::UtcDate | Var::RunId => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(src: &str) -> Provider {
        let checked = crate::check_one("p.yaml", src.as_bytes());
        assert!(
            checked.report.diagnostics.is_empty(),
            "{:?}",
            checked.report.diagnostics
        );
        checked.provider.unwrap()
    }

    const SRC: &str = r#"
provider: { id: t, name: T }
defaults: { base_url: "https://api.t.example" }
secrets: { key: { env: T_KEY } }
auth:
  flows:
    - id: login
      name: Login
      inputs:
        - { key: user, label: User }
        - { key: password, label: Password, type: password }
        - { key: otp_seed, label: Seed }
        - { key: promo_code, label: Promo, sensitive: false }
      steps:
        - name: Sign In
          request:
            method: POST
            path: /login
            headers: { X-Key: "{{secret.key}}" }
            body: '{"u": "{{input.user}}", "p": "{{input.password}}", "s": "{{input.otp_seed}}", "c": "{{input.promo_code}}"}'
          outcomes:
            - when: { status: 200 }
              extract:
                sid: { cookie: sid }
                status: { status: true }
                request_id: { path: "$.id", sensitive: false }
              prompt:
                - { key: otp, label: Code }
                - { key: account, label: Account, sensitive: false }
            - fail: nope
        - name: Verify
          request:
            method: POST
            path: /verify
            body: '{"o": "{{input.otp}}", "a": "{{input.account}}", "s": "{{stored.sid}}", "r": "{{stored.request_id}}", "h": "{{stored.status}}"}'
          on_success: { extract: { token: { header: X-Token } } }
"#;

    #[test]
    fn values_are_sensitive_by_where_they_come_from() {
        let p = provider(SRC);
        let s = Sensitivity::of(&p);
        let input = |k: &str| s.input(0, k);
        assert_eq!(input("user"), None);
        assert_eq!(input("password"), Some(Reason::Password));
        assert_eq!(
            input("otp_seed"),
            Some(Reason::Named),
            "a name still counts"
        );
        assert_eq!(input("promo_code"), None, "marked not");
        assert_eq!(input("otp"), Some(Reason::Prompted));
        assert_eq!(input("account"), None, "a prompted field marked not");
        assert_eq!(s.stored("sid"), Some(Reason::Cookie));
        assert_eq!(s.stored("token"), Some(Reason::Answer));
        assert_eq!(s.stored("request_id"), None);
        assert_eq!(s.stored("status"), None);
        assert_eq!(
            s.var(None, &Var::Secret("key".into())),
            Some(Reason::Secret)
        );
        // Outside a flow no input is defined.
        assert_eq!(s.var(None, &Var::Input("password".into())), None);
        assert_eq!(s.var(None, &Var::Uuid), None);
    }
}
