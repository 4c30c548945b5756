//! `otvi-codegen lsp` driven as an editor drives it: Content-Length framed JSON-RPC on the
//! process's stdin and stdout. The shipped provider files, edited in memory, are the inputs.

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// Long enough for any answer on a loaded machine; only there so that a broken server fails
/// the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(60);

fn providers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../providers")
        .canonicalize()
        .unwrap()
}

fn provider(name: &str) -> (String, String) {
    let path = providers().join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let uri = url::Url::from_file_path(&path).unwrap().to_string();
    (uri, text)
}

/// A language server process and what it has sent that no one has read yet.
struct Client {
    child: Child,
    stdin: ChildStdin,
    incoming: Receiver<Value>,
    /// Notifications received while waiting for a response.
    pending: VecDeque<Value>,
    next_id: i64,
}

impl Client {
    fn start() -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_otvi-codegen"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, incoming) = channel();
        std::thread::spawn(move || {
            while let Some(msg) = read_message(&mut stdout) {
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        Client {
            child,
            stdin,
            incoming,
            pending: VecDeque::new(),
            next_id: 1,
        }
    }

    /// A client that has done the handshake; returns the server's `initialize` result too.
    fn initialized() -> (Client, Value) {
        let mut c = Client::start();
        let result = c.request_ok(
            "initialize",
            json!({ "processId": null, "rootUri": null, "capabilities": {} }),
        );
        c.notify("initialized", json!({}));
        (c, result)
    }

    fn send(&mut self, msg: &Value) {
        let body = msg.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    fn next(&mut self) -> Value {
        self.incoming
            .recv_timeout(PATIENCE)
            .expect("the server answered nothing")
    }

    /// The whole response to a request (`result` or `error`).
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let msg = self.next();
            if msg.get("id") == Some(&json!(id)) && msg.get("method").is_none() {
                return msg;
            }
            self.pending.push_back(msg);
        }
    }

    fn request_ok(&mut self, method: &str, params: Value) -> Value {
        let response = self.request(method, params);
        assert!(response.get("error").is_none(), "{method}: {response}");
        response["result"].clone()
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        loop {
            let msg = match self.pending.pop_front() {
                Some(m) => m,
                None => self.next(),
            };
            if msg["method"] == "textDocument/publishDiagnostics" && msg["params"]["uri"] == uri {
                return msg["params"]["diagnostics"].as_array().unwrap().clone();
            }
        }
    }

    fn open(&mut self, uri: &str, text: &str) -> Vec<Value> {
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "yaml", "version": 1, "text": text } }),
        );
        self.diagnostics(uri)
    }

    fn change(&mut self, uri: &str, version: i32, text: &str) -> Vec<Value> {
        self.notify(
            "textDocument/didChange",
            json!({
                "textDocument": { "uri": uri, "version": version },
                "contentChanges": [ { "text": text } ]
            }),
        );
        self.diagnostics(uri)
    }

    fn at(&mut self, method: &str, uri: &str, (line, character): (u32, u32)) -> Value {
        self.request_ok(
            method,
            json!({
                "textDocument": { "uri": uri },
                "position": { "line": line, "character": character }
            }),
        )
    }

    /// The labels of the completion items at `pos`.
    fn completions(&mut self, uri: &str, pos: (u32, u32)) -> Vec<String> {
        let result = self.at("textDocument/completion", uri, pos);
        let items = result
            .as_array()
            .or_else(|| result["items"].as_array())
            .unwrap_or_else(|| panic!("no completion list: {result}"));
        items
            .iter()
            .map(|i| i["label"].as_str().unwrap().to_string())
            .collect()
    }

    fn hover(&mut self, uri: &str, pos: (u32, u32)) -> String {
        let result = self.at("textDocument/hover", uri, pos);
        result["contents"]["value"]
            .as_str()
            .unwrap_or_else(|| panic!("no hover: {result}"))
            .to_string()
    }

    /// Shuts the server down as an editor does and returns its exit code.
    fn shutdown_and_exit(mut self) -> Option<i32> {
        let r = self.request("shutdown", Value::Null);
        assert_eq!(r["result"], Value::Null, "{r}");
        assert!(r.get("error").is_none(), "{r}");
        self.notify("exit", Value::Null);
        self.wait()
    }

    fn wait(mut self) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("the server did not exit");
    }
}

