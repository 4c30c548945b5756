//! Emission: a checked provider becomes one Rust module, formatted with prettyplease.
//!
//! Templates are already split into pieces, so each request lists its literal text and typed
//! values for a runtime function to encode (`request`); each step's outcomes become a
//! documented static apiece and a function whose conditions are plain Rust (`flow`). Stored
//! values are named by constants (`keys`), and each function reads the ones it uses into a
//! struct of its own, sensitive ones as `Secret`. Every item's doc comment names the YAML file
//! and line it came from.

mod flow;
mod request;

use crate::check::sensitive::{Reason, Sensitivity};
use crate::model::*;
use proc_macro2::{Ident, Span as PSpan, TokenStream};
use quote::quote;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// A Rust identifier for `name`: snake_case, never a keyword, never empty.
pub fn snake(name: &str, fallback: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            // camelCase: `deviceName` -> `device_name`.
            if c.is_ascii_uppercase() && prev_lower {
                out.push('_');
            }
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c.to_ascii_lowercase());
        } else {
            prev_lower = false;
            if !out.ends_with('_') {
                out.push('_');
            }
        }
    }
    let out = out.trim_matches('_').to_string();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        return fallback.to_string();
    }
    if syn::parse_str::<Ident>(&out).is_err() {
        return format!("{out}_");
    }
    out
}

fn ident(s: &str) -> Ident {
    Ident::new(s, PSpan::call_site())
}

/// The module name of a provider file.
pub fn module_name(p: &Provider) -> String {
    snake(&p.id.v, "provider")
}

