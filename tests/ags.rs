//! OpenTV AGS sign-on (providers/opentv.yaml) end to end against the AGS mock: one account
//! (201), several accounts (300, then subsequentSignOn with the User-Token), a wrong
//! password, and an account that is not among the options (refused unsent, then a listed one).

mod common;

use common::*;
use otvi_mocks::ags::{AgsMock, AUTH_SERVICE_ID, LINKED_ACCOUNTS, ONE_ACCOUNT, SEVERAL_ACCOUNTS};
use serde_json::{json, Value};

const SIGN_ON: &str = "/ags/signOn";
const SUBSEQUENT: &str = "/ags/subsequentSignOn";

async fn setup() -> (AgsMock, TestServer) {
    let mock = AgsMock::start().await.unwrap();
    let server = TestServer::start(&mock.url()).await;
    (mock, server)
}

fn sign_on(user: (&str, &str)) -> String {
    json!({"flow_id": "sign_on", "step": 0, "inputs": {"username": user.0, "password": user.1}})
        .to_string()
}

fn choose(account: &str) -> String {
    json!({"flow_id": "sign_on", "step": 1, "inputs": {"account": account}}).to_string()
}

/// The `parameters` array of a received AGS body, as name -> value pairs.
fn parameters(body: &Value) -> Vec<(String, String)> {
    body["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn choose_prompt(error: Option<&str>) -> Value {
    json!({
        "success": false,
        "session_id": null,
        "next_step": {
            "step_index": 1,
            "step_name": "Choose Account",
            "fields": [
                {
                    "key": "account",
                    "label": "Account to use",
                    "field_type": "choice",
                    "required": true,
                    "options": [
                        {"value": LINKED_ACCOUNTS[0], "label": "Parents"},
                        {"value": LINKED_ACCOUNTS[1], "label": "Kids"},
                    ],
                },
            ],
        },
        "user_name": null,
        "error": error,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_signs_on_with_201_and_keeps_the_tokens() {
    let (mock, s) = setup().await;
    let t = user("alice");
    let (status, body) = s.login(&t, "opentv", &sign_on(ONE_ACCOUNT)).await;
    assert_eq!(status, 200);
    assert_eq!(
        json(&body),
        json!({"success": true, "session_id": null, "next_step": null, "user_name": null, "error": null})
    );
    assert_eq!(s.check(&t, "opentv").await.1, r#"{"valid":true}"#);

    let sent = mock.received_on(SIGN_ON);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].header("x-auth-service-id"), Some(AUTH_SERVICE_ID));
    assert_eq!(
        parameters(&sent[0].json()),
        [
            ("username".to_string(), ONE_ACCOUNT.0.to_string()),
            ("password".to_string(), ONE_ACCOUNT.1.to_string()),
        ]
    );
    let correlation = sent[0].header("x-correlation-id").unwrap();
    assert!(uuid::Uuid::parse_str(correlation).is_ok(), "{correlation}");

    let session = session_of(&s, "alice", "opentv").await.unwrap();
    assert_eq!(session["access_token"], mock.issued_tokens()[0]);
    assert!(session["refresh_token"].starts_with("rt-"), "{session:?}");
    assert!(!session.contains_key("password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_accounts_answer_300_then_the_chosen_one_signs_on_with_the_user_token() {
    let (mock, s) = setup().await;
    let t = user("alice");
    let (status, body) = s.login(&t, "opentv", &sign_on(SEVERAL_ACCOUNTS)).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body), choose_prompt(None));
    assert_eq!(s.check(&t, "opentv").await.1, r#"{"valid":false}"#);

    let (status, body) = s.login(&t, "opentv", &choose("kids")).await;
    assert_eq!(
        (status, json(&body)["success"].clone()),
        (200, json!(true)),
        "{body}"
    );
    assert_eq!(s.check(&t, "opentv").await.1, r#"{"valid":true}"#);

    let first = &mock.received_on(SIGN_ON)[0];
    let second = mock.received_on(SUBSEQUENT);
    assert_eq!(second.len(), 1);
    assert_eq!(
        second[0].header("user-token"),
        Some(mock.issued_user_account_tokens()[0].as_str())
    );
    assert_eq!(second[0].header("x-auth-service-id"), Some(AUTH_SERVICE_ID));
    assert_eq!(
        parameters(&second[0].json()),
        [("username".to_string(), "kids".to_string())]
    );
    // `{{run_id}}`: one correlation id for the whole run.
    assert_eq!(
        second[0].header("x-correlation-id"),
        first.header("x-correlation-id")
    );
    let session = session_of(&s, "alice", "opentv").await.unwrap();
    assert_eq!(session["access_token"], mock.issued_tokens()[0]);
    assert_eq!(session["account_id"], "2002");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_and_keeps_nothing() {
    let (mock, s) = setup().await;
    let t = user("alice");
    let (status, body) = s
        .login(&t, "opentv", &sign_on((ONE_ACCOUNT.0, "not-it")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        json(&body),
        json!({"success": false, "session_id": null, "next_step": null, "user_name": null,
               "error": "Invalid username or password"})
    );
    assert_eq!(s.check(&t, "opentv").await.1, r#"{"valid":false}"#);
    assert!(session_of(&s, "alice", "opentv").await.is_none());
    let (status, _) = s.login(&t, "opentv", &choose("kids")).await;
    assert_eq!(status, 400, "no run is pending after a failed first step");
    assert!(mock.received_on(SUBSEQUENT).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_not_offered_is_refused_unsent_and_a_listed_one_signs_on() {
    let (mock, s) = setup().await;
    let t = user("alice");
    s.login(&t, "opentv", &sign_on(SEVERAL_ACCOUNTS)).await;

    // Not among the options, or a label instead of a value: 400, and the gateway is not asked.
    for wrong in ["neighbours", "Kids", "kids ", "[\"kids\"]"] {
        let (status, body) = s.login(&t, "opentv", &choose(wrong)).await;
        assert_eq!(status, 400, "{wrong}: {body}");
        assert_eq!(
            json(&body)["error"],
            "input `account` must be one of the options offered"
        );
    }
    assert!(mock.received_on(SUBSEQUENT).is_empty());
    assert_eq!(s.check(&t, "opentv").await.1, r#"{"valid":false}"#);

    // The run is still waiting for a choice; a missing one is named.
    let again = json!({"flow_id": "sign_on", "step": 1, "inputs": {}}).to_string();
    let (status, body) = s.login(&t, "opentv", &again).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["error"], "missing required input `account`");

    let (status, body) = s.login(&t, "opentv", &choose("parents")).await;
    assert_eq!(
        (status, json(&body)["success"].clone()),
        (200, json!(true)),
        "{body}"
    );
    let calls = mock.received_on(SUBSEQUENT);
    assert_eq!(calls.len(), 1);
    let session = session_of(&s, "alice", "opentv").await.unwrap();
    assert_eq!(session["account_id"], "2001");
    // The lists were for the run only.
    assert!(!session.contains_key("accounts") && !session.contains_key("account_names"));
}
