//! Property tests: any string substituted into a request arrives at the provider byte for byte
//! — in a JSON string, a form body, a path segment, a query parameter, a header — or the step is
//! refused before anything is sent.
//!
//! Requests are built the way generated code builds them (`StepCx`, `need`, a template's `Part`s
//! handed to `path`, `text`, `Outbound::json_body` and `form_body`), and also by the fixture
//! provider's generated code (tests/fixtures/fixture.rs). What would go on the wire is decoded
//! the way a provider decodes it: the URL after the handling `Upstream::send` applies
//! (`reqwest::Url::parse`, then `query_pairs_mut().extend_pairs`), the path split on `/` and
//! percent-decoded, the query and form body with `form_urlencoded`, the JSON body with
//! `serde_json`. One property sends real requests through `Upstream` to a recording provider on
//! loopback.

#[rustfmt::skip]
#[allow(dead_code)]
#[path = "../../tests/fixtures/fixture.rs"]
mod fixture;

use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use otvi_runtime::request::{
    need, path, segment, text, Method, Outbound,
    Part::{Lit, Val},
    StepCx, StepError,
};
use otvi_runtime::secrets::NONE;
use otvi_server::upstream::Upstream;
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Characters that mean something somewhere in a URL, a form, JSON or HTTP, plus some
/// multi-byte ones.
const SPECIAL: &[char] = &[
    '"', '\'', '\\', '&', '=', '%', '/', '?', '#', '+', ' ', '\t', '\r', '\n', '\0', '\u{1}',
    '\u{1f}', '\u{7f}', '.', '~', ';', ':', '@', '!', '$', '(', ')', '*', ',', '[', ']', '{', '}',
    '<', '>', '|', '^', '`', '-', '_', 'a', 'Z', '0', '2', 'e', 'E', 'é', 'ß', '☃', '😀',
    '\u{200b}', '\u{2028}', '\u{feff}', '\u{fffd}', '\u{85}', '\u{a0}',
];

/// Arbitrary strings, biased towards the characters that encoders get wrong, and the values
/// that are special as a whole (dot segments, look-alike escapes).
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(prop::sample::select(SPECIAL), 0..24)
            .prop_map(|v| v.into_iter().collect::<String>()),
        3 => any::<String>(),
        1 => prop::sample::select(vec![
            "", ".", "..", "...", "%2e", "%2E%2e", ".%2E", "%", "%zz", "%25", "+", "a+b",
            " ", " lead", "trail ", "\u{0}", "a\r\nX-Admin: 1", "é",
        ])
        .prop_map(String::from),
    ]
}

/// The URL as `Upstream::send` turns an `Outbound` into one.
fn wire_url(o: &Outbound) -> reqwest::Url {
    let mut url = reqwest::Url::parse(&o.url).expect("the step's URL parses");
    if !o.query.is_empty() {
        url.query_pairs_mut()
            .extend_pairs(o.query.iter().map(|(k, v)| (*k, v.as_str())));
    }
    url
}

/// The path's segments as the provider decodes them (`None`: a segment is not UTF-8).
fn decoded_segments(path: &str) -> Option<Vec<String>> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        })
        .collect()
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// One step as generated code writes it: `POST /users/{{input.a}}/token?region={{input.a}}`,
/// header `X-Device: {{input.a}}`, and a body of `encoding`.
fn step(cx: &StepCx<'_>, encoding: Encoding) -> Result<Outbound, StepError> {
    let a = need(cx.input("a"), "a")?;
    let b = need(cx.input("b"), "b")?;
    let url = cx.url(&path(&[Lit("/users/"), Val(segment(a)?), Lit("/token")])?);
    let mut req = Outbound::new(Method::POST, url);
    req.query("region", a);
    req.query("other", &text(&[Val(b)]));
    match encoding {
        Encoding::Json => req.json_body(&[
            Lit("{\"u\": \""),
            Val(a),
            Lit("\", \"p\": \""),
            Val(b),
            Lit("\"}"),
        ]),
        Encoding::Form => req.form_body(&[Lit("username="), Val(a), Lit("&password="), Val(b)]),
    }
    Ok(req)
}

#[derive(Debug, Clone, Copy)]
enum Encoding {
    Json,
    Form,
}

fn inputs(a: &str, b: &str) -> HashMap<String, String> {
    [
        ("a".to_string(), a.to_string()),
        ("b".to_string(), b.to_string()),
    ]
    .into()
}

