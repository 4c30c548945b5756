//! `otvi-codegen lsp`: a language server for provider files, over stdio.
//!
//! Every open file is checked by the compiler itself (`check_draft`) on each edit, from the
//! editor's text with the file's directory as the base of `file:` samples, and its diagnostics
//! are published as the compiler reports them (severity, code, message, help). Hovers say what
//! a key means (`keys`, from the language reference) and what a placeholder names and where its
//! value comes from (`names`); completion offers the `{{input.…}}`, `{{stored.…}}` and
//! `{{secret.…}}` names the checks accept where the cursor stands; go-to-definition leads from
//! a placeholder to the extracts, fields or secret it names. A file with errors is answered
//! from the model as far as the compiler built it, or from the last text that had one.
//!
//! Editors attach a server by language, so it also sees YAML files that are not provider
//! files (a `docker-compose.yml`): a file whose top level has none of the provider language's
//! keys is left alone, with no diagnostics and no answers.
//!
//! Synchronous: `lsp-server` reads and writes the framed JSON-RPC messages on its own threads;
//! requests are answered in order on this one.

mod keys;
mod names;
mod text;

use crate::check;
use crate::diag::{self, FileReport, Pos, Severity, Span};
use crate::model::Provider;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, DidSaveTextDocument, Exit,
    Notification as _, PublishDiagnostics,
};
use lsp_types::request::{Completion, GotoDefinition, HoverRequest, Request as _, Shutdown};
use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionOptions, CompletionParams, CompletionResponse,
    CompletionTextEdit, Diagnostic, DiagnosticSeverity, GotoDefinitionParams,
    GotoDefinitionResponse, Hover, HoverContents, HoverParams, HoverProviderCapability,
    InitializeResult, Location, MarkupContent, MarkupKind, NumberOrString, OneOf, Position,
    PositionEncodingKind, PublishDiagnosticsParams, Range, SaveOptions, ServerCapabilities,
    ServerInfo, TextDocumentContentChangeEvent, TextDocumentPositionParams,
    TextDocumentSyncCapability, TextDocumentSyncKind, TextDocumentSyncOptions,
    TextDocumentSyncSaveOptions, TextEdit, Uri,
};
use serde_json::Value;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;
use text::LineIndex;

/// Serves the protocol on stdin and stdout until the client says `exit`: 0 after a
/// `shutdown`, 1 without one (or when the client goes away), as the protocol asks.
pub fn run_stdio() -> ExitCode {
    let (conn, io) = Connection::stdio();
    let (code, exited) = match serve(&conn) {
        Ok(code) => (code, true),
        Err(e) => {
            eprintln!("otvi-codegen lsp: {e}");
            (1, false)
        }
    };
    drop(conn);
    // After `exit` the reader has stopped: wait until every answer is written. Otherwise it
    // may be blocked reading a client that is gone; the process ends it.
    if exited {
        if let Err(e) = io.join() {
            eprintln!("otvi-codegen lsp: {e}");
        }
    }
    ExitCode::from(code)
}

/// What the server says it does.
fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(PositionEncodingKind::UTF16),
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::FULL),
                save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions {
                    include_text: Some(false),
                })),
                ..TextDocumentSyncOptions::default()
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".into(), "{".into()]),
            ..CompletionOptions::default()
        }),
        definition_provider: Some(OneOf::Left(true)),
        ..ServerCapabilities::default()
    }
}

/// The handshake, then every message until `exit`; returns the exit code.
fn serve(conn: &Connection) -> Result<u8, String> {
    let (id, _params) = conn.initialize_start().map_err(|e| e.to_string())?;
    let result = InitializeResult {
        capabilities: capabilities(),
        server_info: Some(ServerInfo {
            name: "otvi-codegen".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
        }),
    };
    let result = serde_json::to_value(result).map_err(|e| e.to_string())?;
    conn.sender
        .send(Response::new_ok(id, result).into())
        .map_err(|e| e.to_string())?;
    let mut server = Server {
        conn,
        docs: HashMap::new(),
        shut_down: false,
    };
    for msg in &conn.receiver {
        match msg {
            Message::Request(req) => server.request(req),
            Message::Notification(n) if n.method == Exit::METHOD => {
                return Ok(if server.shut_down { 0 } else { 1 })
            }
            Message::Notification(n) => server.notification(n),
            // The server sends no requests, so expects no responses.
            Message::Response(_) => {}
        }
    }
    Err("the client closed the connection without `exit`".into())
}

/// An open file.
struct Document {
    version: i32,
    text: String,
    lines: LineIndex,
    /// The name diagnostics use, and the directory `file:` samples are read from.
    name: String,
    dir: Option<PathBuf>,
    report: FileReport,
    /// This text's model as far as the compiler built it.
    model: Option<Provider>,
    /// The model of the last earlier text that had one: answers while this text's YAML
    /// cannot be read (an unclosed quote as it is typed).
    earlier: Option<Provider>,
    /// The text is a provider file (`is_provider_file`); otherwise it is not checked.
    provider_file: bool,
}

