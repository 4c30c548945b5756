//! The language reference, `docs/language-reference.md`: every key of the provider language
//! with its type, whether it is required, its default, its allowed values, what it means and
//! an example.
//!
//! Everything a key *is* (type, required, default, enum, pattern) is read from
//! `schema::schema()`, which is built from the key lists the compiler accepts, so the reference
//! cannot drift from the compiler. This module adds only prose: `KEYS`, one entry per key path.
//! `tests/reference.rs` fails when the schema has a key `KEYS` does not document, when `KEYS`
//! documents a key the schema no longer has, and when the checked-in page differs from
//! `render()`.

use crate::model::{FieldType, Var};
use serde_json::Value;
use std::fmt::Write as _;

/// The prose of one key.
pub struct KeyDoc {
    /// The key's path as `keys()` spells it: `auth.flows[].steps[].request.method`; `[]` is
    /// an item of a list, `<name>` any entry of a mapping of names, `<$jsonpath>` a JSONPath
    /// condition.
    pub path: &'static str,
    /// One paragraph: what the key means and does.
    pub meaning: &'static str,
    /// A YAML mapping holding the key (other keys may stand beside it for context); for a
    /// `<name>` or `<$jsonpath>` entry, a mapping of such entries. Its value must satisfy the
    /// key's schema.
    pub example: &'static str,
}

/// Keys whose own keys are those of another key, documented once there: `(key, same as)`.
/// `tests/reference.rs` checks that both have the same schema.
pub const SAME_AS: &[(&str, &str)] = &[
    (
        "auth.flows[].steps[].on_success.prompt",
        "auth.flows[].inputs",
    ),
    (
        "auth.flows[].steps[].on_success.samples",
        "auth.flows[].steps[].samples",
    ),
    (
        "auth.flows[].steps[].outcomes[].extract",
        "auth.flows[].steps[].on_success.extract",
    ),
    (
        "auth.flows[].steps[].outcomes[].prompt",
        "auth.flows[].inputs",
    ),
    (
        "auth.flows[].steps[].outcomes[].samples",
        "auth.flows[].steps[].samples",
    ),
    ("auth.logout.request", "auth.flows[].steps[].request"),
    ("auth.check.request", "auth.flows[].steps[].request"),
    ("auth.check.samples", "auth.flows[].steps[].samples"),
    (
        "auth.check.outcomes[].when",
        "auth.flows[].steps[].outcomes[].when",
    ),
    (
        "auth.check.outcomes[].samples",
        "auth.flows[].steps[].samples",
    ),
];

/// A complete provider file using most of the language; `otvi_codegen::check_one` accepts it
/// without a diagnostic (`tests/reference.rs`).
pub const FULL_EXAMPLE: &str = r#"# Two flows: a password sign-in that may ask for a one-time code, and single sign-on
# through the identity provider's page.
provider:
  id: example
  name: "Example TV"
  logo: "https://example.tv/logo.png"
secrets:
  api_key: { env: EXAMPLE_API_KEY }
defaults:
  base_url: "https://api.example.tv/v1"
  headers:
    User-Agent: "otvi/1"
    X-Api-Key: "{{secret.api_key}}"
    X-Request-Date: "{{utcdate}}"
auth:
  scope: per_user
  flows:
    - id: password
      name: "Email & Password"
      inputs:
        - { key: email, label: "Email", type: email }
        - { key: password, label: "Password", type: password }
      steps:
        - id: login
          name: "Sign In"
          request:
            method: POST
            path: /auth/login
            headers: { x-correlation-id: "{{run_id}}" }
            body: |
              { "email": "{{input.email}}", "password": "{{input.password}}", "device": "{{uuid}}" }
          error_message: "$.message"
          outcomes:
            - when: { status: 200, "$.result": OK }
              extract:
                access_token: "$.access_token"
                user_name: { path: "$.user.name", optional: true }
              complete: true
            - when: { status: 200, "$.result": CODE_REQUIRED }
              extract: { session: { cookie: ex_session } }
              prompt: [ { key: otp, label: "One-time code" } ]
              samples:
                - name: "a code is required"
                  status: 200
                  headers: { Set-Cookie: "ex_session=s3cr3t; Path=/; HttpOnly" }
                  body: { result: CODE_REQUIRED }
            - when: { status: 401 }
              fail: "Wrong email or password"
        - id: otp
          name: "One-Time Code"
          request:
            method: POST
            path: /auth/otp
            headers: { Cookie: "ex_session={{stored.session}}" }
            body: '{ "code": "{{input.otp}}" }'
          outcomes:
            - when: { "$.result": OK }
              extract: { access_token: "$.access_token" }
            - when: { "$.result": BAD_CODE }
              prompt: [ { key: otp, label: "One-time code" } ]
              next: otp
              message: "That code was not accepted; enter the current one"
            - fail: { from: "$.message", message: "The code could not be checked" }

    - id: sso
      name: "Single Sign-On"
      inputs:
        - { key: email, label: "Work email", type: email }
      steps:
        - name: "Start Single Sign-On"
          request:
            method: GET
            path: /auth/sso
            params: { email: "{{input.email}}" }
          success_status: 200
          success_when: { "$.status": started }
          on_success:
            samples:
              - status: 200
                body: { status: started, state: "st-1", redirect: "https://sso.example.tv/start" }
            extract:
              state: "$.state"
              redirect: "$.redirect"
            prompt:
              - key: sso_page
                type: link
                label: "Open this page, sign in, and copy the code it shows"
                value: "{{stored.redirect}}"
              - { key: code, label: "Code from the sign-in page" }
        - name: "Finish Single Sign-On"
          request:
            method: POST
            path: /auth/sso/token
            body_encoding: form
            body: "state={{stored.state}}&code={{input.code}}"
          on_success:
            extract:
              access_token: "$.access_token"
              accounts: { path: "$.accounts[*].name", all: true }
              request_id: { header: X-Request-Id }
              http_status: { status: true }

  logout:
    request:
      method: POST
      path: /auth/logout
      headers: { Authorization: "Bearer {{stored.access_token}}" }
"#;

