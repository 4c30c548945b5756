//! Request building: each template becomes statements that push literal pieces and typed
//! values, with the encoder chosen from where the value stands (JSON string, form body, path
//! segment, header or query value).

use super::{doc, ident, snake, Keys, Names};
use crate::model::*;
use proc_macro2::{Ident, TokenStream};
use quote::quote;

/// How a value is encoded where it stands.
#[derive(Clone, Copy)]
pub(super) enum Enc {
    Raw,
    Json,
    Form,
    PathSegment,
}

/// What request building needs to know about the flow a request belongs to: the fields it
/// collects and the name of each in its `Inputs` struct (none for logout).
pub(super) struct FlowCx<'a> {
    pub fields: Vec<(&'a Field, Ident)>,
    keys: &'a Keys,
}

impl<'a> FlowCx<'a> {
    pub fn new(flow: &'a Flow, keys: &'a Keys) -> Self {
        // snake_case, never a keyword, unique: `type` and `type_` get distinct names.
        let mut names = Names::new([]);
        let fields = flow
            .collected()
            .into_iter()
            .map(|f| (f, ident(&names.take(&snake(&f.key.v, "field")))))
            .collect();
        FlowCx { fields, keys }
    }
    pub fn logout(keys: &'a Keys) -> Self {
        FlowCx {
            fields: Vec::new(),
            keys,
        }
    }
    /// The constant that names stored value `k`: `keys::K`.
    pub fn key_const(&self, k: &str) -> TokenStream {
        self.keys.path(k)
    }
    fn field(&self, key: &str) -> Option<&(&'a Field, Ident)> {
        self.fields.iter().find(|(x, _)| x.key.v == key)
    }

    /// A `&str` expression for `v`.
    fn value(&self, v: &Var) -> TokenStream {
        match v {
            Var::Input(k) => {
                // Checked code names only collected fields.
                let Some((fd, f)) = self.field(k) else {
                    return quote! { need(None, #k)? };
                };
                match fd {
                    fd if fd.field_type == FieldType::Password && fd.required => {
                        quote! { need(input.#f.as_ref().map(Secret::expose), #k)? }
                    }
                    fd if fd.field_type == FieldType::Password => {
                        quote! { input.#f.as_ref().map(Secret::expose).unwrap_or_default() }
                    }
                    fd if !fd.required => quote! { input.#f.as_deref().unwrap_or_default() },
                    _ => quote! { need(input.#f.as_deref(), #k)? },
                }
            }
            Var::Stored(k) => match self.keys.get(k) {
                Some(key) if key.sensitive.is_some() => {
                    let f = &key.field;
                    quote! { stored.#f.expose() }
                }
                Some(key) => {
                    let f = &key.field;
                    quote! { stored.#f }
                }
                // Checked code names only kept values.
                None => quote! { "" },
            },
            Var::Uuid => quote! { cx.uuid() },
            Var::UtcNow => quote! { &cx.utcnow() },
            Var::UtcDate => quote! { &cx.utcdate() },
            Var::RunId => quote! { cx.run_id() },
            Var::Secret(k) => quote! { cx.secret(#k)? },
        }
    }

    /// `struct Stored` and `let stored = Stored { … };`: the stored values `templates` name, in
    /// order of first use, each read by its key's constant; nothing when they name none.
    fn read_stored<'t>(&self, templates: impl Iterator<Item = &'t Template>) -> TokenStream {
        let mut used: Vec<&str> = Vec::new();
        for (v, _) in templates.flat_map(|t| t.vars()) {
            if let Var::Stored(k) = v {
                if self.keys.get(k).is_some() && !used.contains(&k.as_str()) {
                    used.push(k);
                }
            }
        }
        if used.is_empty() {
            return TokenStream::new();
        }
        let keys: Vec<_> = used.iter().filter_map(|k| self.keys.get(k)).collect();
        let borrowed = keys.iter().any(|k| k.sensitive.is_none());
        let decls = used.iter().zip(&keys).map(|(k, key)| {
            let f = &key.field;
            let d = doc(format!("`{{{{stored.{k}}}}}`."));
            match key.sensitive {
                Some(_) => quote! { #d #f: Secret },
                None => quote! { #d #f: &'a str },
            }
        });
        let reads = keys.iter().map(|key| {
            let (f, c) = (&key.field, &key.konst);
            match key.sensitive {
                Some(_) => quote! { #f: Secret::new(cx.stored(keys::#c)?) },
                None => quote! { #f: cx.stored(keys::#c)? },
            }
        });
        let lifetime = borrowed.then(|| quote! { <'a> });
        quote! {
            /// The stored values this function uses.
            struct Stored #lifetime { #(#decls,)* }
            let stored = Stored { #(#reads,)* };
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
    pub(super) fn assemble(&self, target: &Ident, t: &Template, enc: Enc) -> TokenStream {
        if let Some(e) = self.simple(t, enc) {
            return quote! { let #target = #e; };
        }
        let mut stmts = Vec::new();
        for p in &t.pieces {
            stmts.push(match p {
                Piece::Lit(l) => match l.chars().collect::<Vec<_>>()[..] {
                    [c] => quote! { #target.push(#c); },
                    _ => quote! { #target.push_str(#l); },
                },
                Piece::Var(v, _) => {
                    let val = self.value(v);
                    match enc {
                        Enc::Raw => quote! { #target.push_str(#val); },
                        Enc::Json => quote! { push_json_str(&mut #target, #val); },
                        Enc::Form => quote! { push_form(&mut #target, #val); },
                        Enc::PathSegment => quote! { push_path_segment(&mut #target, #val)?; },
                    }
                }
            });
        }
        quote! {
            let mut #target = String::new();
            #(#stmts)*
        }
    }

    /// The body of a display field's render function: its `value` template, unencoded.
    pub(super) fn render_fn(&self, t: &Template) -> TokenStream {
        let read = t
            .vars()
            .any(|(v, _)| matches!(v, Var::Input(_)))
            .then(|| quote! { let input = Inputs::read(cx); });
        let stored = self.read_stored(std::iter::once(t));
        let value = ident("value");
        let build = self.assemble(&value, t, Enc::Raw);
        quote! {
            #read
            #stored
            #build
            Ok(#value)
        }
    }

    fn uses_inputs(&self, r: &Request) -> bool {
        crate::check::request_templates(r)
            .flat_map(|t| t.vars())
            .any(|(v, _)| matches!(v, Var::Input(_)))
    }

    /// The body of a function `fn(cx: &StepCx<'_>) -> Result<Outbound, StepError>`.
    pub(super) fn request_fn(&self, p: &Provider, r: &Request) -> TokenStream {
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
        let mut stmts = Vec::new();
        if !self.fields.is_empty() && self.uses_inputs(r) {
            stmts.push(quote! { let input = Inputs::read(cx); });
        }
        stmts.push(self.read_stored(
            crate::check::request_templates(r).chain(headers.iter().map(|h| &h.value)),
        ));
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