/// Bytes `HeaderValue` refuses: controls but tab, and DEL.
fn header_forbidden(v: &str) -> bool {
    v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// A value that encodes to a dot segment (`%` is escaped, so `%2e` is not one): the URL
/// standard resolves it away, so no URL can carry it as a segment.
fn dot_segment(v: &str) -> bool {
    v == "." || v == ".."
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// JSON string and form body: every string round-trips, and adds no key.
    #[test]
    fn bodies_carry_any_string(a in value(), b in value()) {
        // `a` is in the path too, which refuses dot segments (see below).
        prop_assume!(!dot_segment(&a));
        let (stored, ins) = (HashMap::new(), inputs(&a, &b));
        let cx = StepCx::new("https://p.example/api/", &ins, &stored, &NONE, "run");

        let json = step(&cx, Encoding::Json).unwrap().body.unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).expect("the body is JSON");
        let obj = v.as_object().expect("an object");
        prop_assert_eq!(obj.len(), 2, "{}", json);
        prop_assert_eq!(obj["u"].as_str(), Some(a.as_str()));
        prop_assert_eq!(obj["p"].as_str(), Some(b.as_str()));

        let form = step(&cx, Encoding::Form).unwrap().body.unwrap();
        prop_assert_eq!(
            query_pairs(&form),
            vec![("username".to_string(), a.clone()), ("password".to_string(), b.clone())]
        );
    }

    /// Query parameters: every string round-trips through the URL handling of `Upstream`.
    #[test]
    fn query_parameters_carry_any_string(a in value(), b in value()) {
        prop_assume!(!dot_segment(&a));
        let (stored, ins) = (HashMap::new(), inputs(&a, &b));
        let cx = StepCx::new("https://p.example/api/", &ins, &stored, &NONE, "run");
        let url = wire_url(&step(&cx, Encoding::Json).unwrap());
        prop_assert_eq!(
            query_pairs(url.query().unwrap_or_default()),
            vec![("region".to_string(), a.clone()), ("other".to_string(), b.clone())]
        );
        // What the URL's own reader says, too.
        let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
        prop_assert_eq!(pairs, vec![("region".to_string(), a), ("other".to_string(), b)]);
    }

    /// A path segment: the value stays exactly one segment and decodes to itself — except `.`
    /// and `..`, which no URL can carry as a segment (see `dot_segments_are_refused` below).
    #[test]
    fn path_segments_carry_any_string_but_dot_segments(a in value()) {
        prop_assume!(!dot_segment(&a));
        let (stored, ins) = (HashMap::new(), inputs(&a, "b"));
        let cx = StepCx::new("https://p.example/api/", &ins, &stored, &NONE, "run");
        let url = wire_url(&step(&cx, Encoding::Json).unwrap());
        prop_assert_eq!(url.host_str(), Some("p.example"));
        prop_assert_eq!(url.fragment(), None);
        prop_assert_eq!(
            decoded_segments(url.path()),
            Some(vec!["api".to_string(), "users".to_string(), a, "token".to_string()])
        );
    }

    /// Header values: sent byte for byte, or refused (always when they hold CR, LF or NUL),
    /// and nothing is added.
    #[test]
    fn header_values_are_exact_or_refused(v in value()) {
        let mut o = Outbound::new(Method::GET, "https://p.example/".into());
        match o.header("X-Device", &v) {
            Ok(()) => {
                prop_assert!(!v.contains(['\r', '\n', '\0']));
                prop_assert!(!header_forbidden(&v));
                prop_assert_eq!(o.headers.len(), 1);
                prop_assert_eq!(o.headers[0].1.as_bytes(), v.as_bytes());
            }
            Err(e) => {
                prop_assert_eq!(e, StepError::BadHeaderValue("X-Device"));
                prop_assert!(header_forbidden(&v), "{:?} refused", v);
                prop_assert!(o.headers.is_empty());
            }
        }
    }

    /// The fixture provider's generated code (tests/fixtures/fixture.yaml, flow `form_login`
    /// step `Token`): path segment, query, header and form body from the same inputs.
    #[test]
    fn generated_code_carries_any_string(user in value(), secret in value(), device in value(), region in value()) {
        prop_assume!(!dot_segment(&user));
        let ins: HashMap<String, String> = [
            ("user", &user), ("secret", &secret), ("device", &device), ("region", &region),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
        let stored = HashMap::new();
        let cx = StepCx::new("https://fixture.example/api/", &ins, &stored, &NONE, "run");
        let o = match fixture::form_login::token(&cx) {
            Ok(o) => o,
            Err(e) => {
                prop_assert_eq!(e, StepError::BadHeaderValue("X-Device"));
                prop_assert!(header_forbidden(&device));
                return Ok(());
            }
        };
        let url = wire_url(&o);
        prop_assert_eq!(
            decoded_segments(url.path()),
            Some(vec!["api".to_string(), "users".to_string(), user.clone(), "token".to_string()])
        );
        let q = query_pairs(url.query().unwrap_or_default());
        prop_assert_eq!(&q[0], &("region".to_string(), region));
        prop_assert_eq!(&q[1].0, "day");
        let dev = o.headers.iter().find(|(k, _)| *k == "X-Device").map(|(_, v)| v.as_bytes());
        prop_assert_eq!(dev, Some(device.as_bytes()));
        let form = query_pairs(o.body.as_deref().unwrap());
        prop_assert_eq!(&form[0], &("username".to_string(), user));
        prop_assert_eq!(&form[1], &("password".to_string(), secret));
        prop_assert_eq!(&form[2].0, "nonce");
        prop_assert_eq!(form.len(), 3);
    }

    /// The fixture's JSON steps (flow `mfa` step `Start`): `{"u": …, "p": …}`.
    #[test]
    fn generated_json_bodies_carry_any_string(user in value(), secret in value()) {
        let ins: HashMap<String, String> =
            [("user".to_string(), user.clone()), ("secret".to_string(), secret.clone())].into();
        let stored = HashMap::new();
        let cx = StepCx::new("https://fixture.example/api/", &ins, &stored, &NONE, "run");
        let o = fixture::mfa::start(&cx).unwrap();
        let v: serde_json::Value = serde_json::from_str(o.body.as_deref().unwrap()).unwrap();
        prop_assert_eq!(v, serde_json::json!({ "u": user, "p": secret }));
    }
}

/// What the recording provider saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    uri: String,
    device: Option<Vec<u8>>,
    body: Vec<u8>,
}