fn read_message(r: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length:") {
            length = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    r.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// The protocol's position (0-based line, UTF-16 column) of the `nth` occurrence of `needle`,
/// plus `offset` characters.
fn position(text: &str, needle: &str, nth: usize, offset: usize) -> (u32, u32) {
    let at = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("`{needle}` #{nth} not in the text"))
        .0;
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..at].matches('\n').count() as u32;
    let before: String = text[line_start..at]
        .chars()
        .chain(needle.chars().take(offset))
        .collect();
    (line, before.encode_utf16().count() as u32)
}

/// The 0-based line of the `nth` occurrence of `needle`.
fn line_of(text: &str, needle: &str, nth: usize) -> u32 {
    position(text, needle, nth, 0).0
}

/// acme's "Verify Code" body with a misspelt stored value after some non-ASCII text on its
/// line: `é` is one UTF-16 unit and two bytes, `📺` two units, one character and four bytes.
fn acme_with_typo() -> (String, String, String) {
    let (uri, text) = provider("acme.yaml");
    let good = text.replacen(
        r#""request_id": "{{stored.request_id}}""#,
        r#""device": "Café 📺", "request_id": "{{stored.request_id}}""#,
        1,
    );
    assert_ne!(good, text, "acme.yaml changed; update this test");
    let bad = good.replacen("{{stored.request_id}}", "{{stored.requst_id}}", 1);
    (uri, good, bad)
}

#[test]
fn initialize_advertises_what_the_server_does() {
    let (c, result) = Client::initialized();
    let caps = &result["capabilities"];
    assert_eq!(caps["textDocumentSync"]["openClose"], true, "{caps}");
    assert_eq!(
        caps["textDocumentSync"]["change"], 1,
        "full text sync: {caps}"
    );
    assert_eq!(caps["hoverProvider"], true, "{caps}");
    assert_eq!(caps["definitionProvider"], true, "{caps}");
    assert_eq!(caps["positionEncoding"], "utf-16", "{caps}");
    let triggers = caps["completionProvider"]["triggerCharacters"].to_string();
    assert!(triggers.contains("\".\""), "{caps}");
    assert_eq!(result["serverInfo"]["name"], "otvi-codegen");
    assert_eq!(c.shutdown_and_exit(), Some(0));
}

#[test]
fn diagnostics_follow_the_edits_with_the_compilers_code_and_exact_range() {
    let (uri, good, bad) = acme_with_typo();
    let (mut c, _) = Client::initialized();

    let diags = c.open(&uri, &bad);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let d = &diags[0];
    assert_eq!(d["code"], "undefined-stored");
    assert_eq!(d["severity"], 1, "an error");
    assert_eq!(d["source"], "otvi-codegen");
    let message = d["message"].as_str().unwrap();
    assert!(
        message.starts_with("`{{stored.requst_id}}` is not defined at this step"),
        "{message}"
    );
    assert!(
        message.contains("help: did you mean `{{stored.request_id}}`?"),
        "{message}"
    );
    let (line, start) = position(&bad, "{{stored.requst_id}}", 0, 0);
    let end = start + "{{stored.requst_id}}".len() as u32;
    assert_eq!(
        d["range"],
        json!({ "start": { "line": line, "character": start },
                "end": { "line": line, "character": end } }),
        "UTF-16 columns on a line with `é` and `📺` before the placeholder"
    );

    assert_eq!(c.change(&uri, 2, &good), Vec::<Value>::new());
    // A save checks again (a `file:` sample may have changed); close clears the file's list.
    c.notify(
        "textDocument/didSave",
        json!({ "textDocument": { "uri": uri } }),
    );
    assert_eq!(c.diagnostics(&uri), Vec::<Value>::new());
    c.change(&uri, 3, &bad);
    c.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": uri } }),
    );
    assert_eq!(c.diagnostics(&uri), Vec::<Value>::new());
    assert_eq!(c.shutdown_and_exit(), Some(0));
}