/// What each key means, with an example; one entry per key path, in any order (the page
/// follows the schema's order).
pub const KEYS: &[KeyDoc] = &[
    // ---- the top level -------------------------------------------------------------------
    KeyDoc {
        path: "provider",
        meaning: "Who the provider is: its id, the name users see, and a logo.",
        example: r#"provider: { id: acme, name: "Acme TV", logo: "https://acme.example/logo.png" }"#,
    },
    KeyDoc {
        path: "provider.id",
        meaning: "The provider's id: it names the provider in the API's routes \
            (`/api/providers/acme/auth/login`), in tokens' allow-lists, sessions, logs and \
            metrics, and names its generated module. Unique across all provider files: a second \
            file with the same id is an error.",
        example: "id: acme",
    },
    KeyDoc {
        path: "provider.name",
        meaning: "The provider's name as users see it (`GET /api/providers`, the console).",
        example: r#"name: "Acme TV""#,
    },
    KeyDoc {
        path: "provider.logo",
        meaning: "The address of the provider's logo, passed on as written to clients by \
            `GET /api/providers`; the server never fetches it.",
        example: r#"logo: "https://acme.example/logo.png""#,
    },
    KeyDoc {
        path: "defaults",
        meaning: "Settings shared by every request of the provider, logout included: where \
            requests go and the headers they all carry.",
        example: r#"defaults:
  base_url: "https://api.acme.example"
  headers: { User-Agent: "otvi/1" }"#,
    },
    KeyDoc {
        path: "defaults.base_url",
        meaning: "The URL a relative request `path` is appended to, its trailing `/` trimmed, \
            so a path prefix is kept (`https://h/api` + `/login` is `https://h/api/login`). An \
            absolute http(s) URL without any placeholder: where requests go is fixed at build \
            time (`otvi serve --provider-base-url ID=URL` points a provider at another host at \
            run time). Empty, null or absent only when every request path is an absolute URL.",
        example: r#"base_url: "https://api.acme.example""#,
    },
    KeyDoc {
        path: "defaults.headers",
        meaning: "Headers sent with every request of the provider, logout included; a \
            request's own `headers` are merged over them. Values are templates, but as they \
            also apply outside a flow they may use only `{{uuid}}`, `{{utcnow}}`, `{{utcdate}}` \
            and `{{secret.K}}`.",
        example: r#"headers:
  User-Agent: "otvi/1"
  Authorization: "Bearer {{secret.api_key}}""#,
    },
    KeyDoc {
        path: "auth",
        meaning: "How users sign in and out: the flows, who owns the session, and the logout \
            request. `auth.refresh` of the older format is always an error: a token refresh is \
            a flow of its own that reads the session's refresh token as `{{stored.K}}`.",
        example: r#"auth:
  scope: per_user
  flows:
    - id: password
      name: "Email & Password"
      inputs: [ { key: email, label: "Email", type: email } ]
      steps:
        - name: "Sign In"
          request: { method: POST, path: /login, body: '{"email": "{{input.email}}"}' }"#,
    },
    KeyDoc {
        path: "auth.scope",
        meaning: "Who owns the provider session. `per_user`: each user signs in with their own \
            account and has a session of their own. `global`: one session shared by every user \
            of the server; only admins may log in or out, anyone may check it.",
        example: "scope: global",
    },
    KeyDoc {
        path: "auth.flows",
        meaning: "The ways to sign in (email and password, phone and one-time code, single \
            sign-on, an explicit token refresh…), at least one. A login request names a flow by \
            its `id`; `GET /api/providers/:id` lists the flows with their fields.",
        example: r#"flows:
  - id: email_password
    name: "Email & Password"
    inputs:
      - { key: email, label: "Email", type: email }
      - { key: password, label: "Password", type: password }
    steps:
      - name: "Sign In"
        request:
          method: POST
          path: /v2/auth/login
          body: '{"email": "{{input.email}}", "password": "{{input.password}}"}'
        on_success:
          extract: { access_token: "$.data.access_token" }"#,
    },
    KeyDoc {
        path: "auth.flows[].id",
        meaning: "The flow's id, unique within the provider: the `flow` of a login request.",
        example: "id: phone_otp",
    },
    KeyDoc {
        path: "auth.flows[].name",
        meaning: "The flow's name, shown to users as a way to sign in.",
        example: r#"name: "Phone Number""#,
    },
    KeyDoc {
        path: "auth.flows[].inputs",
        meaning: "The fields the user fills in before the first step, available as \
            `{{input.K}}` from step 0 on. Empty or absent for a flow that only uses session \
            values, such as an explicit token refresh. Display fields (`link`, `info`) cannot \
            be inputs; an input no step uses is a warning.",
        example: r#"inputs:
  - { key: phone, label: "Phone Number", type: tel, transform: base64 }"#,
    },
    KeyDoc {
        path: "auth.flows[].inputs[].key",
        meaning: "The field's name: its key in the login request's inputs and in \
            `{{input.K}}`, and in `next_step.fields` when a prompt asks for it. Unique among a \
            flow's inputs and within one prompt; a prompt may not reuse an input's key.",
        example: "key: email",
    },
    KeyDoc {
        path: "auth.flows[].inputs[].label",
        meaning: "The text shown with the field.",
        example: r#"label: "Email Address""#,
    },
    KeyDoc {
        path: "auth.flows[].inputs[].type",
        meaning: "What kind of field it is. `text`, `email`, `password`, `tel`, `number` and \
            `choice` are collected from the user; `link` and `info` are display fields, shown in a prompt \
            and not collected. See [Field types](#field-types).",
        example: "type: password",
    },
    KeyDoc {
        path: "auth.flows[].inputs[].required",
        meaning: "Whether the login request must carry a value: a missing required input is \
            answered with HTTP 400 naming it. Display fields take no `required`.",
        example: "required: false",
    },
    KeyDoc {
        path: "auth.flows[].inputs[].transform",
        meaning: "Encodes the value before it is substituted: with `base64`, `{{input.phone}}` \
            *is* the encoded value (and `{{input.phone_base64}}` is an error that says so). \
            Display fields take no `transform`. See [Transforms](#transforms).",
        example: "transform: base64",
    },
    KeyDoc {
        path: "auth.flows[].inputs[].value",
        meaning: "A display field's content: a template rendered after the step's own \
            extraction, so it may use what that step just extracted, and returned as \
            `next_step.fields[].value`. It may not use a secret or a password input. At run \
            time a `link` value that is not an absolute http(s) URL fails the step.",
        example: r#"value: "{{stored.redirect}}""#,
    },
    KeyDoc {
        path: "auth.flows[].inputs[].options",
        meaning: "A `choice` field's options: `values`, and optionally `labels`, each one \
            `{{stored.K}}` placeholder naming a value extracted with `all: true` (a list) by \
            this outcome, earlier in the run, or by another flow into the session. The options are the elements of `values`, each \
            labelled by the element of `labels` at the same place (by its value when there are \
            no labels, or not as many). A `choice` field needs `options`; no other field takes \
            them.",
        example: r#"options: { values: "{{stored.accounts}}", labels: "{{stored.account_names}}" }"#,
    },
    KeyDoc {
        path: "auth.flows[].inputs[].options.values",
        meaning: "The list of values to choose from: one `{{stored.K}}` placeholder.",
        example: r#"values: "{{stored.accounts}}""#,
    },
    KeyDoc {
        path: "auth.flows[].inputs[].options.labels",
        meaning: "The list of what each value is shown as, in the same order: one \
            `{{stored.K}}` placeholder.",
        example: r#"labels: "{{stored.account_names}}""#,
    },
    KeyDoc {
        path: "auth.flows[].inputs[].sensitive",
        meaning: "Whether the value is sensitive: a credential to account for. `otvi-codegen \
            explain` lists every place each sensitive value is sent, and the language server's \
            hover says which values are. Without it, a `password` field is sensitive, and so is a field a prompt asks for \
            (the provider asked in the middle of a sign-in: a one-time code, a verification \
            code, a code copied from a sign-in page), and an input whose key contains \
            `password`, `code` or `otp`; others are not. `sensitive: false` says a prompted \
            field or such an input is not secret (an account to choose); a `password` field \
            is always sensitive, so `false` on one is an error. Display fields take no \
            `sensitive`.",
        example: r#"key: account
label: "Account to use"
sensitive: false"#,
    },
    KeyDoc {
        path: "auth.flows[].steps",
        meaning: "The requests of the flow, at least one, run in order unless an outcome's \
            `next` says otherwise. A step that does not prompt leads straight to the next step \
            in the same login request; a prompt pauses the run until the client sends the \
            answers as the next `step`; after the last step the run completes. At most 128 \
            steps across a provider's flows.",
        example: r#"steps:
  - name: "Send Verification Code"
    request: { method: POST, path: /otp/send, body: '{"phone": "{{input.phone}}"}' }
    on_success:
      extract: { request_id: "$.request_id" }
      prompt: [ { key: otp, label: "Verification code" } ]
  - name: "Verify Code"
    request:
      method: POST
      path: /otp/verify
      body: '{"code": "{{input.otp}}", "request_id": "{{stored.request_id}}"}'"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].id",
        meaning: "A name for the step, so that an outcome's `next` can lead to it. Without \
            one, a step is named by its index, from 0.",
        example: "id: verify",
    },
    KeyDoc {
        path: "auth.flows[].steps[].name",
        meaning: "The step's name, returned as `next_step`'s name when a prompt leads to it.",
        example: r#"name: "Verify Code""#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].request",
        meaning: "The HTTP request the step sends to the provider. Its destination is fixed \
            at build time; placeholders fill in the path's segments, query values, header values \
            and the body, each encoded for where it stands.",
        example: r#"request:
  method: POST
  path: /v2/auth/login
  headers: { x-correlation-id: "{{run_id}}" }
  body: '{"email": "{{input.email}}", "password": "{{input.password}}"}'"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].request.method",
        meaning: "The HTTP method, in capitals.",
        example: "method: POST",
    },
    KeyDoc {
        path: "auth.flows[].steps[].request.path",
        meaning: "Where the request goes: a path relative to `defaults.base_url`, or an \
            absolute http(s) URL (its scheme, host and port cannot hold a placeholder). A \
            placeholder is percent-encoded as one path segment, so a value can never add `/`, \
            `?` or `#`.",
        example: r#"path: "/v1/users/{{stored.user_id}}/session""#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].request.headers",
        meaning: "Headers of this request, merged over `defaults.headers`. Names are fixed; \
            values are templates, and one whose value would hold CR, LF or NUL is refused with \
            HTTP 400, never sent. A cookie is sent back with an ordinary header.",
        example: r#"headers:
  Authorization: "Bearer {{stored.access_token}}"
  Cookie: "sid={{stored.sid}}""#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].request.params",
        meaning: "Query parameters added to the URL. Names are fixed; values are templates, \
            encoded by the URL builder. A password input or a secret in a query string is a \
            warning.",
        example: r#"params: { lang: en, device: "{{uuid}}" }"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].request.body",
        meaning: "The request body, a template. As JSON (the default) it must be valid JSON \
            with every placeholder inside a JSON string, and each value is JSON-escaped; as a \
            form it is `k=v&k2={{input.x}}` with form-urlencoded values. It goes with \
            `Content-Type: application/json` or `application/x-www-form-urlencoded` unless a \
            header sets one.",
        example: r#"body: |
  { "phone_number": "{{input.phone}}", "country_code": "+1" }"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].request.body_encoding",
        meaning: "How `body` is written and substituted: `json`, or `form` \
            (`application/x-www-form-urlencoded`).",
        example: r#"body_encoding: form
body: "grant_type=password&username={{input.username}}&password={{input.password}}""#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].request.json",
        meaning: "The request body written as a YAML mapping or list, sent as JSON with \
            `Content-Type: application/json` unless a header sets one; instead of `body`, \
            never with it or with `body_encoding`. Every string value is a template whose text \
            and values are JSON-escaped (keys are fixed text); a plain number, `true`, `false` or `null` is sent as that \
            JSON value (quote it, `\"42\"`, to send text). A string that is only an optional \
            input's placeholder is left out, key and all, when the input is absent or empty; \
            only a `number` input's placeholder is sent as a JSON number.",
        example: r#"json:
  username: "{{input.username}}"   # optional inputs: the one not given is left out
  email: "{{input.email}}"
  password: "{{input.password}}"
  remember: true
  pin: "{{input.pin}}"             # type: number -> sent as 1234, not "1234""#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].success_status",
        meaning: "On the `on_success` form: the status, or statuses, that mean success. \
            Without it any 2xx does. Not allowed with `outcomes`.",
        example: "success_status: [201, 300]",
    },
    KeyDoc {
        path: "auth.flows[].steps[].success_when",
        meaning: "On the `on_success` form: conditions on the response body that must all \
            hold, besides the status, for the step to succeed. Not allowed with `outcomes`; an \
            empty `success_when: {}` is an error.",
        example: r#"success_when: { "$.status_code": A0000 }"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].success_when.<$jsonpath>",
        meaning: "One condition: a JSONPath (a key starting with `$`) and the value the first \
            thing it finds must equal. The expected value is typed as YAML reads it: a plain \
            `A0000` or a quoted `\"0\"` is text, a plain `0` a number, `true` and `false` \
            booleans, `null` null; text never equals a number. A path that finds nothing, or a \
            body that is not JSON, makes the condition false.",
        example: r#""$.status_code": A0000
"$.data.verified": true"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].error_message",
        meaning: "A JSONPath to the provider's error text. When the step fails, the answer's \
            `error` carries it (a string only, control characters removed, at most 200 \
            characters), or else `the provider answered HTTP N`.",
        example: r#"error_message: "$.status_message""#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].on_success",
        meaning: "What a successful response leads to (the core form): values to keep and, \
            optionally, fields to ask for before the next step. A step has either `on_success` \
            (with `success_status` and `success_when`) or `outcomes`, never both; with neither, \
            a successful response keeps nothing and the run goes on.",
        example: r#"on_success:
  extract: { request_id: "$.data.request_id" }
  prompt: [ { key: otp, label: "Enter Verification Code" } ]"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].on_success.extract",
        meaning: "Values to keep from the response, by name. Later steps and logout read them \
            as `{{stored.K}}`; when the run completes they are merged into the user's provider \
            session (`user_name` is also returned as the answer's `user_name`). A value that is \
            not found fails the step, naming the path, unless it is `optional`. Non-string \
            values are kept as their JSON text.",
        example: r#"extract:
  access_token: "$.data.access_token"
  user_name: { path: "$.data.user.display_name", optional: true }"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].on_success.extract.<name>",
        meaning: "One value to keep: a JSONPath into the JSON body (its first match), or a \
            mapping with exactly one source (`path`, `header`, `cookie` or `status`). The name \
            is how `{{stored.K}}` reads it: letters, digits and `_`, not starting with a digit.",
        example: r#"access_token: "$.data.access_token"
session: { cookie: tn_session }"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].on_success.extract.<name>.path",
        meaning: "The source is the JSON body: a JSONPath, parsed at build time. Its first \
            match is kept, or every match with `all`.",
        example: r#"path: "$.user_info.pw_name""#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].on_success.extract.<name>.optional",
        meaning: "A miss keeps nothing instead of failing the step. For every source but \
            `status`. An optional value may be missing, so the data-flow check treats it as \
            undefined: no later step or display field may rely on it.",
        example: r#"path: "$.user_info.pw_name"
optional: true"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].on_success.extract.<name>.all",
        meaning: "For a `path` source only: keep every match, as the text of a JSON array, \
            instead of the first.",
        example: r#"path: "$.accounts[*].username"
all: true"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].on_success.extract.<name>.header",
        meaning: "The source is a response header, by name (any case): for instance a \
            redirect's `Location`.",
        example: "header: Location",
    },
    KeyDoc {
        path: "auth.flows[].steps[].on_success.extract.<name>.cookie",
        meaning: "The source is a cookie the response sets (`Set-Cookie`), by name. Send it \
            back with an ordinary header: `Cookie: \"tn_session={{stored.session}}\"`.",
        example: "cookie: tn_session",
    },
    KeyDoc {
        path: "auth.flows[].steps[].on_success.extract.<name>.status",
        meaning: "The source is the response's HTTP status, kept as text; `status: true` is \
            its only form.",
        example: "status: true",
    },
    KeyDoc {
        path: "auth.flows[].steps[].on_success.extract.<name>.sensitive",
        meaning: "Whether the value kept is sensitive (see the field key of the same name). \
            Without it, every value kept from the provider's answer is: a JSONPath, a header \
            or a cookie may carry a token or a session, whatever its name. The status \
            (`status: true`) is not, unless its name contains `token`, `cookie` or `secret`. \
            `sensitive: false` says a value is not secret (a request id, a display name). A \
            stored value is one per key: it stays sensitive while any extract of that key is \
            (a warning says so).",
        example: r#"path: "$.data.request_id"
sensitive: false"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].on_success.extract.<name>.keep",
        meaning: "How long the value is kept. `session` (the default): in the user's provider \
            session once the run completes. `run`: for the rest of this run only: later steps \
            of the same flow read it as `{{stored.K}}` (a pending run keeps it, sealed, between \
            requests), and it is never written into the session, so logout, another flow or a \
            session check cannot use it (an error says so). For a half-login token that the \
            next step exchanges. A stored value is one per key: every extract of a key keeps \
            it for the run, or none does (`keep-conflict`).",
        example: r#"path: "$.data.request_id"
keep: run"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].on_success.prompt",
        meaning: "Fields to ask the user for before the next step: the answer is \
            `success: false` with `next_step` (the next step's index and name, and these \
            fields), and the client sends the values with that step; a field asked for must \
            come with that request. Display fields show what this step returned. Not allowed \
            on a flow's last step, where nothing would read the fields.",
        example: r#"prompt:
  - { key: otp, label: "Enter Verification Code" }"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].outcomes",
        meaning: "What each kind of response leads to, instead of `on_success`: a list tried \
            in order, the first outcome whose `when` holds is taken. Outcomes see every \
            response, whatever its status. When none matches, the step fails, with \
            `error_message` if set. An outcome that an earlier one always pre-empts is an \
            error.",
        example: r#"outcomes:
  - when: { "$.response_type": SUCCESS }
    extract: { session: { cookie: tn_session } }
    complete: true
  - when: { "$.response_type": OTP_REQUIRED }
    extract: { session: { cookie: tn_session } }
    prompt: [ { key: otp, label: "One-time password" } ]
    next: otp
  - when: { "$.response_type": AUTH_ERR }
    fail: "Invalid username or password""#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].outcomes[].when",
        meaning: "The outcome's conditions, all of which must hold: JSONPath keys with \
            expected values, and `status`. An outcome without `when` takes every response \
            (and must be the last); an empty `when: {}` is an error.",
        example: r#"when: { status: 200, "$.status_code": A0000 }"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].outcomes[].when.status",
        meaning: "The HTTP status must be this code, or one of these. Same-host redirects are \
            followed, except by a step one of whose outcomes tests a 3xx status: that step \
            sees the redirect itself.",
        example: "status: [401, 403]",
    },
    KeyDoc {
        path: "auth.flows[].steps[].outcomes[].when.<$jsonpath>",
        meaning: "One body condition, as in `success_when`: the first value the JSONPath \
            finds must equal the expected value, typed as YAML reads it (text never equals a \
            number); a path that finds nothing makes it false.",
        example: r#""$.response_type": OTP_REQUIRED"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].outcomes[].extract",
        meaning: "Values to keep when this outcome is taken, as in `on_success.extract`. Not \
            allowed with `fail`.",
        example: r#"extract: { token: "$.token", session: { cookie: tn_session } }"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].outcomes[].prompt",
        meaning: "Fields to ask the user for; the answers go to the step this outcome leads \
            to, which must not be step 0 (a request for step 0 always starts a new run). An \
            empty prompt asks nothing and does not pause. Two prompts may ask for the same key \
            only when they lead to the same step, with the same `type`, `transform` and \
            `required`. Not allowed with `complete` or `fail`.",
        example: r#"prompt: [ { key: otp, label: "One-time password" } ]"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].outcomes[].next",
        meaning: "The step this outcome leads to: a step `id`, or a step index. Without it, \
            the following step, or after the last step the run completes. It may name the step \
            itself, to ask again for a rejected code; a loop of steps that never pauses for \
            the user is an error. With a prompt, the client sends the answers as that step.",
        example: "next: otp",
    },
    KeyDoc {
        path: "auth.flows[].steps[].outcomes[].complete",
        meaning: "`complete: true`: the run completes here, whatever steps follow, and the \
            values kept so far become the user's provider session. Not allowed with `prompt`, \
            `next` or `message`.",
        example: "complete: true",
    },
    KeyDoc {
        path: "auth.flows[].steps[].outcomes[].fail",
        meaning: "The step fails with an error. As text, that text is the error; as a mapping, \
            the error is the provider's text at `from`, else `message`, else the step's \
            `error_message`, else `the provider answered HTTP N`. A failed step keeps its run, \
            so the user may retry, unless `clear_session`. Messages are shown as written: a \
            placeholder in one is an error. Not allowed with `extract`, `prompt`, `next`, \
            `complete` or `message`.",
        example: r#"fail: "Invalid username or password""#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].outcomes[].fail.from",
        meaning: "A JSONPath to the provider's message, used as the error with the same rules \
            as `error_message`.",
        example: r#"from: "$.status_message""#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].outcomes[].fail.message",
        meaning: "The error when `from` is absent or finds nothing.",
        example: r#"message: "The session has expired; sign in again""#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].outcomes[].fail.clear_session",
        meaning: "Also delete the user's provider session and pending run: for a provider \
            that answers that it revoked the session.",
        example: r#"from: "$.status_message"
clear_session: true"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].outcomes[].message",
        meaning: "On an outcome that prompts: text returned in `error` alongside `next_step`, \
            to say why the user is asked (again). As text, it is shown as written (a \
            placeholder is an error); as a mapping, it is the provider's text at `from`, else \
            `fallback`, else nothing. Not allowed without a `prompt`.",
        example: r#"message: "That code was not accepted; enter the current one""#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].outcomes[].message.from",
        meaning: "A JSONPath to the provider's own text about the prompt, shown with the same \
            rules as `fail.from`: a string only, control characters removed, at most 200 \
            characters, any provider secret replaced by `***`.",
        example: r#"from: "$.message""#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].outcomes[].message.fallback",
        meaning: "The text shown when `from` is absent or finds no text; shown as written (a \
            placeholder is an error).",
        example: r#"fallback: "That code was not accepted; enter the current one""#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].samples",
        meaning: "Recorded responses of the provider to this step's request, checked at build \
            time and never emitted. The compiler runs each through the step as the server \
            would: every value the outcome it selects extracts must be found in it, optional \
            ones aside, and the error text of a response the step fails on should be (a \
            warning otherwise). A step's own samples may select any outcome, or none; list a \
            sample under an outcome (or `on_success`) to say which one it must select. With \
            `--require-samples`, every outcome needs a sample that selects it.",
        example: r#"samples:
  - name: "wrong password"
    status: 401
    headers: { Content-Type: application/json }
    body: { response_type: AUTH_ERR, message: "Invalid credentials" }"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].samples[].name",
        meaning: "A name for the sample, used by diagnostics about it (without one, its \
            `file` or its line).",
        example: r#"name: "one-time password required""#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].samples[].status",
        meaning: "The HTTP status of the recorded response.",
        example: "status: 200",
    },
    KeyDoc {
        path: "auth.flows[].steps[].samples[].headers",
        meaning: "The recorded response's headers: name to text, or to a list of texts for a \
            header sent several times (`Set-Cookie`). As at run time, names match in any case, \
            the first value counts, and cookies are read from `Set-Cookie`.",
        example: r#"headers:
  Location: "https://sso.example.tv/start?state=abc"
  Set-Cookie: ["tn_session=abc123; Path=/", "lang=en"]"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].samples[].body",
        meaning: "The recorded body, written in YAML: a mapping or a list is the JSON the \
            provider sent (plain scalars typed as YAML reads them), a scalar is the body's text \
            as written (an HTML page, a plain-text error). Not with `file`; with neither, the \
            body is empty.",
        example: r#"body: { response_type: OTP_REQUIRED }"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].samples[].file",
        meaning: "A JSON file holding the recorded body, relative to the provider file, at \
            most 1 MiB (the most the server reads of an answer). Not with `body`.",
        example: "file: samples/truenas-login-success.json",
    },
    KeyDoc {
        path: "auth.flows[].steps[].on_success.samples",
        meaning: "Recorded successful responses: each must pass the step's success test \
            (`success_status`, `success_when`) and hold every value `extract` keeps, optional \
            ones aside.",
        example: r#"samples:
  - { status: 200, body: { status_code: A0000, token: "eyJhbGciOi" } }"#,
    },
    KeyDoc {
        path: "auth.flows[].steps[].outcomes[].samples",
        meaning: "Recorded responses this outcome must take: each must select it, not an \
            earlier outcome, and hold every value it extracts, optional ones aside.",
        example: r#"samples:
  - name: "one-time password required"
    status: 200
    headers: { Set-Cookie: "tn_session=abc123; Path=/" }
    body: { response_type: OTP_REQUIRED }"#,
    },
    // ---- logout, secrets, ignored sections -----------------------------------------------
    KeyDoc {
        path: "auth.logout",
        meaning: "The provider's logout. `POST /api/providers/:id/auth/logout` sends this \
            request when the user has a session, ignores its failure, then deletes the session \
            and any pending run; without `logout` it only deletes them.",
        example: r#"logout:
  request:
    method: POST
    path: /v2/auth/logout
    headers: { Authorization: "Bearer {{stored.access_token}}" }"#,
    },
    KeyDoc {
        path: "auth.logout.request",
        meaning: "The logout request, written like a step's. It runs outside a flow: it may \
            use any `{{stored.K}}` some flow keeps in the session (not one kept with \
            `keep: run`), and no `{{input.K}}` or `{{run_id}}`.",
        example: r#"request: { method: DELETE, path: "/v1/sessions/{{stored.session_id}}" }"#,
    },
    KeyDoc {
        path: "auth.check",
        meaning: "Asks the provider whether a stored session still works. Without it, \
            `GET /api/providers/:id/auth/check` answers from the store alone. With it, a \
            stored session is checked with this request (written like logout's: stored values \
            and secrets, no input) at most once per `cache` lifetime and user; an outcome with \
            `valid: false` clears the session and the answer is `{\"valid\": false}`. A 5xx \
            or 429 answer, a timeout, a connection error or an answer no outcome takes is \
            `unreachable`. The answer's shape is the same either way.",
        example: r#"check:
  request: { method: GET, path: /v2/auth/session, headers: { Authorization: "Bearer {{stored.access_token}}" } }
  outcomes:
    - { when: { status: 200 }, valid: true }
    - { when: { status: [401, 403] }, valid: false }
  cache: 60s"#,
    },
    KeyDoc {
        path: "auth.check.outcomes",
        meaning: "What each answer says, tried in order as a step's outcomes are (`when`, \
            `samples`); each must decide with `valid` (`check-undecided`).",
        example: r#"outcomes:
  - { when: { status: 200 }, valid: true }
  - { when: { status: 401 }, valid: false }"#,
    },
    KeyDoc {
        path: "auth.check.request",
        meaning: "The request that asks the provider about the session, written like a step's. \
            It runs outside any flow, on the session: it may use `{{stored.K}}` that some flow \
            keeps in the session and `{{secret.K}}`, and no `{{input.K}}`, `{{run_id}}` or \
            value kept with `keep: run`.",
        example: r#"request: { method: GET, path: /v2/auth/session, headers: { Authorization: "Bearer {{stored.access_token}}" } }"#,
    },
    KeyDoc {
        path: "auth.check.samples",
        meaning: "Recorded answers to the check request, whichever outcome they select, \
            checked at build time as a step's samples are.",
        example: r#"samples: [ { name: revoked, status: 401, body: { error: "session ended" } } ]"#,
    },
    KeyDoc {
        path: "auth.check.outcomes[].when",
        meaning: "When this outcome is chosen: JSONPath conditions and/or `status`, as a \
            step's outcomes have them. No `when`: every answer.",
        example: "when: { status: [401, 403] }",
    },
    KeyDoc {
        path: "auth.check.outcomes[].samples",
        meaning: "Recorded answers this outcome must select (checked at build time).",
        example: r#"samples: [ { name: active, status: 200, body: { active: true } } ]"#,
    },
    KeyDoc {
        path: "auth.check.outcomes[].valid",
        meaning: "`true`: the session works. `false`: it ended at the provider; the stored \
            session (and any pending run) is cleared.",
        example: "valid: false",
    },
    KeyDoc {
        path: "auth.check.cache",
        meaning: "How long a `valid` answer is reused before the provider is asked again, per \
            user: whole seconds (`90`) or a number with `s`, `m` or `h`; between 1s and 60m \
            (`check-cache-bounds`). Kept in the server process's memory.",
        example: "cache: 5m",
    },
    KeyDoc {
        path: "auth.check.unreachable",
        meaning: "The answer when the provider cannot say (not reached, a 5xx or 429, an \
            answer no outcome takes): `valid` (the default: an outage is not a revocation) or \
            `invalid`. Either way the stored session is kept.",
        example: "unreachable: invalid",
    },
    KeyDoc {
        path: "auth.logout.on_relogin",
        meaning: "Whether a new login logs out the provider session it replaces (default \
            `true`). When a user who has a session completes a flow again, the server first \
            sends this logout request with the old session's values: best effort, logged, \
            never failing the new login. It is skipped for a flow that reads the session (a \
            refresh continues it) and when every value the logout request reads is unchanged \
            (the provider answered with the same session). `false`: the old session is \
            replaced without a logout, for a provider whose logout ends every session of the \
            account.",
        example: "on_relogin: false",
    },
    KeyDoc {
        path: "secrets",
        meaning: "The provider's secrets, read from the environment once when the server \
            starts and used as `{{secret.K}}`. `otvi serve` refuses to start when one is unset \
            or empty, naming the provider and the variable. Secrets are never logged, stored or \
            returned: a provider that echoes one gets it replaced by `***`. An undeclared \
            `secret.K` is an error; a declared secret no request uses, or one sent in a path or \
            query string, is a warning.",
        example: r#"secrets:
  api_key: { env: INDEE_API_KEY }"#,
    },
    KeyDoc {
        path: "secrets.<name>",
        meaning: "One secret: its name, as `{{secret.K}}` reads it (letters, digits and `_`, \
            not starting with a digit), and where its value comes from.",
        example: "api_key: { env: INDEE_API_KEY }",
    },
    KeyDoc {
        path: "secrets.<name>.env",
        meaning: "The environment variable holding the secret's value.",
        example: "env: INDEE_API_KEY",
    },
    KeyDoc {
        path: "channels",
        meaning: "A section of the older interpreter's format (channel browsing). This server \
            handles authentication only: the section is accepted and ignored with a warning, an \
            error with `--deny-warnings`.",
        example: r#"channels:
  list: { method: GET, path: /v1/channels }"#,
    },
    KeyDoc {
        path: "playback",
        meaning: "A section of the older interpreter's format (streaming), accepted and \
            ignored with a warning, an error with `--deny-warnings`.",
        example: r#"playback:
  stream: { method: GET, path: /v1/play }"#,
    },
];