impl Document {
    fn new(uri: &Uri, version: i32, text: String) -> Self {
        let path = file_path(uri);
        let name = path
            .as_ref()
            .map_or_else(|| uri.as_str().to_string(), |p| p.display().to_string());
        let dir = path.and_then(|p| p.parent().map(PathBuf::from));
        let mut doc = Document {
            version,
            lines: LineIndex::new(""),
            text: String::new(),
            name,
            dir,
            report: FileReport {
                path: String::new(),
                source: String::new(),
                diagnostics: Vec::new(),
            },
            model: None,
            earlier: None,
            provider_file: false,
        };
        doc.set_text(text);
        doc
    }

    /// Takes `text` as the document's content and checks it.
    fn set_text(&mut self, text: String) {
        self.lines = LineIndex::new(&text);
        self.text = text;
        self.check();
    }

    /// Checks the current text (again: a `file:` sample may have changed on disk).
    fn check(&mut self) {
        self.provider_file = is_provider_file(&self.text);
        if !self.provider_file {
            self.report.diagnostics.clear();
            self.model = None;
            self.earlier = None;
            return;
        }
        let draft = catch_unwind(AssertUnwindSafe(|| {
            crate::check_draft(
                &self.name,
                &self.text,
                self.dir.as_deref(),
                crate::Options::default(),
            )
        }));
        let draft = draft.unwrap_or_else(|_| crate::Draft {
            report: FileReport {
                path: self.name.clone(),
                source: String::new(),
                diagnostics: vec![diag::Diagnostic::error(
                    "internal",
                    Span::point(Pos { line: 1, col: 1 }),
                    "the compiler failed on this text; please report it",
                )],
            },
            model: None,
        });
        self.report = draft.report;
        if self.model.is_some() {
            self.earlier = self.model.take();
        }
        self.model = draft.model;
    }

    /// Applies the changes of a `didChange`: whole texts, or ranges from clients that send
    /// them anyway.
    fn apply(&mut self, changes: Vec<TextDocumentContentChangeEvent>) {
        let mut text = std::mem::take(&mut self.text);
        for c in changes {
            match c.range {
                None => text = c.text,
                Some(r) => {
                    let lines = LineIndex::new(&text);
                    let start = lines.offset(&text, r.start);
                    let end = lines.offset(&text, r.end).max(start);
                    text.replace_range(start..end, &c.text);
                }
            }
        }
        self.set_text(text);
    }

    fn range(&self, span: Span) -> Range {
        let start = self.lines.to_lsp(&self.text, span.start);
        let end = self.lines.to_lsp(&self.text, span.end.max(span.start));
        Range::new(start, end)
    }

    /// The position and the text of its line.
    fn at(&self, p: Position) -> (Pos, &str) {
        let pos = self.lines.to_pos(&self.text, p);
        (pos, self.lines.line(&self.text, pos.line - 1))
    }

    /// The range of characters `start..end` (0-based) of line `line` (1-based).
    fn line_range(&self, line: usize, start: usize, end: usize) -> Range {
        let pos = |c: usize| Pos { line, col: c + 1 };
        self.range(Span::new(pos(start), pos(end)))
    }

    /// The model that places `pos` (this text's, else the earlier one), and the place.
    fn located(&self, pos: Pos) -> Option<(&Provider, Option<check::At>)> {
        let models = [self.model.as_ref(), self.earlier.as_ref()];
        for m in models.iter().flatten() {
            if let Some(at) = names::place(m, pos) {
                return Some((m, Some(at)));
            }
        }
        models.into_iter().flatten().next().map(|m| (m, None))
    }

    fn diagnostics(&self) -> Vec<Diagnostic> {
        self.report
            .diagnostics
            .iter()
            .map(|d| {
                // As rust-analyzer shows rustc's help without a span: on its own line.
                let message = match &d.help {
                    Some(h) => format!("{}\nhelp: {h}", d.message),
                    None => d.message.clone(),
                };
                Diagnostic {
                    range: self.range(d.span),
                    severity: Some(match d.severity {
                        Severity::Error => DiagnosticSeverity::ERROR,
                        Severity::Warning => DiagnosticSeverity::WARNING,
                    }),
                    code: Some(NumberOrString::String(d.code.into())),
                    source: Some("otvi-codegen".into()),
                    message,
                    ..Diagnostic::default()
                }
            })
            .collect()
    }
}