#[test]
fn warnings_and_yaml_errors_are_published_too() {
    let (uri, text) = provider("acme.yaml");
    let (mut c, _) = Client::initialized();
    let unused = text.replacen(
        "          required: true\n          transform: base64",
        "          required: true\n          transform: base64\n        - { key: nickname, label: Nickname }",
        1,
    );
    let diags = c.open(&uri, &unused);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0]["code"], "unused-input");
    assert_eq!(diags[0]["severity"], 2, "a warning");

    let broken = format!("{text}\n  oops: [\n");
    let diags = c.change(&uri, 2, &broken);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0]["code"], "yaml-syntax");
    assert_eq!(c.shutdown_and_exit(), Some(0));
}

#[test]
fn file_samples_are_read_next_to_the_open_file() {
    // opentv.yaml reads `samples/opentv-201.json`, relative to providers/.
    let (uri, text) = provider("opentv.yaml");
    assert!(text.contains("file: samples/"), "opentv.yaml changed");
    let (mut c, _) = Client::initialized();
    assert_eq!(c.open(&uri, &text), Vec::<Value>::new());
    let moved = text.replace("file: samples/", "file: elsewhere/");
    let diags = c.change(&uri, 2, &moved);
    assert!(!diags.is_empty(), "a missing sample file is reported");
    assert_eq!(c.shutdown_and_exit(), Some(0));
}

#[test]
fn hover_on_a_key_says_what_the_reference_says() {
    let (uri, text) = provider("acme.yaml");
    let (mut c, _) = Client::initialized();
    c.open(&uri, &text);
    let md = c.hover(&uri, position(&text, "method: POST", 0, 2));
    assert!(md.contains("`auth.flows[].steps[].request.method`"), "{md}");
    assert!(md.contains("The HTTP method"), "{md}");
    assert!(md.contains("**Required:** yes"), "{md}");
    assert!(md.contains("`POST`"), "the allowed values: {md}");

    let md = c.hover(&uri, position(&text, "transform: base64", 0, 2));
    assert!(md.contains("`auth.flows[].inputs[].transform`"), "{md}");
    assert!(md.contains("`base64`: The value is encoded"), "{md}");

    // An extract key: any name, documented as `<name>`.
    let md = c.hover(&uri, position(&text, "refresh_token: \"$.data", 0, 1));
    assert!(
        md.contains("`auth.flows[].steps[].on_success.extract.<name>`"),
        "{md}"
    );
    assert!(md.contains("**Default:** none"), "{md}");
    assert_eq!(c.shutdown_and_exit(), Some(0));
}

#[test]
fn hover_on_a_stored_value_names_the_step_that_extracts_it_and_its_path() {
    let (uri, good, _) = acme_with_typo();
    let (mut c, _) = Client::initialized();
    c.open(&uri, &good);
    let md = c.hover(&uri, position(&good, "{{stored.request_id}}", 0, 12));
    assert!(md.contains("**`{{stored.request_id}}`**"), "{md}");
    assert!(md.contains("Extracted earlier in this run by"), "{md}");
    assert!(!md.contains("these steps keep"), "{md}");
    assert!(
        md.contains("**Sensitive**: kept from the provider's answer"),
        "{md}"
    );
    assert!(md.contains("step 0 (`Send Verification Code`)"), "{md}");
    assert!(md.contains("JSONPath `$.data.request_id`"), "{md}");
    assert!(!md.contains("Not defined"), "{md}");

    // Logout reads the session: both flows keep `access_token`.
    let md = c.hover(&uri, position(&good, "{{stored.access_token}}", 0, 3));
    assert!(md.contains("provider session"), "{md}");
    assert!(
        md.contains("flow `email_password`, step 0 (`Sign In`)"),
        "{md}"
    );
    assert!(
        md.contains("flow `phone_otp`, step 1 (`Verify Code`)"),
        "{md}"
    );

    let md = c.hover(&uri, position(&good, "{{input.phone}}", 0, 3));
    assert!(md.contains("input of flow `phone_otp`"), "{md}");
    assert!(md.contains("\"Phone Number\", type `tel`"), "{md}");
    let md = c.hover(&uri, position(&good, "{{uuid}}", 0, 3));
    assert!(md.contains("UUID v4"), "{md}");
    assert_eq!(c.shutdown_and_exit(), Some(0));
}