/// What a transform does, for each value of a field's `transform` in the schema.
pub const TRANSFORMS: &[(&str, &str)] = &[(
    "base64",
    "The value is encoded in standard base64, with padding, before it is substituted; \
     `{{input.K}}` then stands for the encoded value.",
)];

/// Whether a key must be present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Required {
    Yes,
    No,
    /// Required under a condition on a sibling key, and not allowed otherwise: the condition.
    When(String),
}

/// How a key is named in its mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyName {
    /// A fixed name.
    Fixed(String),
    /// Any name matching this pattern (`patternProperties`).
    Pattern(String),
    /// Any name (`additionalProperties`), within `propertyNames` if the mapping has it.
    Any,
}

/// One key of the language, as the schema defines it.
pub struct Key<'s> {
    pub path: String,
    /// The path of the mapping that holds the key, `""` at the top level.
    pub parent: String,
    pub name: KeyName,
    /// The key's value.
    pub schema: &'s Value,
    /// The schema of the mapping holding the key.
    pub parent_schema: &'s Value,
    pub required: Required,
    /// Its own keys are documented at this path (`SAME_AS`) and not listed again.
    pub same_as: Option<&'static str>,
}

/// A mapping whose keys the reference lists.
pub struct Section {
    pub path: String,
    /// The key whose value the mapping is (`None` at the top level).
    pub owner: Option<String>,
}