fn doc(text: String) -> TokenStream {
    let text = format!(" {}", doc_text(&text));
    quote! { #[doc = #text] }
}

/// `text` made safe for a `///` comment, where it is printed as written: control characters
/// (a bare CR does not even lex) and the bidirectional-override characters rustc refuses in
/// comments are shown escaped, e.g. a JSONPath `"$.a\rb"` as `$.a\rb`.
fn doc_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || is_bidi_control(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The characters of rustc's `text_direction_codepoint_in_comment` and
/// `text_direction_codepoint_in_literal` lints (both deny by default).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Names that generated items must not take: they are imported from the runtime or are
/// items of the generated module itself.
const RESERVED: &[&str] = &[
    "read",
    "inputs",
    "flow",
    "logout",
    "provider",
    "base64",
    "need",
    "push_form",
    "push_json_str",
    "push_path_segment",
    "secret",
    "keys",
    "path",
    "segment",
    "text",
];

/// Names taken in one generated module; a name asked for twice gets a numbered suffix.
struct Names {
    taken: HashSet<String>,
}

impl Names {
    fn new(taken: impl IntoIterator<Item = String>) -> Self {
        let mut taken: HashSet<String> = taken.into_iter().collect();
        taken.extend(RESERVED.iter().map(|r| r.to_string()));
        taken.extend(["FLOW", "PROVIDER"].map(String::from));
        Names { taken }
    }
    fn take(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut n = 2;
        while !self.taken.insert(name.clone()) {
            name = format!("{}_{n}", base.trim_end_matches('_'));
            n += 1;
        }
        name
    }
}

/// A provider's stored values: per key, the constant naming it in the generated `keys` module,
/// the field a step's `Stored` struct reads it into, and whether it is sensitive (then the
/// field is a `Secret`, which never prints).
pub(super) struct Keys(BTreeMap<String, Key>);

pub(super) struct Key {
    pub konst: Ident,
    pub field: Ident,
    pub sensitive: Option<Reason>,
    /// Where the key is first extracted: `file:line`.
    at: String,
}

impl Keys {
    fn of(p: &Provider, file: &str) -> Self {
        let sensitivity = Sensitivity::of(p);
        let (mut konsts, mut fields) = (Names::new([]), Names::new([]));
        let mut keys = BTreeMap::new();
        for e in p
            .flows
            .iter()
            .flat_map(|f| &f.steps)
            .flat_map(|s| s.extracts())
        {
            let k = &e.key.v;
            if keys.contains_key(k) {
                continue;
            }
            let name = snake(k, "value");
            keys.insert(
                k.clone(),
                Key {
                    konst: ident(&konsts.take(&name.to_uppercase())),
                    field: ident(&fields.take(&name)),
                    sensitive: sensitivity.stored(k),
                    at: format!("{file}:{}", e.key.span.start.line),
                },
            );
        }
        Keys(keys)
    }
    pub fn get(&self, k: &str) -> Option<&Key> {
        self.0.get(k)
    }
    /// The constant that names stored value `k`: `keys::K` (the bare string for a key no
    /// step keeps, which checked code never names).
    pub fn path(&self, k: &str) -> TokenStream {
        match self.get(k) {
            Some(key) => {
                let c = &key.konst;
                quote! { keys::#c }
            }
            None => quote! { #k },
        }
    }

    /// `pub mod keys`: one constant per stored key.
    fn module(&self) -> TokenStream {
        if self.0.is_empty() {
            return TokenStream::new();
        }
        let consts = self.0.iter().map(|(k, key)| {
            let d = doc(match key.sensitive {
                Some(r) => format!(
                    "`{k}`, first kept at {}; sensitive ({}).",
                    key.at,
                    r.describe()
                ),
                None => format!("`{k}`, first kept at {}.", key.at),
            });
            let c = &key.konst;
            quote! { #d pub const #c: &str = #k; }
        });
        quote! {
            /// The provider's stored values, by key: what steps keep and later requests read.
            pub mod keys {
                #(#consts)*
            }
        }
    }
}

/// Rust names for `names` (snake_case), unique among themselves and clear of `RESERVED`;
/// `fallback` names the i-th when its own has no usable characters.
fn unique_names<'a>(names: impl Iterator<Item = &'a str>, fallback: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    names
        .enumerate()
        .map(|(i, name)| {
            let mut n = snake(name, &format!("{fallback}_{i}"));
            if RESERVED.contains(&n.as_str()) || !seen.insert(n.clone()) {
                n = format!("{n}_{i}");
                seen.insert(n.clone());
            }
            n
        })
        .collect()
}

/// A template as written, for doc comments.
fn template_text(t: &Template) -> String {
    t.pieces
        .iter()
        .map(|p| match p {
            Piece::Lit(l) => l.clone(),
            Piece::Var(v, _) => v.display(),
        })
        .collect::<String>()
        .replace('`', "'")
}

/// The Rust source of one provider's module. `file` is how its YAML file is named in comments.
pub fn provider_module(p: &Provider, file: &str) -> String {
    let names = unique_names(p.flows.iter().map(|f| f.id.v.as_str()), "flow");
    let keys = Keys::of(p, file);
    let mut mods = vec![keys.module()];
    for (f, name) in p.flows.iter().zip(&names) {
        let m = ident(name);
        let body = flow::module(p, f, file, &keys);
        let d = doc(format!(
            "Flow `{}`, \"{}\" ({}:{}).",
            f.id.v, f.name.v, file, f.span.start.line
        ));
        mods.push(quote! {
            #d
            pub mod #m {
                use super::*;
                #body
            }
        });
    }
    let logout = match &p.logout {
        Some(r) => {
            let body = request::FlowCx::logout(&keys).request_fn(p, r);
            let d = doc(format!(
                "The logout request ({}:{}): {} {}.",
                file,
                r.span.start.line,
                r.method.v.as_str(),
                template_text(&r.path)
            ));
            mods.push(quote! {
                #d
                pub fn logout(cx: &StepCx<'_>) -> Result<Outbound, StepError> { #body }
            });
            quote! { Some(logout) }
        }
        None => quote! { None },
    };
    // What the logout request reads of the session: a new login whose values for these are
    // the old session's is the same provider session, not one to log out.
    let logout_reads: BTreeSet<&str> = p
        .logout
        .iter()
        .flat_map(crate::check::request_templates)
        .flat_map(|t| t.vars())
        .filter_map(|(v, _)| match v {
            Var::Stored(k) => Some(k.as_str()),
            _ => None,
        })
        .collect();
    let logout_reads = logout_reads.iter().map(|k| keys.path(k));
    let logout_on_relogin = p.logout.is_some() && p.logout_on_relogin.as_ref().is_none_or(|b| b.v);
    let check = match &p.check {
        Some(c) => {
            let taken: Vec<&str> = p.flows.iter().map(|f| f.id.v.as_str()).collect();
            let all = unique_names(taken.into_iter().chain(["session_check"]), "flow");
            let m = ident(all.last().map_or("session_check", String::as_str));
            let body = flow::module(p, &c.flow, file, &keys);
            let d = doc(format!(
                "`auth.check` ({}:{}): one step; an outcome that completes says the session is valid, one that fails that it ended.",
                file, c.span.start.line
            ));
            let (cache, unreachable) = (c.cache.v, c.unreachable_valid());
            mods.push(quote! {
                #d
                pub mod #m {
                    use super::*;
                    #body
                }
                static CHECK: CheckDef = CheckDef {
                    flow: &#m::FLOW,
                    cache_secs: #cache,
                    unreachable_valid: #unreachable,
                };
            });
            quote! { Some(&CHECK) }
        }
        None => quote! { None },
    };
    let flow_refs = names.iter().map(|n| {
        let m = ident(n);
        quote! { &#m::FLOW }
    });
    let (id, name) = (&p.id.v, &p.name.v);
    let logo = match &p.logo {
        Some(l) => {
            let l = &l.v;
            quote! { Some(#l) }
        }
        None => quote! { None },
    };
    let scope = match p.scope {
        Scope::PerUser => quote! { Scope::PerUser },
        Scope::Global => quote! { Scope::Global },
    };
    let base = p.base_url.as_ref().map_or("", |b| b.v.as_str());
    let secrets = p.secrets.iter().map(|s| {
        let (key, env) = (&s.key.v, &s.env.v);
        quote! { SecretDef { key: #key, env: #env } }
    });
    let header =
        format!("// @generated by otvi-codegen from {file}. Do not edit: change the YAML file.\n");
    let d = doc(format!(
        "Provider `{}`, \"{}\" ({}:{}).",
        p.id.v, p.name.v, file, p.id.span.start.line
    ));
    let tokens = quote! {
        #[allow(unused_imports)]
        use otvi_runtime::def::{CheckDef, Choices, ExtractDef, FailDef, FieldDef, FieldType, FlowDef, OutcomeDef, ProviderDef, Scope, SecretDef, Source, StepDef, Then};
        #[allow(unused_imports)]
        use otvi_runtime::request::{base64, need, path, segment, text, Json, Method, Outbound, Part::{Lit, Val}, Secret, StepCx, StepError};
        #[allow(unused_imports)]
        use otvi_runtime::response::{Expect, Reply};
        #[allow(unused_imports)]
        use otvi_runtime::JsonPath;

        #d
        pub static PROVIDER: ProviderDef = ProviderDef {
            id: #id,
            name: #name,
            logo: #logo,
            scope: #scope,
            base_url: #base,
            flows: &[#(#flow_refs),*],
            logout: #logout,
            logout_reads: &[#(#logout_reads),*],
            logout_on_relogin: #logout_on_relogin,
            check: #check,
            secrets: &[#(#secrets),*],
            source: #file,
        };

        #(#mods)*
    };
    header + &format(tokens)
}

/// The root file of a provider set: one module per provider, each `include!`ing its file
/// (found beside the root, wherever that is: `OUT_DIR` when compiled, the audit copy when
/// read), and `PROVIDERS`, every compiled provider in file order. A build script's crate
/// includes it with `otvi_runtime::include_providers!()`.
pub fn providers_root(modules: &[(String, &str)]) -> String {
    let mods = modules.iter().map(|(m, file)| {
        let id = ident(m);
        let d = doc(format!("The provider compiled from {file}."));
        let path = format!("{m}.rs");
        quote! {
            #d
            pub mod #id {
                include!(#path);
            }
        }
    });
    let refs = modules.iter().map(|(m, _)| {
        let id = ident(m);
        quote! { &#id::PROVIDER }
    });
    let tokens = quote! {
        #(#mods)*
        /// Every compiled provider, in file order.
        pub static PROVIDERS: &[&otvi_runtime::def::ProviderDef] = &[#(#refs),*];
    };
    String::from(
        "// @generated by otvi-codegen from the provider files. Do not edit: change the YAML files.\n",
    ) + &format(tokens)
}

fn format(tokens: TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        // Unreachable for checked input; emit the unformatted tokens so rustc names the problem.
        Err(_) => tokens.to_string(),
    }
}

/// The name of the root file `emit_all` writes beside the provider modules.
pub const ROOT: &str = "providers.rs";

/// Emits every provider of a clean check: `(file name, source)` pairs: one module per
/// provider, then the root (`ROOT`). `files` gives each provider's YAML path as it should
/// appear in comments.
pub fn emit_all(providers: &[(&str, &Provider)]) -> Vec<(String, String)> {
    emit_all_with(providers, |_, _| None)
}

/// `emit_all`, taking a provider's module from `reuse` where it has one: `reuse(i, name)` is
/// asked for the module of the i-th provider, whose file is `name`, before it is emitted.
/// A build reuses what it emitted for an unchanged provider file (`Build::compile`).
pub fn emit_all_with(
    providers: &[(&str, &Provider)],
    mut reuse: impl FnMut(usize, &str) -> Option<String>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut modules: Vec<(String, &str)> = Vec::new();
    for (i, (file, p)) in providers.iter().enumerate() {
        let mut m = module_name(p);
        // `a-b` and `a_b` are distinct ids with one module name.
        while modules.iter().any(|(n, _)| *n == m) || format!("{m}.rs") == ROOT {
            m.push('_');
        }
        let name = format!("{m}.rs");
        let code = reuse(i, &name).unwrap_or_else(|| provider_module(p, file));
        out.push((name, code));
        modules.push((m, file));
    }
    out.push((ROOT.into(), providers_root(&modules)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_becomes_snake_case_and_names_never_double_an_underscore() {
        assert_eq!(snake("deviceName", "x"), "device_name");
        assert_eq!(snake("Sign In", "x"), "sign_in");
        assert_eq!(snake("type", "x"), "type_");
        let mut names = Names::new([]);
        assert_eq!(names.take("type_"), "type_");
        assert_eq!(names.take("type_"), "type_2");
    }

    #[test]
    fn names_are_snake_case_unique_and_clear_of_reserved_ones() {
        let names = unique_names(
            ["Sign In", "sign-in", "Need", "2FA", "", "type"].into_iter(),
            "step",
        );
        assert_eq!(
            names,
            [
                "sign_in",
                "sign_in_1",
                "need_2",
                "step_3",
                "step_4",
                "type_"
            ]
        );
    }
}
