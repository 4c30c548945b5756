//! Request building: each template becomes the list of its pieces, literal text and typed
//! values, handed to the runtime function that encodes the values for where the template
//! stands (JSON string, form body, path segment, header or query value).

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

    /// `&[Lit(…), Val(…), …]`: the pieces of `t` in order, each value a `&str` expression. The
    /// function they are given to encodes the values for where the template stands; in a path,
    /// each value is also checked as a segment where it stands (`segment`), so the first problem
    /// in file order is the one reported.
    fn parts(&self, t: &Template, enc: Enc) -> TokenStream {
        let parts = t.pieces.iter().map(|p| match p {
            Piece::Lit(l) => quote! { Lit(#l) },
            Piece::Var(v, _) => {
                let val = self.value(v);
                match enc {
                    Enc::PathSegment => quote! { Val(segment(#val)?) },
                    Enc::Raw | Enc::Json | Enc::Form => quote! { Val(#val) },
                }
            }
        });
        quote! { &[#(#parts),*] }
    }

    /// A `&str` expression for a template standing unencoded (a header or query value): the
    /// literal, the one value, or the pieces joined.
    fn text(&self, t: &Template) -> TokenStream {
        if let Some(lit) = t.literal() {
            return quote! { #lit };
        }
        if let [Piece::Var(v, _)] = t.pieces.as_slice() {
            return self.value(v);
        }
        let parts = self.parts(t, Enc::Raw);
        quote! { &text(#parts) }
    }

    /// The body of a display field's render function: its `value` template, unencoded.
    pub(super) fn render_fn(&self, t: &Template) -> TokenStream {
        let read = t
            .vars()
            .any(|(v, _)| matches!(v, Var::Input(_)))
            .then(|| quote! { let input = Inputs::read(cx); });
        let stored = self.read_stored(std::iter::once(t));
        let value = match (t.literal(), t.pieces.as_slice()) {
            (Some(lit), _) => quote! { String::from(#lit) },
            (None, [Piece::Var(v, _)]) => {
                let val = self.value(v);
                quote! { String::from(#val) }
            }
            _ => {
                let parts = self.parts(t, Enc::Raw);
                quote! { text(#parts) }
            }
        };
        quote! {
            #read
            #stored
            Ok(#value)
        }
    }

    /// A `Json` expression for a value of a `json:` body. A string that is only an input's
    /// placeholder is left out when the input is optional and absent or empty, and sent as a
    /// number when the input is a `number`.
    fn json(&self, v: &JsonValue) -> TokenStream {
        match v {
            JsonValue::Literal(l, _) => quote! { Json::Raw(#l) },
            JsonValue::Object(fields, _) => {
                let fields = fields.iter().map(|(k, v)| {
                    let (k, v) = (&k.v, self.json(v));
                    quote! { (#k, #v) }
                });
                quote! { Json::Object(&[#(#fields),*]) }
            }
            JsonValue::Array(items, _) => {
                let items = items.iter().map(|v| self.json(v));
                quote! { Json::Array(&[#(#items),*]) }
            }
            JsonValue::Text(t) => {
                if let Some(lit) = t.literal() {
                    return quote! { Json::Str(#lit) };
                }
                let [Piece::Var(var, _)] = t.pieces.as_slice() else {
                    let parts = self.parts(t, Enc::Raw);
                    return quote! { Json::Text(#parts) };
                };
                let input = match var {
                    Var::Input(k) => self.field(k).map(|(fd, f)| (k, fd, f)),
                    _ => None,
                };
                match input {
                    Some((k, fd, f)) if fd.field_type == FieldType::Number => {
                        if fd.required {
                            quote! { Json::number(need(input.#f.as_deref(), #k)?, #k)? }
                        } else {
                            quote! { Json::optional_number(input.#f.as_deref(), #k)? }
                        }
                    }
                    Some((_, fd, f)) if !fd.required => {
                        if fd.field_type == FieldType::Password {
                            quote! { Json::optional(input.#f.as_ref().map(Secret::expose)) }
                        } else {
                            quote! { Json::optional(input.#f.as_deref()) }
                        }
                    }
                    _ => {
                        let val = self.value(var);
                        quote! { Json::Str(#val) }
                    }
                }
            }
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
        stmts.push(match (is_absolute, r.path.literal()) {
            (true, Some(lit)) => quote! { let #url = String::from(#lit); },
            (false, Some(lit)) => quote! { let #url = cx.url(#lit); },
            (true, None) => {
                let parts = self.parts(&r.path, Enc::PathSegment);
                quote! { let #url = path(#parts)?; }
            }
            (false, None) => {
                let parts = self.parts(&r.path, Enc::PathSegment);
                quote! { let #url = cx.url(&path(#parts)?); }
            }
        });
        let method = ident(r.method.v.as_str());
        stmts.push(quote! { let mut req = Outbound::new(Method::#method, #url); });

        for h in &headers {
            let name = &h.name.v;
            let value = self.text(&h.value);
            stmts.push(quote! { req.header(#name, #value)?; });
        }
        for q in &r.params {
            let name = &q.name.v;
            let value = self.text(&q.value);
            stmts.push(quote! { req.query(#name, #value); });
        }
        if let Some(b) = &r.body {
            let has_ct = headers
                .iter()
                .any(|h| h.name.v.eq_ignore_ascii_case("content-type"));
            let (ct, set) = match b {
                Body::Text {
                    encoding: BodyEncoding::Json,
                    template,
                } => {
                    let parts = self.parts(template, Enc::Json);
                    ("application/json", quote! { req.json_body(#parts); })
                }
                Body::Text {
                    encoding: BodyEncoding::Form,
                    template,
                } => {
                    let parts = self.parts(template, Enc::Form);
                    (
                        "application/x-www-form-urlencoded",
                        quote! { req.form_body(#parts); },
                    )
                }
                Body::Json(v) => {
                    let v = self.json(v);
                    ("application/json", quote! { req.json(&#v); })
                }
            };
            if !has_ct {
                stmts.push(quote! { req.header("Content-Type", #ct)?; });
            }
            stmts.push(set);
        }
        quote! {
            #(#stmts)*
            Ok(req)
        }
    }
}