/// Every key of the language and every mapping holding keys, in the schema's order (the order
/// of the compiler's key lists), depth first.
pub struct Walk<'s> {
    pub keys: Vec<Key<'s>>,
    pub sections: Vec<Section>,
}

/// Walks `schema` (`schema::schema()`).
pub fn walk(schema: &Value) -> Walk<'_> {
    let mut w = Walk {
        keys: Vec::new(),
        sections: Vec::new(),
    };
    w.mapping("", schema);
    w
}

/// Whether a value has keys of its own, directly or as an item or an alternative: then the
/// entries of a mapping of names holding such values are listed as keys (`<name>`).
fn has_keys(s: &Value) -> bool {
    s.get("properties").is_some()
        || s.get("patternProperties").is_some()
        || s.get("items").is_some_and(has_keys)
        || s.get("oneOf")
            .and_then(Value::as_array)
            .is_some_and(|alts| alts.iter().any(has_keys))
}

fn join(parent: &str, segment: &str) -> String {
    if parent.is_empty() {
        segment.to_string()
    } else {
        format!("{parent}.{segment}")
    }
}

/// The path segment standing for a `patternProperties` key.
fn pattern_segment(pattern: &str) -> String {
    match pattern {
        "^\\$" => "<$jsonpath>".into(),
        p => format!("<{p}>"),
    }
}

