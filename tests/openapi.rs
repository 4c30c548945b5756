//! `GET /api/openapi.json` describes what the server really answers: every response of every
//! endpoint below, for each status it can give, is checked against the document — the status
//! must be documented for that operation and the body must validate against its schema.

mod common;

use common::*;
use otvi_mocks::acme::{MockProvider, OTP};
use otvi_mocks::ags::{AgsMock, SEVERAL_ACCOUNTS};
use otvi_server::limits::LimitConfig;
use serde_json::{json, Value};
use std::time::Duration;

/// The document and the server it came from.
struct Doc(Value);

impl Doc {
    async fn fetch(s: &TestServer) -> Doc {
        // No token needed.
        let r = s
            .client
            .get(format!("{}/api/openapi.json", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        Doc(r.json().await.unwrap())
    }

    /// Checks one real answer against the operation `method path` (the template).
    fn conforms(&self, method: &str, path: &str, status: u16, body: &str) {
        let errors = self.violations(method, path, status, body);
        assert!(
            errors.is_empty(),
            "{method} {path} {status} does not match its schema: {errors:?}\nbody: {body}"
        );
    }

    /// What in `body` the schema of `method path status` refuses.
    fn violations(&self, method: &str, path: &str, status: u16, body: &str) -> Vec<String> {
        let op = &self.0["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        let resp = &op["responses"][status.to_string()];
        assert!(
            resp.is_object(),
            "{method} {path} answered {status}, which is not documented: {body}"
        );
        let schema = &resp["content"]["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "{method} {path} {status} has no JSON schema"
        );
        // The schema, with the document's components beside it so that its $refs resolve.
        let mut root = schema.clone();
        root["components"] = self.0["components"].clone();
        let validator = jsonschema::draft202012::new(&root).unwrap();
        let instance: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{method} {path} {status}: not JSON ({e}): {body}"));
        validator
            .iter_errors(&instance)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect()
    }
}

const LOGIN: &str = "/api/providers/{id}/auth/login";
const CHECK: &str = "/api/providers/{id}/auth/check";
const LOGOUT: &str = "/api/providers/{id}/auth/logout";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_1_with_every_route_and_the_bearer_scheme() {
    let mock = MockProvider::start().await.unwrap();
    let s = TestServer::start(&mock.url()).await;
    let doc = Doc::fetch(&s).await.0;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": "HS256 JWT with `sub` and `exp` (see `otvi token`)"})
    );
    for (path, method) in [
        ("/api/providers", "get"),
        ("/api/providers/{id}", "get"),
        (LOGIN, "post"),
        (CHECK, "get"),
        (LOGOUT, "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/api/openapi.json", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    // The API's routes need the token; health and the document do not.
    assert_eq!(
        doc["paths"][LOGIN]["post"]["security"],
        json!([{"bearer": []}])
    );
    assert!(doc["paths"]["/healthz"]["get"]["security"].is_null());
    // The seed's examples are there.
    let examples = &doc["components"]["schemas"]["LoginResponse"]["examples"];
    assert!(examples
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["next_step"]["step_name"] == "Verify OTP"));
    // Seed 000's status table, operation by operation.
    let statuses = |path: &str, method: &str| -> Vec<String> {
        doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    for code in ["200", "400", "401", "403", "404", "429", "503"] {
        assert!(
            statuses(LOGIN, "post").iter().any(|c| c == code),
            "login {code}"
        );
    }
    for code in ["200", "401", "403", "404"] {
        assert!(
            statuses(LOGOUT, "post").iter().any(|c| c == code),
            "logout {code}"
        );
        assert!(
            statuses(CHECK, "get").iter().any(|c| c == code),
            "check {code}"
        );
    }
    assert_eq!(
        doc["paths"][LOGIN]["post"]["responses"]["429"]["headers"]["Retry-After"]["schema"]["type"],
        "integer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_of_every_endpoint_matches_the_document() {
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.limits = LimitConfig {
        per_user: 2,
        per_address: 0,
        window: Duration::from_secs(900),
    };
    let s = TestServer::start_with(cfg, Some(dir)).await;
    let doc = Doc::fetch(&s).await;
    // The schemas do refuse what the seed's shapes do not allow.
    for (method, path, body) in [
        ("post", LOGIN, r#"{"success": true}"#),
        (
            "post",
            LOGIN,
            r#"{"success":false,"session_id":null,"next_step":{"step_index":1},"user_name":null,"error":null}"#,
        ),
        ("get", CHECK, r#"{"valid": "yes"}"#),
        ("get", "/api/providers", r#"[{"id": "acme"}]"#),
        (
            "get",
            "/api/providers",
            r#"[{"id":"a","name":"A","logo":null,"scope":"everyone","auth_flows":[]}]"#,
        ),
    ] {
        assert!(
            !doc.violations(method, path, 200, body).is_empty(),
            "{body}"
        );
    }
    let alice = user("alice");
    let check = |status, body: &str| doc.conforms("get", CHECK, status, body);

    // The listing and one provider: 200, 401, 403 (password change), 404.
    let (st, body) = s.send("GET", "/api/providers", Some(&alice), None).await;
    assert_eq!(st, 200);
    doc.conforms("get", "/api/providers", st, &body);
    assert!(json(&body).as_array().unwrap().len() >= 2);
    let (st, body) = s.send("GET", "/api/providers", None, None).await;
    assert_eq!(st, 401);
    doc.conforms("get", "/api/providers", st, &body);
    let mut c = claims("bob");
    c.must_change_password = true;
    let (st, body) = s.send("GET", "/api/providers", Some(&sign(&c)), None).await;
    assert_eq!(st, 403);
    doc.conforms("get", "/api/providers", st, &body);
    for (path, want) in [("/api/providers/acme", 200), ("/api/providers/nope", 404)] {
        let (st, body) = s.send("GET", path, Some(&alice), None).await;
        assert_eq!(st, want);
        doc.conforms("get", "/api/providers/{id}", st, &body);
    }
    let mut c = claims("carol");
    c.providers = Some(vec!["opentv".into()]);
    let (st, body) = s
        .send("GET", "/api/providers/acme", Some(&sign(&c)), None)
        .await;
    assert_eq!(st, 403);
    doc.conforms("get", "/api/providers/{id}", st, &body);

    // Login: a prompt, a wrong code asked again, completion, a provider's refusal.
    let phone = r#"{"flow_id":"phone_otp","step":0,"inputs":{"phone":"+15550100"}}"#;
    let (st, body) = s.login(&alice, "acme", phone).await;
    assert_eq!(
        (st, json(&body)["next_step"]["step_index"].clone()),
        (200, json!(1))
    );
    doc.conforms("post", LOGIN, st, &body);
    let code =
        |otp: &str| format!(r#"{{"flow_id":"phone_otp","step":1,"inputs":{{"otp":"{otp}"}}}}"#);
    let (st, body) = s.login(&alice, "acme", &code("000000")).await;
    assert_eq!(st, 200);
    assert!(json(&body)["error"].is_string(), "{body}");
    doc.conforms("post", LOGIN, st, &body);
    let (st, body) = s.login(&alice, "acme", &code(OTP)).await;
    assert_eq!(json(&body)["success"], true, "{body}");
    doc.conforms("post", LOGIN, st, &body);
    let (st, body) = s.check(&alice, "acme").await;
    assert_eq!(json(&body), json!({"valid": true}));
    check(st, &body);
    // 1.0 is the integer 1 in JSON and in the schema; a session id is a string or null.
    let (st, body) = s
        .login(&user("erin"), "acme", r#"{"flow_id":"email_password","step":0.0,"session_id":"x","inputs":{"email":"e@example.com","password":"pw"}}"#)
        .await;
    assert_eq!(
        (st, json(&body)["success"].clone()),
        (200, json!(true)),
        "{body}"
    );
    let dave = user("dave");
    let wrong = r#"{"flow_id":"email_password","step":0,"inputs":{"email":"d@example.com","password":"wrong"}}"#;
    let (st, body) = s.login(&dave, "acme", wrong).await;
    assert_eq!((st, json(&body)["success"].clone()), (200, json!(false)));
    doc.conforms("post", LOGIN, st, &body);

    // Login's refusals: 400 (several kinds), 401, 403, 404, 429.
    for bad in [
        "not json",
        "[]",
        r#"{"step":0}"#,
        r#"{"flow_id":"email_password","step":-1}"#,
        r#"{"flow_id":"email_password","step":7,"inputs":{}}"#,
        r#"{"flow_id":"email_password","step":0,"inputs":{"email":"a@example.com"}}"#,
        r#"{"flow_id":"email_password","step":0.5,"inputs":{}}"#,
        r#"{"flow_id":"email_password","step":0,"session_id":5}"#,
    ] {
        let (st, body) = s.login(&alice, "acme", bad).await;
        assert_eq!(st, 400, "{bad}: {body}");
        doc.conforms("post", LOGIN, st, &body);
    }
    let (st, body) = s.login("not-a-token", "acme", phone).await;
    assert_eq!(st, 401);
    doc.conforms("post", LOGIN, st, &body);
    let (st, body) = s.login(&sign(&c), "acme", phone).await;
    assert_eq!(st, 403);
    doc.conforms("post", LOGIN, st, &body);
    for (provider, body_in) in [("nope", phone), ("acme", r#"{"flow_id":"nope","step":0}"#)] {
        let (st, body) = s.login(&alice, provider, body_in).await;
        assert_eq!(st, 404);
        doc.conforms("post", LOGIN, st, &body);
    }
    let (_, _) = s.login(&dave, "acme", wrong).await;
    let r = s
        .client
        .post(format!("{}/api/providers/acme/auth/login", s.url))
        .bearer_auth(&dave)
        .body(wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0);
    doc.conforms("post", LOGIN, 429, &r.text().await.unwrap());

    // Check and logout: 200, 401, 403, 404.
    let (st, body) = s.logout(&alice, "acme").await;
    assert_eq!(json(&body), json!({"success": true}));
    doc.conforms("post", LOGOUT, st, &body);
    let (st, body) = s.check(&alice, "acme").await;
    assert_eq!(json(&body), json!({"valid": false}));
    check(st, &body);
    for (token, provider, want) in [
        ("x", "acme", 401),
        (sign(&c).as_str(), "acme", 403),
        (alice.as_str(), "nope", 404),
    ] {
        let (st, body) = s.check(token, provider).await;
        assert_eq!(st, want);
        check(st, &body);
        let (st, body) = s.logout(token, provider).await;
        assert_eq!(st, want);
        doc.conforms("post", LOGOUT, st, &body);
    }
    // A provider id that is not UTF-8 once decoded: 400 with a token, 401 without, documented
    // on every route that takes an id.
    for (method, path, template) in [
        ("get", "/api/providers/%FF", "/api/providers/{id}"),
        ("post", "/api/providers/%FF/auth/login", LOGIN),
        ("get", "/api/providers/%FF/auth/check", CHECK),
        ("post", "/api/providers/%FF/auth/logout", LOGOUT),
    ] {
        for (token, want) in [(Some(alice.as_str()), 400), (None, 401)] {
            let (st, body) = s
                .send(&method.to_uppercase(), path, token, Some("{}"))
                .await;
            assert_eq!(st, want, "{method} {path}: {body}");
            doc.conforms(method, template, st, &body);
        }
    }
    // A non-admin logging out of a global provider.
    let (st, body) = s.logout(&alice, "acme-shared").await;
    assert_eq!(st, 403);
    doc.conforms("post", LOGOUT, st, &body);

    // Health, readiness and the document itself.
    for path in ["/healthz", "/readyz", "/api/openapi.json"] {
        let (st, body) = s.send("GET", path, None, None).await;
        assert_eq!(st, 200);
        doc.conforms("get", path, st, &body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choice_fields_carry_their_options_as_documented() {
    let mock = AgsMock::start().await.unwrap();
    let s = TestServer::start(&mock.url()).await;
    let doc = Doc::fetch(&s).await;
    let body = json!({"flow_id": "sign_on", "step": 0,
        "inputs": {"username": SEVERAL_ACCOUNTS.0, "password": SEVERAL_ACCOUNTS.1}});
    let (st, answer) = s.login(&user("erin"), "opentv", &body.to_string()).await;
    let field = &json(&answer)["next_step"]["fields"][0];
    assert_eq!(field["field_type"], "choice");
    assert_eq!(
        field["options"][0],
        json!({"value": "parents", "label": "Parents"})
    );
    doc.conforms("post", LOGIN, st, &answer);
}