/// A provider on loopback that keeps the last request it was sent.
async fn recording_provider() -> (String, Arc<Mutex<Option<Seen>>>) {
    let seen = Arc::new(Mutex::new(None));
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let log = log.clone();
        async move {
            *log.lock().unwrap() = Some(Seen {
                uri: uri.to_string(),
                device: headers.get("x-device").map(|v| v.as_bytes().to_vec()),
                body: body.to_vec(),
            });
            "{}"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

/// End to end: requests sent by `Upstream` to a provider on loopback arrive with every value
/// intact. A header value loses its leading and trailing spaces and tabs on the way: HTTP
/// defines them as not part of the value (RFC 9110 §5.5), and the provider's HTTP parser
/// strips them.
#[test]
fn values_arrive_at_the_provider_intact() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (base, seen) = rt.block_on(recording_provider());
    let upstream = Upstream::new(Duration::from_secs(5));
    let config = ProptestConfig::with_cases(256);
    proptest!(config, |(a in value(), b in value(), json in any::<bool>())| {
        prop_assume!(!dot_segment(&a));
        let (stored, ins) = (HashMap::new(), inputs(&a, &b));
        let cx = StepCx::new(&base, &ins, &stored, &NONE, "run");
        let encoding = if json { Encoding::Json } else { Encoding::Form };
        let mut o = step(&cx, encoding).unwrap();
        if o.header("X-Device", &b).is_err() {
            prop_assert!(header_forbidden(&b));
            return Ok(());
        }
        *seen.lock().unwrap() = None;
        let reply = rt.block_on(upstream.send(o));
        prop_assert!(reply.is_ok(), "{:?}", reply.err());
        let got = seen.lock().unwrap().take().expect("the provider saw the request");

        let (path, query) = got.uri.split_once('?').expect("a query");
        prop_assert_eq!(
            decoded_segments(path),
            Some(vec!["api".to_string(), "users".to_string(), a.clone(), "token".to_string()])
        );
        prop_assert_eq!(
            query_pairs(query),
            vec![("region".to_string(), a.clone()), ("other".to_string(), b.clone())]
        );
        let trimmed = b.trim_matches([' ', '\t']);
        prop_assert_eq!(got.device.as_deref(), Some(trimmed.as_bytes()));
        if json {
            let v: serde_json::Value = serde_json::from_slice(&got.body).expect("JSON");
            prop_assert_eq!(v, serde_json::json!({ "u": a, "p": b }));
        } else {
            prop_assert_eq!(
                query_pairs(std::str::from_utf8(&got.body).expect("UTF-8")),
                vec![("username".to_string(), a), ("password".to_string(), b)]
            );
        }
    });
}

/// A value that is a whole dot segment (`.` or `..`) cannot be carried: the URL standard, which
/// `reqwest::Url` follows, resolves it away (`/users/../token` would reach the provider as
/// `/token`). It is refused before anything is sent, as the client's fault (HTTP 400).
#[test]
fn dot_segments_are_refused() {
    for v in [".", ".."] {
        let (stored, ins) = (HashMap::new(), inputs(v, "b"));
        let cx = StepCx::new("https://p.example/api/", &ins, &stored, &NONE, "run");
        let err = step(&cx, Encoding::Json).unwrap_err();
        assert!(matches!(err, StepError::DotPathSegment), "{v:?}: {err}");
        assert!(err.is_bad_request());
    }
}