impl<'s> Walk<'s> {
    fn mapping(&mut self, path: &str, m: &'s Value) {
        if !self.sections.iter().any(|s| s.path == path) {
            let owner = (!path.is_empty()).then(|| path.trim_end_matches("[]").to_string());
            self.sections.push(Section {
                path: path.to_string(),
                owner,
            });
        }
        let required: Vec<&str> = m
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = m.get("properties").and_then(Value::as_object) {
            for (name, s) in props {
                let req = if required.contains(&name.as_str()) {
                    Required::Yes
                } else {
                    conditional(m, name).unwrap_or(Required::No)
                };
                self.key(path, name, KeyName::Fixed(name.clone()), s, m, req);
            }
        }
        if let Some(pats) = m.get("patternProperties").and_then(Value::as_object) {
            for (p, s) in pats {
                let seg = pattern_segment(p);
                self.key(path, &seg, KeyName::Pattern(p.clone()), s, m, Required::No);
            }
        }
        if let Some(ap) = m.get("additionalProperties").filter(|ap| has_keys(ap)) {
            self.key(path, "<name>", KeyName::Any, ap, m, Required::No);
        }
    }

    fn key(
        &mut self,
        parent: &str,
        segment: &str,
        name: KeyName,
        schema: &'s Value,
        parent_schema: &'s Value,
        required: Required,
    ) {
        let path = join(parent, segment);
        // The same key in two alternatives of a `oneOf`: listed once.
        if self.keys.iter().any(|k| k.path == path) {
            return;
        }
        let same_as = SAME_AS.iter().find(|(p, _)| *p == path).map(|(_, t)| *t);
        self.keys.push(Key {
            path: path.clone(),
            parent: parent.to_string(),
            name,
            schema,
            parent_schema,
            required,
            same_as,
        });
        if same_as.is_none() {
            self.value(&path, schema);
        }
    }