/// Whether `text` is a provider file: its top level has one of the language's own keys
/// (`provider`, `defaults`, `auth`, `secrets`). Read as YAML when it parses, else line by line
/// (a provider file with a syntax error is still one); an empty file is not one yet.
pub fn is_provider_file(text: &str) -> bool {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let ours = |k: &str| crate::lower::keys::TOP.contains(&k);
    if let (Some(root), diags) = crate::yaml::parse(text) {
        if diags.is_empty() {
            return match &root.kind {
                crate::yaml::Kind::Map(entries) => {
                    entries.iter().any(|(k, _)| k.as_str().is_some_and(ours))
                }
                _ => false,
            };
        }
    }
    text.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, _)| {
            let k = k.trim_end().trim_matches(['"', '\'']);
            !l.starts_with([' ', '\t', '#', '-']) && ours(k)
        })
    })
}

/// The local path of a `file:` URI.
fn file_path(uri: &Uri) -> Option<PathBuf> {
    url::Url::parse(uri.as_str()).ok()?.to_file_path().ok()
}

struct Server<'c> {
    conn: &'c Connection,
    docs: HashMap<Uri, Document>,
    shut_down: bool,
}

/// A failed request: its error code and message.
type Failure = (ErrorCode, String);

impl Server<'_> {
    fn send(&self, msg: Message) {
        // The writer is gone only when the client is: the loop ends on its own then.
        let _ = self.conn.sender.send(msg);
    }

    fn request(&mut self, req: Request) {
        let id = req.id.clone();
        let result = if self.shut_down {
            Err((
                ErrorCode::InvalidRequest,
                "the server is shutting down".into(),
            ))
        } else {
            catch_unwind(AssertUnwindSafe(|| self.answer(req))).unwrap_or_else(|_| {
                Err((
                    ErrorCode::InternalError,
                    "the request failed inside the server".into(),
                ))
            })
        };
        let response = match result {
            Ok(v) => Response::new_ok(id, v),
            Err((code, message)) => Response::new_err(id, code as i32, message),
        };
        self.send(response.into());
    }

    fn answer(&mut self, req: Request) -> Result<Value, Failure> {
        match req.method.as_str() {
            Shutdown::METHOD => {
                self.shut_down = true;
                Ok(Value::Null)
            }
            HoverRequest::METHOD => {
                let p: HoverParams = params(req.params)?;
                reply(self.hover(&p.text_document_position_params))
            }
            Completion::METHOD => {
                let p: CompletionParams = params(req.params)?;
                reply(self.completion(&p.text_document_position))
            }
            GotoDefinition::METHOD => {
                let p: GotoDefinitionParams = params(req.params)?;
                reply(self.definition(&p.text_document_position_params))
            }
            "initialize" => Err((
                ErrorCode::InvalidRequest,
                "the server is already initialized".into(),
            )),
            m => Err((ErrorCode::MethodNotFound, format!("unknown method `{m}`"))),
        }
    }

    fn notification(&mut self, n: Notification) {
        let _ = catch_unwind(AssertUnwindSafe(|| self.notified(n)));
    }

    fn notified(&mut self, n: Notification) {
        match n.method.as_str() {
            DidOpenTextDocument::METHOD => {
                let Ok(p) = params::<lsp_types::DidOpenTextDocumentParams>(n.params) else {
                    return;
                };
                let d = p.text_document;
                let doc = Document::new(&d.uri, d.version, d.text);
                self.docs.insert(d.uri.clone(), doc);
                self.publish(&d.uri);
            }
            DidChangeTextDocument::METHOD => {
                let Ok(p) = params::<lsp_types::DidChangeTextDocumentParams>(n.params) else {
                    return;
                };
                let uri = p.text_document.uri;
                if let Some(doc) = self.docs.get_mut(&uri) {
                    doc.version = p.text_document.version;
                    doc.apply(p.content_changes);
                    self.publish(&uri);
                }
            }
            DidSaveTextDocument::METHOD => {
                let Ok(p) = params::<lsp_types::DidSaveTextDocumentParams>(n.params) else {
                    return;
                };
                let uri = p.text_document.uri;
                if let Some(doc) = self.docs.get_mut(&uri) {
                    match p.text {
                        Some(text) => doc.set_text(text),
                        None => doc.check(),
                    }
                    self.publish(&uri);
                }
            }
            DidCloseTextDocument::METHOD => {
                let Ok(p) = params::<lsp_types::DidCloseTextDocumentParams>(n.params) else {
                    return;
                };
                let uri = p.text_document.uri;
                self.docs.remove(&uri);
                self.notify_diagnostics(uri, Vec::new(), None);
            }
            // `initialized`, `$/cancelRequest` (answers are never late), configuration: nothing
            // to do.
            _ => {}
        }
    }

    fn publish(&self, uri: &Uri) {
        if let Some(doc) = self.docs.get(uri) {
            self.notify_diagnostics(uri.clone(), doc.diagnostics(), Some(doc.version));
        }
    }

    fn notify_diagnostics(&self, uri: Uri, diagnostics: Vec<Diagnostic>, version: Option<i32>) {
        let params = PublishDiagnosticsParams {
            uri,
            diagnostics,
            version,
        };
        self.send(Notification::new(PublishDiagnostics::METHOD.into(), params).into());
    }

    /// The open provider file the request is about; `None` for a file that is not one.
    fn doc(&self, p: &TextDocumentPositionParams) -> Result<Option<&Document>, Failure> {
        let doc = self.docs.get(&p.text_document.uri).ok_or_else(|| {
            (
                ErrorCode::InvalidParams,
                format!("`{}` is not open", p.text_document.uri.as_str()),
            )
        })?;
        Ok(doc.provider_file.then_some(doc))
    }

    /// On a placeholder: what it names and where its value comes from. On a key or its value:
    /// what the key means.
    fn hover(&self, p: &TextDocumentPositionParams) -> Result<Option<Hover>, Failure> {
        let Some(doc) = self.doc(p)? else {
            return Ok(None);
        };
        let (pos, line) = doc.at(p.position);
        let markdown = |value: String, range: Range| Hover {
            contents: HoverContents::Markup(MarkupContent {
                kind: MarkupKind::Markdown,
                value,
            }),
            range: Some(range),
        };
        if let Some(ph) = names::placeholder_at(line, pos.col - 1) {
            let Some(var) = &ph.var else { return Ok(None) };
            let range = doc.line_range(pos.line, ph.start, ph.end);
            return Ok(doc
                .located(pos)
                .map(|(m, at)| markdown(names::hover(m, at, var), range)));
        }
        let text = doc.text.strip_prefix('\u{feff}').unwrap_or(&doc.text);
        let (Some(root), _) = crate::yaml::parse(text) else {
            return Ok(None);
        };
        Ok(keys::key_at(&root, pos)
            .and_then(|at| keys::hover(&at).map(|md| markdown(md, doc.range(at.span)))))
    }

    /// After `{{input.`, `{{stored.` or `{{secret.`: the names valid where the cursor stands;
    /// after a bare `{{`: the kinds of placeholder valid there.
    fn completion(
        &self,
        p: &TextDocumentPositionParams,
    ) -> Result<Option<CompletionResponse>, Failure> {
        let Some(doc) = self.doc(p)? else {
            return Ok(None);
        };
        let (pos, line) = doc.at(p.position);
        let Some(typing) = names::typing_at(line, pos.col - 1) else {
            return Ok(None);
        };
        let Some((model, Some(at))) = doc.located(pos) else {
            return Ok(None);
        };
        let replace = doc.line_range(pos.line, typing.start, pos.col - 1);
        let kind = match typing.namespace {
            Some(names::Namespace::Secret) => CompletionItemKind::CONSTANT,
            Some(_) => CompletionItemKind::VARIABLE,
            None => CompletionItemKind::KEYWORD,
        };
        let items = names::candidates(model, at, typing.namespace)
            .into_iter()
            .map(|c| CompletionItem {
                label: c.text.clone(),
                kind: Some(kind),
                detail: (!c.detail.is_empty()).then_some(c.detail),
                text_edit: Some(CompletionTextEdit::Edit(TextEdit::new(replace, c.text))),
                ..CompletionItem::default()
            })
            .collect();
        Ok(Some(CompletionResponse::Array(items)))
    }

    /// From a placeholder to where what it names is declared: every extract of a stored
    /// value, the field of an input, the secret's entry; from an outcome's `next:` to the
    /// step it names.
    fn definition(
        &self,
        p: &TextDocumentPositionParams,
    ) -> Result<Option<GotoDefinitionResponse>, Failure> {
        let Some(doc) = self.doc(p)? else {
            return Ok(None);
        };
        let (pos, line) = doc.at(p.position);
        let spans = match names::placeholder_at(line, pos.col - 1).and_then(|ph| ph.var) {
            Some(var) => match doc.located(pos) {
                Some((model, at)) => names::definitions(model, at, &var),
                None => Vec::new(),
            },
            None => doc
                .located(pos)
                .and_then(|(model, _)| names::next_step(model, pos))
                .into_iter()
                .collect(),
        };
        let locations: Vec<Location> = spans
            .into_iter()
            .map(|s| Location::new(p.text_document.uri.clone(), doc.range(s)))
            .collect();
        Ok((!locations.is_empty()).then_some(GotoDefinitionResponse::Array(locations)))
    }
}

fn params<P: serde::de::DeserializeOwned>(v: Value) -> Result<P, Failure> {
    serde_json::from_value(v).map_err(|e| (ErrorCode::InvalidParams, e.to_string()))
}

fn reply<R: serde::Serialize>(r: Result<R, Failure>) -> Result<Value, Failure> {
    serde_json::to_value(r?).map_err(|e| (ErrorCode::InternalError, e.to_string()))
}