/// acme with `probe` lines being typed in both steps of the phone flow: the text of
/// each line ends where the cursor is.
fn acme_typing(probe: &str) -> String {
    let (_, text) = provider("acme.yaml");
    let typed = text
        .replacen(
            "\"country_code\": \"+1\"\n",
            &format!("\"country_code\": \"+1\"\n                {probe}\n"),
            1,
        )
        .replacen(
            "\"request_id\": \"{{stored.request_id}}\"\n",
            &format!("\"request_id\": \"{{{{stored.request_id}}}}\"\n                {probe}\n"),
            1,
        );
    assert_eq!(typed.matches(probe).count(), 2, "acme.yaml changed");
    typed
}

/// A refresh flow that reads the session's refresh token, then rotates it: `login` keeps it,
/// `refresh` reads it at step 0 and extracts a new one at step 1, which step 2 sends.
const ROTATION: &str = r#"provider: { id: rot, name: Rot }
defaults: { base_url: "https://api.rot.example" }
auth:
  flows:
    - id: login
      name: Login
      inputs: [ { key: email, label: Email } ]
      steps:
        - name: Sign In
          request: { method: POST, path: /login, body: '{"e": "{{input.email}}"}' }
          on_success: { extract: { refresh_token: "$.refresh", access_token: "$.access" } }
    - id: refresh
      name: Refresh
      steps:
        - name: Redeem
          request: { method: POST, path: /redeem, body: '{"t": "{{stored.refresh_token}}"}' }
          on_success: { extract: { grant: "$.grant" } }
        - name: Rotate
          request: { method: POST, path: /rotate, body: '{"g": "{{stored.grant}}"}' }
          on_success: { extract: { refresh_token: "$.refresh" } }
        - name: Confirm
          request: { method: POST, path: /confirm, body: '{"t": "{{stored.refresh_token}}"}' }
          on_success: { extract: { access_token: "$.access" } }
"#;

#[test]
fn hover_on_a_stored_value_names_earlier_steps_or_the_session_never_a_later_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("providers/rot.yaml");
    let uri = url::Url::from_file_path(&path).unwrap().to_string();
    let (mut c, _) = Client::initialized();
    assert_eq!(c.open(&uri, ROTATION), Vec::<Value>::new());

    // Step 0 of `refresh`: no earlier step keeps it; step 1 (later) must not be named as
    // where it comes from, but as a step that keeps it in the session after a run.
    let md = c.hover(&uri, position(ROTATION, "{{stored.refresh_token}}", 0, 10));
    assert!(!md.contains("Extracted earlier"), "{md}");
    assert!(
        md.contains("No earlier step of this run extracts it: a value of the user's provider session, which these steps keep:"),
        "{md}"
    );
    assert!(md.contains("- flow `login`, step 0 (`Sign In`)"), "{md}");
    assert!(
        md.contains("- flow `refresh` (this flow, in an earlier run), step 1 (`Rotate`)"),
        "{md}"
    );
    assert!(!md.contains("Not defined"), "{md}");

    // Step 2: step 1 of this run extracted it on every path; the session is not read.
    let md = c.hover(&uri, position(ROTATION, "{{stored.refresh_token}}", 1, 10));
    assert!(md.contains("Extracted earlier in this run by:"), "{md}");
    assert!(md.contains("- step 1 (`Rotate`)"), "{md}");
    assert!(!md.contains("these steps keep"), "{md}");
    assert!(!md.contains("Sign In"), "{md}");

    // Go-to-definition follows the same answer.
    let r = c.at(
        "textDocument/definition",
        &uri,
        position(ROTATION, "{{stored.refresh_token}}", 1, 10),
    );
    let lines: Vec<u64> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["range"]["start"]["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        lines,
        [u64::from(line_of(
            ROTATION,
            "extract: { refresh_token: \"$.refresh\" } }",
            0
        ))]
    );
    assert_eq!(c.shutdown_and_exit(), Some(0));
}