    /// The keys inside a key's value: its own, its items', its alternatives'.
    fn value(&mut self, path: &str, s: &'s Value) {
        let has_keys = s.get("properties").is_some()
            || s.get("patternProperties").is_some()
            || s.get("additionalProperties").is_some_and(has_keys);
        if has_keys {
            self.mapping(path, s);
        }
        if let Some(items) = s.get("items") {
            self.value(&format!("{path}[]"), items);
        }
        for alt in s
            .get("oneOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.value(path, alt);
        }
    }
}

/// `if: { properties: { type: { enum: [link, info] } } }, then: { required: [value] }`:
/// `value` is required when `type` is one of those.
fn conditional(m: &Value, name: &str) -> Option<Required> {
    let then = m.pointer("/then/required")?.as_array()?;
    if !then.iter().any(|v| v == name) {
        return None;
    }
    let (field, cond) = m.pointer("/if/properties")?.as_object()?.iter().next()?;
    let values: Vec<String> = cond
        .get("enum")?
        .as_array()?
        .iter()
        .map(|v| format!("`{}`", scalar(v)))
        .collect();
    Some(Required::When(format!(
        "when `{field}` is {}",
        or_list(&values)
    )))
}

/// The documentation of `path`, if any.
pub fn doc(path: &str) -> Option<&'static KeyDoc> {
    KEYS.iter().find(|d| d.path == path)
}

/// Keys of the language without an entry in `KEYS`.
pub fn undocumented(schema: &Value) -> Vec<String> {
    walk(schema)
        .keys
        .into_iter()
        .filter(|k| doc(&k.path).is_none())
        .map(|k| k.path)
        .collect()
}

/// Entries of `KEYS` (and `SAME_AS`) naming no key of the language, and entries given twice.
pub fn stale(schema: &Value) -> Vec<String> {
    let w = walk(schema);
    let known = |p: &str| w.keys.iter().any(|k| k.path == p);
    let mut out: Vec<String> = KEYS
        .iter()
        .filter(|d| !known(d.path))
        .map(|d| d.path.to_string())
        .collect();
    for (i, d) in KEYS.iter().enumerate() {
        if KEYS[..i].iter().any(|e| e.path == d.path) {
            out.push(format!("{} (documented twice)", d.path));
        }
    }
    for (from, to) in SAME_AS {
        for p in [from, to] {
            if !known(p) {
                out.push(format!("{p} (in SAME_AS)"));
            }
        }
    }
    out
}

/// The anchor of a key's entry on the page.
pub fn anchor(path: &str) -> String {
    slug("k", path)
}

fn section_anchor(path: &str) -> String {
    if path.is_empty() {
        "s-top-level".into()
    } else {
        slug("s", path)
    }
}

fn slug(prefix: &str, path: &str) -> String {
    let mut s = format!("{prefix}-");
    for c in path.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') {
            s.push('-');
        }
    }
    s.trim_end_matches('-').to_string()
}

/// `text` broken into lines of at most `WIDTH` characters where it has spaces, never before a
/// word that would start a Markdown block (a list item, a heading, a quote, a table row).
fn wrap(text: &str) -> String {
    const WIDTH: usize = 96;
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let starts_block = word.starts_with(['-', '+', '*', '#', '>', '|', '='])
            || word
                .trim_end_matches(['.', ')'])
                .chars()
                .all(|c| c.is_ascii_digit())
                && word.ends_with(['.', ')']);
        if !line.is_empty()
            && line.chars().count() + 1 + word.chars().count() > WIDTH
            && !starts_block
        {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out
}

/// A JSON scalar as YAML would show it.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The type of a value, in the words of YAML: string, integer, mapping, list of …
pub fn type_name(s: &Value) -> String {
    if let Some(c) = s.get("const") {
        return format!("`{}`", scalar(c));
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return if e.iter().all(Value::is_string) {
            "string".into()
        } else {
            "scalar".into()
        };
    }
    if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
        let names: Vec<String> = alts.iter().map(type_name).collect();
        return or_list(&names);
    }
    match s.get("type") {
        Some(Value::String(t)) => one_type(t, s),
        Some(Value::Array(ts)) => {
            let names: Vec<String> = ts
                .iter()
                .filter_map(Value::as_str)
                .map(|t| one_type(t, s))
                .collect();
            or_list(&names)
        }
        _ if s.get("properties").is_some() => "mapping".into(),
        _ => "any".into(),
    }
}

fn one_type(t: &str, s: &Value) -> String {
    match t {
        "array" => format!(
            "list of {}",
            plural(&s.get("items").map_or_else(|| "any".into(), type_name))
        ),
        "object" => match s.get("additionalProperties") {
            Some(ap)
                if ap.is_object()
                    && s.get("properties").is_none()
                    && s.get("patternProperties").is_none() =>
            {
                format!("mapping of names to {}", plural(&type_name(ap)))
            }
            _ => "mapping".into(),
        },
        other => other.into(),
    }
}

