//! One flow's module: the inputs struct, and per step its request function, the JSONPaths it
//! reads, one documented static per outcome, and a function that picks the outcome a response
//! selects — conditions written out as Rust, in file order, so a reviewer reads them top to
//! bottom.

use super::request::FlowCx;
use super::{doc, ident, snake, template_text, unique_names, Names};
use crate::graph::{self, Target};
use crate::model::*;
use proc_macro2::{Literal, TokenStream};
use quote::quote;
use std::collections::BTreeSet;

/// The module of flow `f` of provider `p`, from `file`.
pub(super) fn module(p: &Provider, f: &Flow, file: &str, keys: &super::Keys) -> TokenStream {
    let cx = FlowCx::new(f, keys);
    let mut items = Vec::new();
    if !cx.fields.is_empty() {
        items.push(inputs_struct(f, &cx.fields, file));
    }

    let step_names = unique_names(
        f.steps
            .iter()
            .map(|s| s.id.as_ref().map_or(s.name.v.as_str(), |id| id.v.as_str())),
        "step",
    );
    let mut names = Names::new(step_names.iter().cloned());
    let mut step_defs = Vec::new();
    for (i, (s, name)) in f.steps.iter().zip(&step_names).enumerate() {
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

        let mut step = StepEmit {
            f,
            i,
            s,
            name,
            file,
            names: &mut names,
            paths: Vec::new(),
            items: Vec::new(),
        };
        let outcomes: Vec<_> = s
            .outcomes
            .iter()
            .enumerate()
            .map(|(j, o)| step.outcome(j, o, &cx))
            .collect();
        let decide = step.decide(&outcomes);
        let outcome_refs = outcomes.iter().map(|(id, _)| quote! { &#id });
        let error_message = match &s.error_message {
            Some(m) => {
                let p = step.path(m);
                quote! { Some(&#p) }
            }
            None => quote! { None },
        };
        let paths = std::mem::take(&mut step.paths);
        let rest = std::mem::take(&mut step.items);
        items.extend(paths.into_iter().map(|(_, _, tokens)| tokens));
        items.extend(rest);
        let decide_name = &decide.0;
        items.push(decide.1);

        let id = s.id.as_ref().map_or(i.to_string(), |id| id.v.clone());
        let step_name = &s.name.v;
        // A step that tests a 3xx status wants to see the redirect, not follow it.
        let follow = !s.outcomes.iter().flat_map(|o| &o.when).any(|c| {
            matches!(c, Cond::Status(set) if matches!(&set.v, StatusSet::AnyOf(v) if v.iter().any(|s| (300..400).contains(s))))
        });
        let success_form = s.success_form;
        step_defs.push(quote! {
            StepDef {
                id: #id,
                name: #step_name,
                build: #fn_name,
                decide: #decide_name,
                outcomes: &[#(#outcome_refs),*],
                error_message: #error_message,
                follow_redirects: #follow,
                success_form: #success_form,
            }
        });
    }

    let (id, fname) = (&f.id.v, &f.name.v);
    let inputs = f.inputs.iter().map(|x| field_def(x, None, Some(&cx)));
    let remember = cx
        .fields
        .iter()
        .filter(|(x, _)| x.field_type != FieldType::Password)
        .map(|(x, _)| x.key.v.as_str());
    let uses_session = uses_session(f);
    let kept_for_run: BTreeSet<&str> = f
        .steps
        .iter()
        .flat_map(Step::extracts)
        .filter(|e| e.for_run())
        .map(|e| e.key.v.as_str())
        .collect();
    let kept_for_run = kept_for_run.iter().map(|k| cx.key_const(k));
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
            remember: &[#(#remember),*],
            uses_session: #uses_session,
            kept_for_run: &[#(#kept_for_run),*],
        };
    });
    quote! { #(#items)* }
}

/// `pub struct Inputs`: every field the flow collects, password fields wrapped in `Secret`.
fn inputs_struct(f: &Flow, fields: &[(&Field, proc_macro2::Ident)], file: &str) -> TokenStream {
    let decls = fields.iter().map(|(fd, id)| {
        let d = doc(format!("`{}` ({}:{}).", fd.key.v, file, fd.span.start.line));
        let ty = if fd.field_type == FieldType::Password {
            quote! { Option<Secret> }
        } else {
            quote! { Option<String> }
        };
        quote! { #d pub #id: #ty }
    });
    let reads = fields.iter().map(|(fd, id)| {
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
    quote! {
        #d
        #[derive(Debug, Clone, Default)]
        pub struct Inputs { #(#decls,)* }
        impl Inputs {
            /// Reads the run's values, applying each field's transform.
            pub fn read(cx: &StepCx<'_>) -> Self {
                Inputs { #(#reads,)* }
            }
        }
    }
}

/// A `FieldDef`; `render` names the function that renders a display field's value, `cx` names
/// the stored lists a `choice` field offers.
fn field_def(
    f: &Field,
    render: Option<&proc_macro2::Ident>,
    cx: Option<&FlowCx<'_>>,
) -> TokenStream {
    let (key, label, req) = (&f.key.v, &f.label.v, f.required);
    let ty = match f.field_type {
        FieldType::Text => quote! { FieldType::Text },
        FieldType::Email => quote! { FieldType::Email },
        FieldType::Password => quote! { FieldType::Password },
        FieldType::Tel => quote! { FieldType::Tel },
        FieldType::Number => quote! { FieldType::Number },
        FieldType::Choice => quote! { FieldType::Choice },
        FieldType::Link => quote! { FieldType::Link },
        FieldType::Info => quote! { FieldType::Info },
    };
    let value = match render {
        Some(r) => quote! { Some(#r) },
        None => quote! { None },
    };
    let key_of = |t: &Template| {
        let k = t.only_stored().unwrap_or_default();
        cx.map_or_else(|| quote! { #k }, |cx| cx.key_const(k))
    };
    let options = match &f.options {
        Some(o) => {
            let values = key_of(&o.values);
            let labels = match &o.labels {
                Some(l) => {
                    let l = key_of(l);
                    quote! { Some(#l) }
                }
                None => quote! { None },
            };
            quote! { Some(Choices { values: #values, labels: #labels }) }
        }
        None => quote! { None },
    };
    quote! { FieldDef { key: #key, label: #label, field_type: #ty, required: #req, value: #value, options: #options } }
}

/// Emission of one step's outcomes.
struct StepEmit<'a, 'n> {
    f: &'a Flow,
    i: usize,
    s: &'a Step,
    /// The step's function name; its items are named after it.
    name: &'a str,
    file: &'a str,
    names: &'n mut Names,
    /// The JSONPaths the step reads: (path, static name, item), one static per path.
    paths: Vec<(String, proc_macro2::Ident, TokenStream)>,
    items: Vec<TokenStream>,
}

impl StepEmit<'_, '_> {
    /// The static holding `path`, declared on first use.
    fn path(&mut self, path: &S<String>) -> proc_macro2::Ident {
        if let Some((_, id, _)) = self.paths.iter().find(|(p, _, _)| *p == path.v) {
            return id.clone();
        }
        let leaf = path
            .v
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .rfind(|t| !t.is_empty() && !t.starts_with(|c: char| c.is_ascii_digit()))
            .unwrap_or("root");
        let id = ident(
            &self
                .names
                .take(&format!("{}_{}", self.name, leaf).to_uppercase()),
        );
        let d = doc(format!(
            "`{}`, read by step {} ({}:{}).",
            path.v.replace('`', "'"),
            self.i,
            self.file,
            path.span.start.line
        ));
        let src = &path.v;
        let item = quote! { #d static #id: JsonPath = JsonPath::new(#src); };
        self.paths.push((path.v.clone(), id.clone(), item));
        id
    }

    /// The static describing outcome `j`, and its condition as a Rust expression
    /// (`None`: always).
    fn outcome(
        &mut self,
        j: usize,
        o: &Outcome,
        cx: &FlowCx<'_>,
    ) -> (proc_macro2::Ident, Option<TokenStream>) {
        let conds: Vec<TokenStream> = o.when.iter().map(|c| self.condition(c)).collect();
        let cond = (!conds.is_empty()).then(|| quote! { #(#conds)&&* });

        let extracts: Vec<TokenStream> = o.extract.iter().map(|e| self.extract(e, cx)).collect();
        let mut prompt = Vec::new();
        for fd in o.prompt.iter().flat_map(|p| p.fields.iter()) {
            let render = fd.value.as_ref().map(|t| {
                let r = ident(
                    &self
                        .names
                        .take(&snake(&format!("{}_{}", self.name, fd.key.v), "value")),
                );
                let d = doc(format!(
                    "The value of display field `{}` ({}:{}), rendered after the step's extraction.",
                    fd.key.v, self.file, fd.span.start.line
                ));
                let body = cx.render_fn(t);
                self.items.push(quote! {
                    #d
                    fn #r(cx: &StepCx<'_>) -> Result<String, StepError> { #body }
                });
                r
            });
            prompt.push(field_def(fd, render.as_ref(), Some(cx)));
        }
        let target = graph::target(self.f, self.i, o).unwrap_or(Target::Fail);
        let then = match (&o.then, target) {
            (Then::Fail(fail), _) => {
                let from = match &fail.from {
                    Some(p) => {
                        let id = self.path(p);
                        quote! { Some(&#id) }
                    }
                    None => quote! { None },
                };
                let message = opt_str(fail.message.as_ref().map(|m| m.v.as_str()));
                let clear = fail.clear_session;
                quote! { Then::Fail(FailDef { from: #from, message: #message, clear_session: #clear }) }
            }
            (_, Target::Step(t)) => {
                let t = Literal::usize_unsuffixed(t);
                quote! { Then::Step(#t) }
            }
            _ => quote! { Then::Complete },
        };
        let message = opt_str(
            o.message
                .as_ref()
                .and_then(|m| m.text.as_ref())
                .map(|t| t.v.as_str()),
        );
        let message_from = match o.message.as_ref().and_then(|m| m.from.as_ref()) {
            Some(p) => {
                let id = self.path(p);
                quote! { Some(&#id) }
            }
            None => quote! { None },
        };
        let at = format!("{}:{}", self.file, o.span.start.line);
        let id = ident(
            &self
                .names
                .take(&format!("{}_{j}", self.name).to_uppercase()),
        );
        let d = doc(format!(
            "Step {} outcome {j} ({at}): {}.",
            self.i,
            describe(self.f, o, target)
        ));
        self.items.push(quote! {
            #d
            static #id: OutcomeDef = OutcomeDef {
                extract: &[#(#extracts),*],
                prompt: &[#(#prompt),*],
                then: #then,
                message: #message,
                message_from: #message_from,
                at: #at,
            };
        });
        (id, cond)
    }

    fn condition(&mut self, c: &Cond) -> TokenStream {
        match c {
            Cond::Status(s) => match &s.v {
                StatusSet::Success => quote! { (200..300).contains(&r.status) },
                StatusSet::AnyOf(v) if v.len() == 1 => {
                    let code = Literal::u16_unsuffixed(v[0]);
                    quote! { r.status == #code }
                }
                StatusSet::AnyOf(v) => {
                    let codes = v.iter().map(|c| Literal::u16_unsuffixed(*c));
                    quote! { matches!(r.status, #(#codes)|*) }
                }
            },
            Cond::Json { path, expected } => {
                let p = self.path(path);
                let e = match &expected.v {
                    Scalar::Str(s) => quote! { Expect::Str(#s) },
                    Scalar::Int(i) => {
                        let i = Literal::i64_unsuffixed(*i);
                        quote! { Expect::Int(#i) }
                    }
                    Scalar::Float(f) => {
                        let f = Literal::f64_unsuffixed(*f);
                        quote! { Expect::Float(#f) }
                    }
                    Scalar::Bool(b) => quote! { Expect::Bool(#b) },
                    Scalar::Null => quote! { Expect::Null },
                };
                quote! { r.is(&#p, #e) }
            }
        }
    }

    fn extract(&mut self, e: &Extract, cx: &FlowCx<'_>) -> TokenStream {
        let source = match &e.source {
            Source::Path { path, all } => {
                let p = self.path(path);
                if *all {
                    quote! { Source::All(&#p) }
                } else {
                    quote! { Source::Path(&#p) }
                }
            }
            Source::Header(h) => {
                let h = &h.v;
                quote! { Source::Header(#h) }
            }
            Source::Cookie(c) => {
                let c = &c.v;
                quote! { Source::Cookie(#c) }
            }
            Source::Status => quote! { Source::Status },
        };
        let key = cx.key_const(&e.key.v);
        let optional = e.optional;
        quote! { ExtractDef { key: #key, source: #source, optional: #optional } }
    }

    /// The function that picks the outcome of a response: its name and item.
    fn decide(
        &mut self,
        outcomes: &[(proc_macro2::Ident, Option<TokenStream>)],
    ) -> (proc_macro2::Ident, TokenStream) {
        let name = ident(&self.names.take(&format!("{}_outcome", self.name)));
        let mut body = Vec::new();
        let mut tail = quote! { None };
        for (id, cond) in outcomes {
            match cond {
                Some(c) => body.push(quote! { if #c { return Some(&#id); } }),
                // Unconditional: the last outcome (the checks reject anything after it).
                None => {
                    tail = quote! { Some(&#id) };
                    break;
                }
            }
        }
        let d = doc(format!(
            "The outcome of step {} `{}` that a response selects: the first, in file order, whose conditions hold; `None` fails the step.",
            self.i, self.s.name.v
        ));
        let item = quote! {
            #d
            pub fn #name(r: &Reply) -> Option<&'static OutcomeDef> {
                #(#body)*
                #tail
            }
        };
        (name, item)
    }
}

fn opt_str(s: Option<&str>) -> TokenStream {
    match s {
        Some(s) => quote! { Some(#s) },
        None => quote! { None },
    }
}

/// An outcome in words, for its doc comment: when it applies, what it keeps and asks, where
/// it leads.
fn describe(f: &Flow, o: &Outcome, target: Target) -> String {
    let mut parts = Vec::new();
    let conds: Vec<String> = o
        .when
        .iter()
        .map(|c| match c {
            Cond::Status(s) => match &s.v {
                StatusSet::Success => "the status is 2xx".to_string(),
                StatusSet::AnyOf(v) => {
                    let v: Vec<String> = v.iter().map(u16::to_string).collect();
                    format!("the status is {}", v.join(" or "))
                }
            },
            Cond::Json { path, expected } => {
                format!("`{}` is {}", path.v.replace('`', "'"), expected.v.display())
            }
        })
        .collect();
    parts.push(if conds.is_empty() {
        "otherwise".to_string()
    } else {
        format!("when {}", conds.join(" and "))
    });
    if !o.extract.is_empty() {
        let keys: Vec<String> = o
            .extract
            .iter()
            .map(|e| match e.for_run() {
                true => format!("`{}` (for this run only)", e.key.v),
                false => format!("`{}`", e.key.v),
            })
            .collect();
        parts.push(format!("keeps {}", keys.join(", ")));
    }
    if let Some(p) = &o.prompt {
        let keys: Vec<String> = p.fields.iter().map(|x| format!("`{}`", x.key.v)).collect();
        parts.push(format!("asks for {}", keys.join(", ")));
    }
    parts.push(match (target, &o.then) {
        (_, Then::Fail(fail)) => {
            let mut s = match (&fail.from, &fail.message) {
                (Some(p), _) => format!("fails with the provider's message at `{}`", p.v),
                (None, Some(m)) => format!("fails: {:?}", m.v),
                (None, None) => "fails".into(),
            };
            if fail.clear_session {
                s.push_str(" and deletes the session");
            }
            s
        }
        (Target::Step(t), _) => format!("then step {t} `{}`", f.steps[t].name.v),
        _ => "completes the run".into(),
    });
    parts.join("; ")
}

/// Does some step read a stored value that not every path into it extracts first (a session
/// value, loaded from the user's provider session at run time).
fn uses_session(f: &Flow) -> bool {
    let edges = graph::edges(f);
    let defined = graph::defined(f, &edges);
    f.steps.iter().zip(&defined).any(|(s, d)| {
        let Some(d) = d else { return false };
        let stored_reads = |t: &Template, extra: &BTreeSet<&str>| {
            t.vars().any(|(v, _)| {
                matches!(v, Var::Stored(k) if !d.stored.contains(k) && !extra.contains(k.as_str()))
            })
        };
        let none = BTreeSet::new();
        crate::check::request_templates(&s.request).any(|t| stored_reads(t, &none))
            || s.outcomes.iter().any(|o| {
                let own: BTreeSet<&str> = o.extract.iter().map(|e| e.key.v.as_str()).collect();
                o.prompt
                    .iter()
                    .flat_map(|p| p.fields.iter())
                    .flat_map(|x| {
                        x.value
                            .iter()
                            .chain(x.options.iter().flat_map(Options::templates))
                    })
                    .any(|t| stored_reads(t, &own))
            })
    })
}