#[test]
fn yaml_files_that_are_not_provider_files_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, _) = Client::initialized();
    let compose =
        "services:\n  db:\n    image: postgres\n    environment: { POSTGRES_PASSWORD: x }\n";
    let uri = url::Url::from_file_path(dir.path().join("docker-compose.yml"))
        .unwrap()
        .to_string();
    assert_eq!(c.open(&uri, compose), Vec::<Value>::new());
    let hover = c.at("textDocument/hover", &uri, position(compose, "image", 0, 1));
    assert_eq!(hover, Value::Null);
    // Not even its YAML errors: it is not ours to judge.
    assert_eq!(c.change(&uri, 2, "services: [\n"), Vec::<Value>::new());

    // A file that has a key of the language is checked, even when broken.
    let (acme, text) = provider("acme.yaml");
    let without_provider = text.replacen("provider:", "provder:", 1);
    let diags = c.open(&acme, &without_provider);
    assert!(
        diags.iter().any(|d| d["code"] == "unknown-key"),
        "{diags:#?}"
    );
    let broken = format!("{text}\n  oops: [\n");
    let diags = c.change(&acme, 2, &broken);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0]["code"], "yaml-syntax");

    // An empty file becomes a provider file as its first key is written.
    let new = url::Url::from_file_path(dir.path().join("providers/new.yaml"))
        .unwrap()
        .to_string();
    assert_eq!(c.open(&new, ""), Vec::<Value>::new());
    let diags = c.change(&new, 2, "provider: { id: n, name: N }\n");
    assert!(
        diags.iter().any(|d| d["code"] == "missing-key"),
        "{diags:#?}"
    );
    assert_eq!(c.shutdown_and_exit(), Some(0));
}

#[test]
fn completion_offers_the_stored_values_valid_at_the_step() {
    let (uri, _) = provider("acme.yaml");
    let probe = "\"probe\": \"{{stored.";
    let text = acme_typing(probe);
    let (mut c, _) = Client::initialized();
    c.open(&uri, &text);
    let end = probe.chars().count();
    // The first step: session values (the other flow's extracts) only; its own `request_id`
    // is available from the next step on.
    let first = c.completions(&uri, position(&text, probe, 0, end));
    for k in ["access_token", "refresh_token", "user_name", "user_id"] {
        assert!(first.contains(&k.to_string()), "{k}: {first:?}");
    }
    assert!(!first.contains(&"request_id".to_string()), "{first:?}");
    let second = c.completions(&uri, position(&text, probe, 1, end));
    assert!(second.contains(&"request_id".to_string()), "{second:?}");

    // The item replaces what is typed of the name.
    let partial = acme_typing("\"probe\": \"{{stored.req");
    c.change(&uri, 2, &partial);
    let at = position(&partial, "\"probe\": \"{{stored.req", 1, end + 3);
    let result = c.at("textDocument/completion", &uri, at);
    let item = result
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["label"] == "request_id")
        .unwrap_or_else(|| panic!("{result}"));
    assert_eq!(item["textEdit"]["newText"], "request_id");
    assert_eq!(item["textEdit"]["range"]["start"]["character"], at.1 - 3);
    assert_eq!(item["textEdit"]["range"]["end"]["character"], at.1);
    assert!(
        item["detail"]
            .as_str()
            .unwrap()
            .contains("JSONPath `$.data.request_id`"),
        "{item}"
    );
    assert_eq!(c.shutdown_and_exit(), Some(0));
}