fn plural(t: &str) -> String {
    let words: Vec<String> = t
        .split(" or ")
        .map(|w| match w {
            "string" | "integer" | "mapping" | "boolean" | "number" => format!("{w}s"),
            "any" => "any values".into(),
            w if w.starts_with("list of ") => format!("lists{}", &w[4..]),
            other => other.into(),
        })
        .collect();
    or_list(&words)
}

/// Patterns, ranges, sizes and formats of a value, its items' and its alternatives'.
fn constraints(s: &Value, out: &mut Vec<String>) {
    let mut add = |c: String| {
        if !out.contains(&c) {
            out.push(c);
        }
    };
    if let Some(p) = s.get("pattern").and_then(Value::as_str) {
        add(format!("matches `{p}`"));
    }
    if let Some(p) = s.pointer("/propertyNames/pattern").and_then(Value::as_str) {
        add(format!("names match `{p}`"));
    }
    match (s.get("minimum"), s.get("maximum")) {
        (Some(lo), Some(hi)) => add(format!("from {lo} to {hi}")),
        (Some(lo), None) => add(format!("at least {lo}")),
        (None, Some(hi)) => add(format!("at most {hi}")),
        (None, None) => {}
    }
    if let Some(n) = s.get("minItems").and_then(Value::as_u64) {
        add(format!(
            "at least {n} item{}",
            if n == 1 { "" } else { "s" }
        ));
    }
    if let Some(f) = s.get("format").and_then(Value::as_str) {
        add(format!("format `{f}`"));
    }
    if let Some(items) = s.get("items") {
        constraints(items, out);
    }
    for alt in s
        .get("oneOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        constraints(alt, out);
    }
}

/// The schema's own descriptions of a value and of its alternatives (said of which).
fn notes(s: &Value, out: &mut Vec<String>) {
    let mut add = |d: String| {
        if !out.contains(&d) {
            out.push(d);
        }
    };
    if let Some(d) = s.get("description").and_then(Value::as_str) {
        add(d.to_string());
    }
    for alt in s
        .get("oneOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(d) = alt.get("description").and_then(Value::as_str) {
            add(format!("as a {}: {d}", type_name(alt)));
        }
    }
}

fn required_text(r: &Required) -> String {
    match r {
        Required::Yes => "yes".into(),
        Required::No => "no".into(),
        Required::When(cond) => format!("{cond} (and not allowed otherwise)"),
    }
}

fn default_text(s: &Value) -> String {
    s.get("default")
        .map_or_else(|| "none".into(), |d| format!("`{}`", scalar(d)))
}

fn allowed_text(s: &Value) -> Option<String> {
    let values: Vec<String> = s
        .get("enum")
        .and_then(Value::as_array)?
        .iter()
        .map(|v| format!("`{}`", scalar(v)))
        .collect();
    Some(values.join(", "))
}

/// `{{input.K}}` and the rest: one value of each kind of placeholder, with `K` for a name.
pub fn placeholders() -> Vec<Var> {
    vec![
        Var::Input("K".into()),
        Var::Stored("K".into()),
        Var::Secret("K".into()),
        Var::Uuid,
        Var::UtcNow,
        Var::UtcDate,
        Var::RunId,
    ]
}

/// What a placeholder stands for, and where it may be used. The `match` has no catch-all, so a
/// new kind of placeholder does not compile until it is documented here.
pub fn placeholder_doc(v: &Var) -> (&'static str, &'static str) {
    match v {
        Var::Input(_) => (
            "The value of flow input `K`, or of field `K` a prompt asked for earlier in the run, \
             after its `transform`. The data-flow check proves it is defined on every path into \
             the step.",
            "flow steps",
        ),
        Var::Stored(_) => (
            "A value an earlier step of this run extracted as `K`, or, when no earlier step \
             does but some flow of the provider does, a value of the user's provider session \
             (a step whose session lacks it fails before sending anything).",
            "flow steps, logout",
        ),
        Var::Secret(_) => (
            "The provider secret `K` declared under `secrets`, read from the environment when \
             the server starts.",
            "everywhere but a display field's `value`",
        ),
        Var::Uuid => (
            "A new UUID v4 for each request sent (the same value where it is repeated within \
             that request).",
            "everywhere",
        ),
        Var::UtcNow => ("The UTC time, as `YYYYMMDDTHHMMSS`.", "everywhere"),
        Var::UtcDate => ("The UTC date, as `YYYYMMDD`.", "everywhere"),
        Var::RunId => (
            "One UUID v4 per run of a flow, the same in each of its steps and kept with the \
             pending run: a correlation id.",
            "flow steps (not `defaults.headers` or logout, which run outside a flow)",
        ),
    }
}

/// What a field type is for. The `match` has no catch-all, so a new type does not compile until
/// it is documented here.
pub fn field_type_doc(t: FieldType) -> &'static str {
    match t {
        FieldType::Text => "Free text: the default.",
        FieldType::Email => "An email address.",
        FieldType::Password => {
            "A secret the user types. Unlike other inputs it is not remembered between the \
             requests of a run: a later request whose step uses it must send it again. Sending \
             it in a path or query string is a warning."
        }
        FieldType::Tel => "A phone number.",
        FieldType::Number => {
            "A number (`42`, `-1.5`, `1e3`). The server refuses an input that is not a JSON \
             number with 400, and a `json:` body sends a value that is only its placeholder as \
             a JSON number, not a string."
        }
        FieldType::Choice => {
            "One of the options a prompt offers, from lists the provider answered with (see \
             `options`). The API's `next_step.fields[].options` lists them, as `value` and \
             `label`; a value not among them is refused with 400, before anything is sent. \
             Only a prompt asks for it: the options come from an answer."
        }
        FieldType::Link => {
            "A link shown to the user, such as an identity provider's sign-in page: its `value` \
             must render to an absolute http(s) URL."
        }
        FieldType::Info => "Text shown to the user, from its `value`.",
    }
}

/// The page, from the compiler's own schema.
pub fn render() -> String {
    render_with(&crate::schema::schema())
}

/// The page for `schema`.
pub fn render_with(schema: &Value) -> String {
    let w = walk(schema);
    let mut md = String::new();
    let out = &mut md;
    out.push_str(HEADER);

    let _ = writeln!(out, "## Contents\n");
    let _ = writeln!(out, "- [A complete file](#a-complete-file)");
    for s in &w.sections {
        let _ = writeln!(
            out,
            "- [{}](#{})",
            section_title(&s.path),
            section_anchor(&s.path)
        );
    }
    let _ = writeln!(out, "- [Template placeholders](#template-placeholders)");
    let _ = writeln!(out, "- [Field types](#field-types)");
    let _ = writeln!(out, "- [Transforms](#transforms)\n");

    let _ = writeln!(out, "## A complete file\n");
    let _ = writeln!(
        out,
        "A provider file that uses most of the language; the compiler accepts it without a \
         warning.\n"
    );
    let _ = writeln!(out, "```yaml\n{}```\n", FULL_EXAMPLE);

    for s in &w.sections {
        section(out, &w, s);
    }

    placeholders_section(out);
    field_types_section(out, &w);
    transforms_section(out, &w);
    md
}

const HEADER: &str = "# Provider language reference

<!-- Generated from the compiler's model: `UPDATE_REFERENCE=1 cargo test -p otvi-codegen --test reference`
     rewrites this file. Edit the descriptions in codegen/src/reference.rs, not here. -->

Every key of a provider file, at every level: its path, type, whether it is required, its
default, its allowed values, what it means, and an example. Types, required keys, defaults and
allowed values are read from the compiler's own JSON Schema (`otvi-codegen schema`), which is
built from the key lists the compiler accepts, so this page cannot disagree with it; a test
fails when a key has no description here. [The provider language](provider-language.md)
explains the language as a whole: how runs, prompts and outcomes behave, and every rule the
compiler checks.

Paths: `a.b` is key `b` of mapping `a`; `a[]` an item of list `a`; `<name>` any entry of a
mapping of names; `<$jsonpath>` a condition whose key is a JSONPath (starting with `$`).
A key not listed is an error, with a \"did you mean\" hint when one is close.

