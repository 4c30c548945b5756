//! Emission: a checked provider becomes one Rust module, formatted with prettyplease.
//!
//! Templates are already split into pieces, so each request is assembled from string literals
//! and typed values; the encoder of each value is chosen here from where it stands (JSON
//! string, form body, path segment, header or query value). Every item's doc comment names the
//! YAML file and line it came from.

use crate::model::*;
use proc_macro2::{Ident, Span as PSpan, TokenStream};
use quote::{format_ident, quote};
use std::collections::HashSet;

/// A Rust identifier for `name`: snake_case, never a keyword, never empty.
pub fn snake(name: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
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

/// A field of the inputs struct: the key itself when it is a usable identifier.
fn field_ident(key: &str) -> Ident {
    if syn::parse_str::<Ident>(key).is_ok() {
        ident(key)
    } else if key.starts_with(|c: char| c.is_ascii_digit()) {
        format_ident!("f_{}", key)
    } else {
        format_ident!("{}_", key)
    }
}

/// The module name of a provider file.
pub fn module_name(p: &Provider) -> String {
    snake(&p.id.v, "provider")
}

fn doc(text: String) -> TokenStream {
    let text = format!(" {text}");
    quote! { #[doc = #text] }
}

/// How a value is encoded where it stands.
#[derive(Clone, Copy)]
enum Enc {
    Raw,
    Json,
    Form,
    PathSegment,
}

struct FlowCx<'a> {
    flow: Option<&'a Flow>,
}

impl FlowCx<'_> {
    fn field(&self, key: &str) -> Option<&Field> {
        let f = self.flow?;
        f.inputs
            .iter()
            .chain(f.steps.iter().flat_map(|s| s.prompt.iter()))
            .find(|x| x.key.v == key)
    }

    /// A `&str` expression for `v`.
    fn value(&self, v: &Var) -> TokenStream {
        match v {
            Var::Input(k) => {
                let f = field_ident(k);
                match self.field(k) {
                    Some(fd) if fd.field_type == FieldType::Password && fd.required => {
                        quote! { need(input.#f.as_ref().map(Secret::expose), #k)? }
                    }
                    Some(fd) if fd.field_type == FieldType::Password => {
                        quote! { input.#f.as_ref().map(Secret::expose).unwrap_or_default() }
                    }
                    Some(fd) if !fd.required => quote! { input.#f.as_deref().unwrap_or_default() },
                    _ => quote! { need(input.#f.as_deref(), #k)? },
                }
            }
            Var::Stored(k) => quote! { cx.stored(#k)? },
            Var::Uuid => quote! { cx.uuid() },
            Var::UtcNow => quote! { &cx.utcnow() },
            Var::UtcDate => quote! { &cx.utcdate() },
        }
    }

    /// A `String` expression for a template that is one literal, or one value needing no
    /// encoding.
    fn simple(&self, t: &Template, enc: Enc) -> Option<TokenStream> {
        if let Some(lit) = t.literal() {
            return Some(quote! { String::from(#lit) });
        }
        match (t.pieces.as_slice(), enc) {
            ([Piece::Var(v, _)], Enc::Raw) => {
                let val = self.value(v);
                Some(quote! { String::from(#val) })
            }
            _ => None,
        }
    }

    /// Statements that build `target: String` from `t`.
    fn assemble(&self, target: &Ident, t: &Template, enc: Enc) -> TokenStream {
        if let Some(e) = self.simple(t, enc) {
            return quote! { let #target = #e; };
        }
        let mut stmts = Vec::new();
        for p in &t.pieces {
            stmts.push(match p {
                Piece::Lit(l) => quote! { #target.push_str(#l); },
                Piece::Var(v, _) => {
                    let val = self.value(v);
                    match enc {
                        Enc::Raw => quote! { #target.push_str(#val); },
                        Enc::Json => quote! { push_json_str(&mut #target, #val); },
                        Enc::Form => quote! { push_form(&mut #target, #val); },
                        Enc::PathSegment => quote! { push_path_segment(&mut #target, #val); },
                    }
                }
            });
        }
        quote! {
            let mut #target = String::new();
            #(#stmts)*
        }
    }

    fn uses_inputs(&self, r: &Request) -> bool {
        crate::check::request_templates(r)
            .flat_map(|t| t.vars())
            .any(|(v, _)| matches!(v, Var::Input(_)))
    }

    /// The body of a function `fn(cx: &StepCx<'_>) -> Result<Outbound, StepError>`.
    fn request_fn(&self, p: &Provider, r: &Request) -> TokenStream {
        let mut stmts = Vec::new();
        if self.flow.is_some_and(|f| !all_fields(f).is_empty()) && self.uses_inputs(r) {
            stmts.push(quote! { let input = Inputs::read(cx); });
        }
        let url = ident("url");
        let is_absolute =
            matches!(r.path.pieces.first(), Some(Piece::Lit(l)) if !l.starts_with('/'));
        let path = ident("path");
        match (is_absolute, r.path.literal()) {
            (true, Some(lit)) => stmts.push(quote! { let #url = String::from(#lit); }),
            (false, Some(lit)) => stmts.push(quote! { let #url = cx.url(#lit); }),
            (true, None) => stmts.push(self.assemble(&url, &r.path, Enc::PathSegment)),
            (false, None) => {
                stmts.push(self.assemble(&path, &r.path, Enc::PathSegment));
                stmts.push(quote! { let #url = cx.url(&#path); });
            }
        }
        let method = ident(r.method.v.as_str());
        stmts.push(quote! { let mut req = Outbound::new(Method::#method, #url); });

        // Headers: the provider's defaults, each replaced by a step header of the same name.
        let mut headers: Vec<&Header> = p
            .headers
            .iter()
            .filter(|d| {
                !r.headers
                    .iter()
                    .any(|h| h.name.v.eq_ignore_ascii_case(&d.name.v))
            })
            .collect();
        headers.extend(r.headers.iter());
        for h in &headers {
            let name = &h.name.v;
            let v = ident("value");
            stmts.push(match self.simple(&h.value, Enc::Raw) {
                Some(e) => quote! { req.header(#name, #e)?; },
                None => {
                    let build = self.assemble(&v, &h.value, Enc::Raw);
                    quote! { { #build req.header(#name, #v)?; } }
                }
            });
        }
        for q in &r.params {
            let name = &q.name.v;
            let v = ident("value");
            stmts.push(match self.simple(&q.value, Enc::Raw) {
                Some(e) => quote! { req.query(#name, #e); },
                None => {
                    let build = self.assemble(&v, &q.value, Enc::Raw);
                    quote! { { #build req.query(#name, #v); } }
                }
            });
        }
        if let Some(b) = &r.body {
            let has_ct = headers
                .iter()
                .any(|h| h.name.v.eq_ignore_ascii_case("content-type"));
            let (enc, ct) = match b.encoding {
                BodyEncoding::Json => (Enc::Json, "application/json"),
                BodyEncoding::Form => (Enc::Form, "application/x-www-form-urlencoded"),
            };
            if !has_ct {
                stmts.push(quote! { req.header("Content-Type", String::from(#ct))?; });
            }
            let body = ident("body");
            stmts.push(self.assemble(&body, &b.template, enc));
            stmts.push(quote! { req.body(#body); });
        }
        quote! {
            #(#stmts)*
            Ok(req)
        }
    }
}

fn all_fields(f: &Flow) -> Vec<&Field> {
    f.inputs
        .iter()
        .chain(f.steps.iter().flat_map(|s| s.prompt.iter()))
        .collect()
}

fn field_def(f: &Field) -> TokenStream {
    let (key, label, ty, req) = (&f.key.v, &f.label.v, f.field_type.as_str(), f.required);
    quote! { FieldDef { key: #key, label: #label, field_type: #ty, required: #req } }
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
];

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

fn flow_module(p: &Provider, f: &Flow, file: &str) -> TokenStream {
    let cx = FlowCx { flow: Some(f) };
    let fields = all_fields(f);
    let mut items = Vec::new();

    if !fields.is_empty() {
        let decls = fields.iter().map(|fd| {
            let id = field_ident(&fd.key.v);
            let d = doc(format!("`{}` ({}:{}).", fd.key.v, file, fd.span.start.line));
            let ty = if fd.field_type == FieldType::Password {
                quote! { Option<Secret> }
            } else {
                quote! { Option<String> }
            };
            quote! { #d pub #id: #ty }
        });
        let reads = fields.iter().map(|fd| {
            let id = field_ident(&fd.key.v);
            let k = &fd.key.v;
            match (fd.field_type, fd.transform) {
                (FieldType::Password, Some(Transform::Base64)) => {
                    quote! { #id: cx.input(#k).map(|v| Secret::new(base64(v))) }
                }
                (FieldType::Password, None) => quote! { #id: cx.input(#k).map(Secret::new) },
                (_, Some(Transform::Base64)) => quote! { #id: cx.input(#k).map(base64) },
                (_, None) => quote! { #id: cx.input(#k).map(str::to_owned) },
            }
        });
        let d = doc(format!(
            "Inputs of flow `{}`, and fields its steps prompt for; absent until sent.",
            f.id.v
        ));
        items.push(quote! {
            #d
            #[derive(Debug, Clone, Default)]
            pub struct Inputs { #(#decls,)* }
            impl Inputs {
                /// Reads the run's values, applying each field's transform.
                pub fn read(cx: &StepCx<'_>) -> Self {
                    Inputs { #(#reads,)* }
                }
            }
        });
    }

    let names = unique_names(f.steps.iter().map(|s| s.name.v.as_str()), "step");
    let mut step_defs = Vec::new();
    for (i, (s, name)) in f.steps.iter().zip(&names).enumerate() {
        let fn_name = ident(name);
        let d = doc(format!(
            "Step {i} `{}` ({}:{}): {} {}.",
            s.name.v,
            file,
            s.span.start.line,
            s.request.method.v.as_str(),
            template_text(&s.request.path)
        ));
        let body = cx.request_fn(p, &s.request);
        items.push(quote! {
            #d
            pub fn #fn_name(cx: &StepCx<'_>) -> Result<Outbound, StepError> { #body }
        });
        let mut extracts = Vec::new();
        for (j, e) in s.extract.iter().enumerate() {
            let stat = format_ident!("{}_{}", name.to_uppercase(), e.key.v.to_uppercase());
            let stat = if syn::parse_str::<Ident>(&stat.to_string()).is_ok() {
                stat
            } else {
                format_ident!("PATH_{}_{}", i, j)
            };
            let path = &e.path.v;
            let key = &e.key.v;
            let d = doc(format!(
                "`{key}` of step {i} ({}:{}).",
                file, e.key.span.start.line
            ));
            items.push(quote! { #d static #stat: JsonPath = JsonPath::new(#path); });
            extracts.push(quote! { ExtractDef { key: #key, path: &#stat } });
        }
        let step_name = &s.name.v;
        let status = match &s.success_status {
            Some(st) => {
                let v = st.v;
                quote! { Some(#v) }
            }
            None => quote! { None },
        };
        let prompt = s.prompt.iter().map(field_def);
        step_defs.push(quote! {
            StepDef {
                name: #step_name,
                build: #fn_name,
                success_status: #status,
                extract: &[#(#extracts),*],
                prompt: &[#(#prompt),*],
            }
        });
    }
    let (id, fname) = (&f.id.v, &f.name.v);
    let inputs = f.inputs.iter().map(field_def);
    let uses_session = uses_session(f);
    let d = doc(format!(
        "Flow `{}` ({}:{}).",
        f.id.v, file, f.span.start.line
    ));
    items.push(quote! {
        #d
        pub static FLOW: FlowDef = FlowDef {
            id: #id,
            name: #fname,
            inputs: &[#(#inputs),*],
            steps: &[#(#step_defs),*],
            uses_session: #uses_session,
        };
    });
    quote! { #(#items)* }
}

/// Does some step read a stored value that no earlier step of the flow extracts (a session
/// value, loaded from the user's provider session at run time).
fn uses_session(f: &Flow) -> bool {
    let mut extracted = HashSet::new();
    for s in &f.steps {
        let reads_session = crate::check::request_templates(&s.request)
            .flat_map(|t| t.vars())
            .any(|(v, _)| matches!(v, Var::Stored(k) if !extracted.contains(k.as_str())));
        if reads_session {
            return true;
        }
        extracted.extend(s.extract.iter().map(|e| e.key.v.as_str()));
    }
    false
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
    let mut mods = Vec::new();
    for (f, name) in p.flows.iter().zip(&names) {
        let m = ident(name);
        let body = flow_module(p, f, file);
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
            let body = FlowCx { flow: None }.request_fn(p, r);
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
    let header =
        format!(" @generated by otvi-codegen from {file}. Do not edit: change the YAML file.");
    let d = doc(format!(
        "Provider `{}`, \"{}\" ({}:{}).",
        p.id.v, p.name.v, file, p.id.span.start.line
    ));
    let tokens = quote! {
        #![doc = #header]
        #[allow(unused_imports)]
        use otvi_runtime::def::{ExtractDef, FieldDef, FlowDef, ProviderDef, Scope, StepDef};
        #[allow(unused_imports)]
        use otvi_runtime::request::{base64, need, push_form, push_json_str, push_path_segment, Method, Outbound, Secret, StepCx, StepError};
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
            source: #file,
        };

        #(#mods)*
    };
    format(tokens)
}

/// The crate root: one module per provider, and the registry the server serves.
///
/// Generated modules are marked `#[rustfmt::skip]` so `cargo fmt` leaves prettyplease's output
/// alone (the drift check compares it byte for byte); the root itself is written so that
/// rustfmt has nothing to change.
pub fn crate_root(modules: &[String]) -> String {
    let mut s =
        String::from("//! @generated by otvi-codegen from the provider files. Do not edit.\n\n");
    for m in modules {
        s.push_str(&format!("#[rustfmt::skip]\npub mod {m};\n"));
    }
    s.push_str("#[rustfmt::skip]\nmod registry;\n\npub use registry::PROVIDERS;\n");
    s
}

/// Every compiled provider, in file order.
pub fn registry(modules: &[String]) -> String {
    let refs = modules.iter().map(|m| {
        let id = ident(m);
        quote! { &super::#id::PROVIDER }
    });
    let tokens = quote! {
        #![doc = " @generated by otvi-codegen from the provider files. Do not edit."]
        /// Every compiled provider, in file order.
        pub static PROVIDERS: &[&otvi_runtime::def::ProviderDef] = &[#(#refs),*];
    };
    format(tokens)
}

fn format(tokens: TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        // Unreachable for checked input; emit the unformatted tokens so rustc names the problem.
        Err(_) => tokens.to_string(),
    }
}

/// Emits every provider of a clean check: `(file name, source)` pairs: one module per
/// provider, `registry.rs` and `lib.rs`. `files` gives each provider's YAML path as it should appear in comments.
pub fn emit_all(providers: &[(&str, &Provider)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut modules = Vec::new();
    for (file, p) in providers {
        let mut m = module_name(p);
        // `a-b` and `a_b` are distinct ids with one module name.
        while modules.contains(&m) || m == "registry" || m == "lib" {
            m.push('_');
        }
        out.push((format!("{m}.rs"), provider_module(p, file)));
        modules.push(m);
    }
    out.push(("registry.rs".into(), registry(&modules)));
    out.push(("lib.rs".into(), crate_root(&modules)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