#[test]
fn completion_offers_the_inputs_valid_at_the_step() {
    let (uri, _) = provider("acme.yaml");
    let probe = "\"probe\": \"{{ input.";
    let text = acme_typing(probe);
    let (mut c, _) = Client::initialized();
    c.open(&uri, &text);
    let end = probe.chars().count();
    let first = c.completions(&uri, position(&text, probe, 0, end));
    assert_eq!(
        first,
        vec!["phone"],
        "`otp` is asked for by this step's prompt"
    );
    let mut second = c.completions(&uri, position(&text, probe, 1, end));
    second.sort();
    assert_eq!(second, vec!["otp", "phone"]);
    assert_eq!(c.shutdown_and_exit(), Some(0));
}

#[test]
fn completion_offers_secrets_where_they_may_be_sent() {
    let (uri, text) = provider("indee.yaml");
    let header = "Authorization: \"Bearer {{secret.api_key}}\"";
    let display = "value: \"{{stored.redirect}}\"";
    let typed = text
        .replacen(header, "Authorization: \"Bearer {{secret.\"", 1)
        .replacen(display, "value: \"{{secret.\"", 1);
    assert_ne!(typed, text);
    let (mut c, _) = Client::initialized();
    c.open(&uri, &typed);
    let secrets = c.completions(&uri, position(&typed, "{{secret.", 0, 9));
    assert_eq!(secrets, vec!["api_key"]);
    // A display field's value is shown to the user: no secret there.
    let shown = c.completions(&uri, position(&typed, "{{secret.", 1, 9));
    assert_eq!(shown, Vec::<String>::new());
    // After a bare `{{` in `defaults.headers`: no inputs, stored values or run id.
    let bare = typed.replacen("Bearer {{secret.", "Bearer {{", 1);
    c.change(&uri, 2, &bare);
    let kinds = c.completions(&uri, position(&bare, "Bearer {{", 0, 9));
    assert!(kinds.contains(&"secret.".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"uuid".to_string()), "{kinds:?}");
    for absent in ["input.", "stored.", "run_id"] {
        assert!(!kinds.contains(&absent.to_string()), "{absent}: {kinds:?}");
    }
    assert_eq!(c.shutdown_and_exit(), Some(0));
}