";

fn section_title(path: &str) -> String {
    if path.is_empty() {
        "Top level".into()
    } else {
        format!("`{path}`")
    }
}

fn section(out: &mut String, w: &Walk<'_>, s: &Section) {
    let keys: Vec<&Key<'_>> = w.keys.iter().filter(|k| k.parent == s.path).collect();
    let _ = writeln!(out, "<a id=\"{}\"></a>\n", section_anchor(&s.path));
    let _ = writeln!(out, "## {}\n", section_title(&s.path));
    match &s.owner {
        None => {
            let _ = writeln!(out, "The keys of a provider file.\n");
        }
        Some(owner) => {
            let item = if s.path.ends_with("[]") {
                "each item of "
            } else {
                ""
            };
            let alt = match w.keys.iter().find(|k| &k.path == owner) {
                Some(k) if s.path == *owner && k.schema.get("oneOf").is_some() => {
                    " when it is a mapping"
                }
                _ => "",
            };
            let also: Vec<String> = SAME_AS
                .iter()
                .filter(|(_, to)| to == owner)
                .map(|(from, _)| format!("[`{from}`](#{})", anchor(from)))
                .collect();
            let mut intro = format!("The keys of {item}[`{owner}`](#{}){alt}", anchor(owner));
            if !also.is_empty() {
                let _ = write!(intro, "; the same keys at {}", also.join(", "));
            }
            let _ = writeln!(out, "{}.\n", wrap(&intro));
        }
    }
    let _ = writeln!(out, "| key | type | required | default |");
    let _ = writeln!(out, "|---|---|---|---|");
    for k in &keys {
        let _ = writeln!(
            out,
            "| [`{}`](#{}) | {} | {} | {} |",
            k.path,
            anchor(&k.path),
            type_name(k.schema),
            required_text(&k.required),
            default_text(k.schema)
        );
    }
    out.push('\n');
    for k in keys {
        entry(out, k);
    }
}

/// What the reference states first about a key: its type, whether it is required, its
/// default, and its allowed values if it has a list of them (the language server's hovers say
/// the same).
pub fn facts(k: &Key<'_>) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("Type", type_name(k.schema)),
        ("Required", required_text(&k.required)),
        ("Default", default_text(k.schema)),
    ];
    if let Some(a) = allowed_text(k.schema) {
        out.push(("Allowed values", a));
    }
    out
}

fn entry(out: &mut String, k: &Key<'_>) {
    let _ = writeln!(out, "<a id=\"{}\"></a>\n", anchor(&k.path));
    let _ = writeln!(out, "### `{}`\n", k.path);
    for (label, text) in facts(k) {
        let _ = writeln!(out, "- **{label}:** {text}");
    }
    let mut cs = Vec::new();
    match &k.name {
        KeyName::Pattern(p) => cs.push(format!("names match `{p}`")),
        KeyName::Any => {
            if let Some(p) = k
                .parent_schema
                .pointer("/propertyNames/pattern")
                .and_then(Value::as_str)
            {
                cs.push(format!("names match `{p}`"));
            }
        }
        KeyName::Fixed(_) => {}
    }
    if let (KeyName::Fixed(name), Some(together)) = (
        &k.name,
        k.parent_schema
            .pointer("/not/required")
            .and_then(Value::as_array),
    ) {
        if together.iter().any(|t| t == name.as_str()) {
            let others: Vec<String> = together
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| t != name)
                .map(|t| format!("`{t}`"))
                .collect();
            cs.push(format!("not together with {}", or_list(&others)));
        }
    }
    constraints(k.schema, &mut cs);
    if !cs.is_empty() {
        let _ = writeln!(out, "- **Constraints:** {}", cs.join("; "));
    }
    let mut ns = Vec::new();
    notes(k.schema, &mut ns);
    if !ns.is_empty() {
        let _ = writeln!(out, "- **Schema note:** {}", ns.join("; "));
    }
    if let Some(to) = k.same_as {
        let _ = writeln!(
            out,
            "- **Keys:** the same as [`{to}`](#{}), documented there",
            anchor(to)
        );
    }
    let also: Vec<String> = SAME_AS
        .iter()
        .filter(|(_, to)| *to == k.path)
        .map(|(from, _)| format!("[`{from}`](#{})", anchor(from)))
        .collect();
    if !also.is_empty() {
        let _ = writeln!(out, "- **Same keys at:** {}", also.join(", "));
    }
    out.push('\n');
    match doc(&k.path) {
        Some(d) => {
            let _ = writeln!(out, "{}\n", wrap(d.meaning));
            let _ = writeln!(out, "```yaml\n{}\n```\n", d.example.trim_end());
        }
        None => {
            let _ = writeln!(
                out,
                "*Not documented yet: add it to `KEYS` in codegen/src/reference.rs.*\n"
            );
        }
    }
}

fn placeholders_section(out: &mut String) {
    let _ = writeln!(out, "## Template placeholders\n");
    let intro = "A template is a string with `{{name}}` placeholders (spaces inside the braces \
         allowed): a request's `path`, `params` and `headers` values and `body`, \
         `defaults.headers` values, and a display field's `value`. Each value is encoded for \
         where it stands (JSON string, form, path segment, query, header), decided at build \
         time. `{{extract.K}}` is an error that points to `{{stored.K}}`; `K` is a name: \
         letters, digits and `_`, not starting with a digit.";
    let _ = writeln!(out, "{}\n", wrap(intro));
    let _ = writeln!(out, "| placeholder | value | available in |");
    let _ = writeln!(out, "|---|---|---|");
    for v in placeholders() {
        let (meaning, place) = placeholder_doc(&v);
        let _ = writeln!(out, "| `{}` | {meaning} | {place} |", v.display());
    }
    out.push('\n');
}

/// The key path where fields' `type` and `transform` are documented.
fn field_key<'a, 's>(w: &'a Walk<'s>, name: &str) -> Option<&'a Key<'s>> {
    w.keys
        .iter()
        .find(|k| k.name == KeyName::Fixed(name.into()) && k.parent.ends_with("inputs[]"))
}

fn field_types_section(out: &mut String, w: &Walk<'_>) {
    let _ = writeln!(out, "## Field types\n");
    if let Some(k) = field_key(w, "type") {
        let intro = format!(
            "The values of a field's [`type`](#{}). Collected fields are filled in by the \
             user; display fields are shown in a prompt, with a `value`, and take no \
             `required` or `transform`.",
            anchor(&k.path)
        );
        let _ = writeln!(out, "{}\n", wrap(&intro));
    }
    let _ = writeln!(out, "| type | kind | meaning |");
    let _ = writeln!(out, "|---|---|---|");
    for (name, t) in FieldType::ALL {
        let kind = if t.is_display() {
            "display"
        } else {
            "collected"
        };
        let _ = writeln!(out, "| `{name}` | {kind} | {} |", field_type_doc(t));
    }
    out.push('\n');
}

/// The transforms the schema allows.
pub fn transform_names(schema: &Value) -> Vec<String> {
    let w = walk(schema);
    field_key(&w, "transform")
        .and_then(|k| k.schema.get("enum"))
        .and_then(Value::as_array)
        .map(|e| e.iter().map(scalar).collect())
        .unwrap_or_default()
}

fn transforms_section(out: &mut String, w: &Walk<'_>) {
    let _ = writeln!(out, "## Transforms\n");
    let Some(k) = field_key(w, "transform") else {
        return;
    };
    let _ = writeln!(
        out,
        "The values of a field's [`transform`](#{}).\n",
        anchor(&k.path)
    );
    let _ = writeln!(out, "| transform | meaning |");
    let _ = writeln!(out, "|---|---|");
    for name in k
        .schema
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = scalar(name);
        let meaning = TRANSFORMS
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("*Not documented yet: add it to `TRANSFORMS`.*", |(_, m)| m);
        let _ = writeln!(out, "| `{name}` | {meaning} |");
    }
}