#[test]
fn definition_leads_from_a_use_to_every_extract_field_or_secret() {
    let (uri, text) = provider("acme.yaml");
    let (mut c, _) = Client::initialized();
    c.open(&uri, &text);
    let lines = |result: &Value| -> Vec<u64> {
        let mut l: Vec<u64> = result
            .as_array()
            .unwrap_or_else(|| panic!("{result}"))
            .iter()
            .map(|loc| {
                assert_eq!(loc["uri"], uri.as_str());
                loc["range"]["start"]["line"].as_u64().unwrap()
            })
            .collect();
        l.sort();
        l
    };

    let r = c.at(
        "textDocument/definition",
        &uri,
        position(&text, "{{stored.request_id}}", 0, 10),
    );
    assert_eq!(
        lines(&r),
        vec![u64::from(line_of(
            &text,
            "request_id: { path: \"$.data.request_id\"",
            0
        ))]
    );
    assert_eq!(
        r[0]["range"]["start"]["character"],
        position(&text, "request_id: { path: \"$.data.request_id\"", 0, 0).1
    );

    // Logout's `access_token`: both flows extract it.
    let r = c.at(
        "textDocument/definition",
        &uri,
        position(&text, "{{stored.access_token}}", 0, 10),
    );
    let extracts = vec![
        u64::from(line_of(&text, "access_token: \"$.data.access_token\"", 0)),
        u64::from(line_of(&text, "access_token: \"$.data.access_token\"", 1)),
    ];
    assert_eq!(lines(&r), extracts);

    let r = c.at(
        "textDocument/definition",
        &uri,
        position(&text, "{{input.otp}}", 0, 9),
    );
    assert_eq!(lines(&r), vec![u64::from(line_of(&text, "key: otp", 0))]);

    let (indee, itext) = provider("indee.yaml");
    c.open(&indee, &itext);
    let r = c.at(
        "textDocument/definition",
        &indee,
        position(&itext, "{{secret.api_key}}", 0, 10),
    );
    assert_eq!(
        r[0]["range"]["start"]["line"],
        line_of(&itext, "api_key: { env", 0)
    );
    assert_eq!(r[0]["uri"], indee.as_str());

    // An outcome's `next:` leads to the step it names.
    let (truenas, ttext) = provider("truenas.yaml");
    c.open(&truenas, &ttext);
    for nth in [0, 1] {
        let r = c.at(
            "textDocument/definition",
            &truenas,
            position(&ttext, "next: otp", nth, 7),
        );
        assert_eq!(
            r[0]["range"]["start"]["line"],
            line_of(&ttext, "id: otp", 0),
            "{r}"
        );
    }
    assert_eq!(c.shutdown_and_exit(), Some(0));
}

#[test]
fn a_broken_file_is_still_answered() {
    let (uri, text) = provider("acme.yaml");
    let (mut c, _) = Client::initialized();
    c.open(&uri, &text);
    // An unclosed flow sequence at the end: the YAML cannot be read, and the model of the
    // earlier text answers.
    let probe = "\"probe\": \"{{stored.";
    let broken = format!("{}\n  oops: [\n", acme_typing(probe));
    let diags = c.change(&uri, 2, &broken);
    assert_eq!(diags[0]["code"], "yaml-syntax");
    let end = probe.chars().count();
    let second = c.completions(&uri, position(&broken, probe, 1, end));
    assert!(second.contains(&"request_id".to_string()), "{second:?}");
    let md = c.hover(&uri, position(&broken, "{{stored.request_id}}", 0, 3));
    assert!(md.contains("JSONPath `$.data.request_id`"), "{md}");

    // Garbage, positions past the end, a document never opened: answers, never a crash.
    c.change(&uri, 3, "\u{0}{{{{ : - [ \"\n\t}}");
    let r = c.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 99, "character": 99 } }),
    );
    assert!(r.get("error").is_none(), "{r}");
    let r = c.request(
        "textDocument/completion",
        json!({ "textDocument": { "uri": "file:///nowhere.yaml" }, "position": { "line": 0, "character": 0 } }),
    );
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert_eq!(c.shutdown_and_exit(), Some(0));
}

#[test]
fn an_unknown_method_is_an_error_and_the_server_goes_on() {
    let (mut c, _) = Client::initialized();
    let r = c.request("textDocument/formatting", json!({}));
    assert_eq!(r["error"]["code"], -32601, "MethodNotFound: {r}");
    let (uri, text) = provider("acme.yaml");
    assert_eq!(c.open(&uri, &text), Vec::<Value>::new());
    assert_eq!(c.shutdown_and_exit(), Some(0));
}

#[test]
fn requests_after_shutdown_are_refused_and_exit_without_shutdown_is_code_1() {
    let (mut c, _) = Client::initialized();
    let r = c.request("shutdown", Value::Null);
    assert!(r.get("error").is_none(), "{r}");
    let r = c.request("textDocument/hover", json!({}));
    assert_eq!(r["error"]["code"], -32600, "InvalidRequest: {r}");
    c.notify("exit", Value::Null);
    assert_eq!(c.wait(), Some(0));

    let (mut c, _) = Client::initialized();
    c.notify("exit", Value::Null);
    assert_eq!(c.wait(), Some(1));
}
