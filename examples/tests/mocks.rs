//! The mocks over real HTTP: statuses, bodies, cookies and what each mock records.

use otvi_mocks::{acme, ags, indee, truenas};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

// ---------------------------------------------------------------- acme

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_login_and_logout() {
    let mock = acme::MockProvider::start().await.unwrap();
    let a = send(
        client()
            .post(format!("{}/v2/auth/login", mock.url()))
            .json(&json!({"email": "jo@example.com", "password": "pw", "device_id": "d"})),
    )
    .await;
    assert_eq!(a.status, 200);
    let token = a.body["data"]["access_token"].as_str().unwrap().to_string();
    assert_eq!(mock.issued_tokens(), vec![token.clone()]);
    assert_eq!(
        a.body["data"]["user"],
        json!({"display_name": "jo", "id": "user-jo"})
    );
    let a = send(
        client()
            .post(format!("{}/v2/auth/logout", mock.url()))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!((a.status, a.body), (200, json!({"success": true})));
    let wrong = send(
        client()
            .post(format!("{}/v2/auth/login", mock.url()))
            .json(&json!({"email": "jo@example.com", "password": "wrong"})),
    )
    .await;
    assert_eq!(
        (wrong.status, wrong.body),
        (401, json!({"error": "invalid credentials"}))
    );
    assert_eq!(mock.received().len(), 3);
    assert_eq!(mock.received_on("/v2/auth/login").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_recorded_even_unrouted_ones() {
    let mock = acme::MockProvider::start().await.unwrap();
    let a = send(
        client()
            .get(format!("{}/nowhere?x=1", mock.url()))
            .header("Cookie", "a=1; b=two"),
    )
    .await;
    assert_eq!(a.status, 404);
    let a = send(client().get(format!("{}/v2/auth/login", mock.url()))).await;
    assert_eq!(a.status, 405);
    let all = mock.received();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].method, "GET");
    assert_eq!(all[0].path, "/nowhere");
    assert_eq!(all[0].query.as_deref(), Some("x=1"));
    assert_eq!(all[0].cookie("b").as_deref(), Some("two"));
    assert_eq!(all[0].cookie("c"), None);
    assert_eq!(all[0].json(), Value::Null);
    assert_eq!(all[1].path, "/v2/auth/login");
}

// ---------------------------------------------------------------- ags

const SIGN_ON: &str = "/ags/signOn";
const SUBSEQUENT: &str = "/ags/subsequentSignOn";

fn ags_params(pairs: &[(&str, &str)]) -> Value {
    json!({"parameters": pairs.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>()})
}

async fn sign_on(mock: &ags::AgsMock, user: (&str, &str)) -> Answer {
    send(
        client()
            .post(format!("{}{SIGN_ON}", mock.url()))
            .header("x-auth-service-id", ags::AUTH_SERVICE_ID)
            .json(&ags_params(&[("username", user.0), ("password", user.1)])),
    )
    .await
}

async fn subsequent(mock: &ags::AgsMock, token: Option<&str>, account: &str) -> Answer {
    let mut request = client()
        .post(format!("{}{SUBSEQUENT}", mock.url()))
        .header("x-auth-service-id", ags::AUTH_SERVICE_ID)
        .header("x-correlation-id", "corr-1")
        .header("nv-tenant-id", "nagra")
        .json(&ags_params(&[("username", account)]));
    if let Some(token) = token {
        request = request.header("User-Token", token);
    }
    send(request).await
}

fn assert_signed_on(a: &Answer, mock: &ags::AgsMock, account_id: &str) {
    assert_eq!(a.status, 201);
    let b = a.body.as_object().unwrap();
    let keys: Vec<&str> = b.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "refresh_token",
            "client_id",
            "accountId",
            "token_type",
            "expires_in",
            "refresh_expires_in",
            "fixed_refresh_expires_in"
        ]
    );
    assert_eq!(b["client_id"], "PUB_989");
    assert_eq!(b["accountId"], account_id);
    assert_eq!(b["token_type"], "bearer");
    assert_eq!(b["expires_in"], 3600);
    assert_eq!(b["refresh_expires_in"], 172800);
    assert_eq!(b["fixed_refresh_expires_in"], 2592000);
    assert!(b["refresh_token"].as_str().unwrap().starts_with("rt-"));
    let access = b["access_token"].as_str().unwrap();
    assert!(access.starts_with("at-"));
    assert_eq!(
        mock.issued_tokens().last().map(String::as_str),
        Some(access)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ags_one_account_signs_on_with_201() {
    let mock = ags::AgsMock::start().await.unwrap();
    let a = sign_on(&mock, ags::ONE_ACCOUNT).await;
    assert_signed_on(&a, &mock, "1663");
    assert_eq!(mock.issued_tokens().len(), 1);
    // Parameters are looked up by name, whatever their order.
    let a = send(
        client()
            .post(format!("{}{SIGN_ON}", mock.url()))
            .header("x-auth-service-id", ags::AUTH_SERVICE_ID)
            .json(&ags_params(&[
                ("password", ags::ONE_ACCOUNT.1),
                ("username", ags::ONE_ACCOUNT.0),
            ])),
    )
    .await;
    assert_signed_on(&a, &mock, "1663");
    let sent = mock.received_on(SIGN_ON);
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].header("x-auth-service-id"),
        Some(ags::AUTH_SERVICE_ID)
    );
    assert_eq!(
        sent[0].json(),
        ags_params(&[("username", "dave"), ("password", "dave-password")])
    );
    assert!(mock.issued_user_account_tokens().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ags_sign_on_refusals() {
    let mock = ags::AgsMock::start().await.unwrap();
    let a = sign_on(&mock, ("dave", "nope")).await;
    assert_eq!(
        (a.status, a.body),
        (
            401,
            json!({"error": "INVALID_CREDENTIALS", "message": "Invalid username or password"})
        )
    );
    let body = ags_params(&[("username", "dave"), ("password", "dave-password")]);
    let a = send(
        client()
            .post(format!("{}{SIGN_ON}", mock.url()))
            .json(&body),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["error"], "MISSING_AUTH_SERVICE_ID");
    let a = send(
        client()
            .post(format!("{}{SIGN_ON}", mock.url()))
            .header("x-auth-service-id", "other")
            .json(&body),
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(a.body["error"], "UNKNOWN_AUTH_SERVICE");
    for bad in [
        json!({"username": "dave", "password": "dave-password"}),
        json!({"parameters": {"username": "dave"}}),
        json!({"parameters": [{"name": "username"}]}),
        ags_params(&[("username", "dave")]),
        ags_params(&[("username", "dave"), ("password", "x"), ("password", "y")]),
    ] {
        let a = send(
            client()
                .post(format!("{}{SIGN_ON}", mock.url()))
                .header("x-auth-service-id", ags::AUTH_SERVICE_ID)
                .json(&bad),
        )
        .await;
        assert_eq!(
            (a.status, &a.body["error"]),
            (400, &json!("INVALID_REQUEST")),
            "{bad}"
        );
    }
    let a = send(
        client()
            .post(format!("{}{SIGN_ON}", mock.url()))
            .header("x-auth-service-id", ags::AUTH_SERVICE_ID)
            .body("not json"),
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(mock.issued_tokens().is_empty());
    assert_eq!(mock.received().len(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ags_several_accounts_300_then_not_linked_403_then_201() {
    let mock = ags::AgsMock::start().await.unwrap();
    let a = sign_on(&mock, ags::SEVERAL_ACCOUNTS).await;
    assert_eq!(a.status, 300);
    let token = a.body["userAccountToken"].as_str().unwrap().to_string();
    assert!(token.starts_with("uat-"));
    assert_eq!(mock.issued_user_account_tokens(), vec![token.clone()]);
    assert_eq!(
        a.body,
        json!({"userAccountToken": token, "accounts": [
            {"username": "parents", "accountId": "2001", "name": "Parents"},
            {"username": "kids", "accountId": "2002", "name": "Kids"},
        ]})
    );
    let listed: Vec<&str> = a.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ags::LINKED_ACCOUNTS);
    assert!(mock.issued_tokens().is_empty());

    let a = subsequent(&mock, Some(&token), "dave").await;
    assert_eq!(
        (a.status, a.body),
        (
            403,
            json!({"error": "ACCOUNT_NOT_LINKED", "message": "Account is not linked to this sign-in"})
        )
    );
    let a = subsequent(&mock, Some(&token), "kids").await;
    assert_signed_on(&a, &mock, "2002");
    assert_eq!(mock.issued_tokens().len(), 1);

    // The token was used up by the 201.
    let a = subsequent(&mock, Some(&token), "parents").await;
    assert_eq!(
        (a.status, a.body),
        (
            401,
            json!({"error": "INVALID_USER_TOKEN", "message": "Invalid or expired User-Token"})
        )
    );
    let sent = mock.received_on(SUBSEQUENT);
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[1].header("user-token"), Some(token.as_str()));
    assert_eq!(sent[1].header("x-correlation-id"), Some("corr-1"));
    assert_eq!(sent[1].header("nv-tenant-id"), Some("nagra"));
    assert_eq!(sent[1].json(), ags_params(&[("username", "kids")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ags_subsequent_sign_on_refusals() {
    let mock = ags::AgsMock::start().await.unwrap();
    let invalid =
        json!({"error": "INVALID_USER_TOKEN", "message": "Invalid or expired User-Token"});
    let a = subsequent(&mock, None, "kids").await;
    assert_eq!((a.status, &a.body), (401, &invalid));
    let a = subsequent(&mock, Some("uat-made-up"), "kids").await;
    assert_eq!((a.status, &a.body), (401, &invalid));

    let token = sign_on(&mock, ags::SEVERAL_ACCOUNTS).await.body["userAccountToken"]
        .as_str()
        .unwrap()
        .to_string();
    let a = send(
        client()
            .post(format!("{}{SUBSEQUENT}", mock.url()))
            .header("User-Token", &token)
            .json(&ags_params(&[("username", "kids")])),
    )
    .await;
    assert_eq!(a.status, 400);
    let a = send(
        client()
            .post(format!("{}{SUBSEQUENT}", mock.url()))
            .header("User-Token", &token)
            .header("x-auth-service-id", "other")
            .json(&ags_params(&[("username", "kids")])),
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(a.body["error"], "UNKNOWN_AUTH_SERVICE");
    let a = send(
        client()
            .post(format!("{}{SUBSEQUENT}", mock.url()))
            .header("User-Token", &token)
            .header("x-auth-service-id", ags::AUTH_SERVICE_ID)
            .json(&json!({"parameters": "kids"})),
    )
    .await;
    assert_eq!(a.status, 400);
    // None of that used the token up.
    let a = subsequent(&mock, Some(&token), "parents").await;
    assert_signed_on(&a, &mock, "2001");
}

// ---------------------------------------------------------------- truenas

const LOGIN_EX: &str = "/api/v2.0/auth/login_ex";
const CONTINUE: &str = "/api/v2.0/auth/login_ex_continue";
const ME: &str = "/api/v2.0/auth/me";

async fn login_ex(mock: &truenas::TrueNasMock, user: (&str, &str)) -> Answer {
    send(
        client().post(format!("{}{LOGIN_EX}", mock.url())).json(
            &json!([{"mechanism": "PASSWORD_PLAIN", "username": user.0, "password": user.1}]),
        ),
    )
    .await
}

async fn continue_otp(mock: &truenas::TrueNasMock, session: Option<&str>, otp: &str) -> Answer {
    let mut request = client()
        .post(format!("{}{CONTINUE}", mock.url()))
        .json(&json!([{"mechanism": "OTP_TOKEN", "otp_token": otp}]));
    if let Some(session) = session {
        request = request.header(
            "Cookie",
            format!("other=1; {}={session}", truenas::SESSION_COOKIE),
        );
    }
    send(request).await
}

async fn me(mock: &truenas::TrueNasMock, session: &str) -> Answer {
    send(
        client()
            .get(format!("{}{ME}", mock.url()))
            .header("Cookie", format!("{}={session}", truenas::SESSION_COOKIE)),
    )
    .await
}

/// The session id of a `Set-Cookie` answer, checking the cookie's attributes.
fn session_cookie(a: &Answer) -> String {
    let all: Vec<&str> = a
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(all.len(), 1, "{all:?}");
    let prefix = format!("{}=", truenas::SESSION_COOKIE);
    let rest = all[0].strip_prefix(&prefix).unwrap();
    let (id, attributes) = rest.split_once(';').unwrap();
    assert_eq!(attributes, " Path=/; HttpOnly; SameSite=Strict");
    assert!(!id.is_empty());
    id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truenas_plain_success_sets_an_authenticated_session_cookie() {
    let mock = truenas::TrueNasMock::start().await.unwrap();
    let a = login_ex(&mock, truenas::PLAIN).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body,
        json!({
            "response_type": "SUCCESS",
            "user_info": {"pw_name": "admin", "pw_gecos": "Administrator", "pw_uid": 950},
            "authenticator": "LEVEL_1",
        })
    );
    let id = session_cookie(&a);
    assert_eq!(mock.authenticated_sessions(), vec![id.clone()]);
    let a = me(&mock, &id).await;
    assert_eq!(
        (a.status, a.body),
        (
            200,
            json!({"pw_name": "admin", "pw_gecos": "Administrator", "pw_uid": 950})
        )
    );
    let a = me(&mock, "made-up").await;
    assert_eq!(a.status, 401);
    let a = send(client().get(format!("{}{ME}", mock.url()))).await;
    assert_eq!(a.status, 401);
    assert_eq!(mock.received_on(ME).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truenas_user_info_can_be_left_out() {
    let mock = truenas::TrueNasMock::start().await.unwrap();
    let a = send(
        client()
            .post(format!("{}{LOGIN_EX}", mock.url()))
            .json(&json!([{
                "mechanism": "PASSWORD_PLAIN",
                "username": "admin",
                "password": "admin-pass",
                "login_options": {"user_info": false},
            }])),
    )
    .await;
    assert_eq!(
        (a.status, a.body),
        (
            200,
            json!({"response_type": "SUCCESS", "user_info": null, "authenticator": "LEVEL_1"})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truenas_otp_wrong_then_right() {
    let mock = truenas::TrueNasMock::start().await.unwrap();
    let a = login_ex(&mock, truenas::TWO_FACTOR).await;
    assert_eq!(
        (a.status, &a.body),
        (
            200,
            &json!({"response_type": "OTP_REQUIRED", "username": "alice"})
        )
    );
    let id = session_cookie(&a);
    assert!(mock.authenticated_sessions().is_empty());
    assert_eq!(me(&mock, &id).await.status, 401);

    let a = continue_otp(&mock, Some(&id), "000000").await;
    assert_eq!(
        (a.status, a.body),
        (
            200,
            json!({"response_type": "OTP_REQUIRED", "username": "alice"})
        )
    );
    let a = continue_otp(&mock, Some(&id), truenas::OTP).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body,
        json!({
            "response_type": "SUCCESS",
            "user_info": {"pw_name": "alice", "pw_gecos": "Alice Example", "pw_uid": 1000},
            "authenticator": "LEVEL_2",
        })
    );
    assert!(a.headers.get("set-cookie").is_none());
    assert_eq!(mock.authenticated_sessions(), vec![id.clone()]);
    let a = me(&mock, &id).await;
    assert_eq!(
        (a.status, a.body),
        (
            200,
            json!({"pw_name": "alice", "pw_gecos": "Alice Example", "pw_uid": 1000})
        )
    );
    // The attempt is over: continuing again finds nothing to continue.
    let a = continue_otp(&mock, Some(&id), truenas::OTP).await;
    assert_eq!(
        (a.status, a.body),
        (200, json!({"response_type": "EXPIRED"}))
    );

    let sent = mock.received_on(CONTINUE);
    assert_eq!(sent.len(), 3);
    assert_eq!(
        sent[1].cookie(truenas::SESSION_COOKIE).as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        sent[1].json(),
        json!([{"mechanism": "OTP_TOKEN", "otp_token": truenas::OTP}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truenas_too_many_wrong_otps_is_auth_err() {
    let mock = truenas::TrueNasMock::start().await.unwrap();
    let id = session_cookie(&login_ex(&mock, truenas::TWO_FACTOR).await);
    for _ in 1..truenas::MAX_OTP_ATTEMPTS {
        let a = continue_otp(&mock, Some(&id), "111111").await;
        assert_eq!(
            (a.status, a.body),
            (
                200,
                json!({"response_type": "OTP_REQUIRED", "username": "alice"})
            )
        );
    }
    let a = continue_otp(&mock, Some(&id), "111111").await;
    assert_eq!(
        (a.status, a.body),
        (200, json!({"response_type": "AUTH_ERR"}))
    );
    // The session is gone: even the right code is too late.
    let a = continue_otp(&mock, Some(&id), truenas::OTP).await;
    assert_eq!(
        (a.status, a.body),
        (200, json!({"response_type": "EXPIRED"}))
    );
    assert_eq!(me(&mock, &id).await.status, 401);
    assert!(mock.authenticated_sessions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truenas_continue_without_an_attempt() {
    let mock = truenas::TrueNasMock::start().await.unwrap();
    let a = continue_otp(&mock, None, truenas::OTP).await;
    assert_eq!(
        (a.status, a.body),
        (401, json!({"error": "no authentication in progress"}))
    );
    let a = continue_otp(&mock, Some("made-up"), truenas::OTP).await;
    assert_eq!(
        (a.status, a.body),
        (200, json!({"response_type": "EXPIRED"}))
    );
    // An authenticated session is not awaiting an OTP.
    let id = session_cookie(&login_ex(&mock, truenas::PLAIN).await);
    let a = continue_otp(&mock, Some(&id), truenas::OTP).await;
    assert_eq!(
        (a.status, a.body),
        (200, json!({"response_type": "EXPIRED"}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truenas_expired_redirect_and_auth_err() {
    let mock = truenas::TrueNasMock::start().await.unwrap();
    let a = login_ex(&mock, truenas::EXPIRED_USER).await;
    assert_eq!(
        (a.status, &a.body),
        (200, &json!({"response_type": "EXPIRED"}))
    );
    assert!(a.headers.get("set-cookie").is_none());
    let a = login_ex(&mock, truenas::REDIRECT_USER).await;
    assert_eq!(
        (a.status, &a.body),
        (
            200,
            &json!({"response_type": "REDIRECT", "urls": ["https://truenas-b.example/api/current"]})
        )
    );
    assert_eq!(a.body["urls"][0], truenas::REDIRECT_URL);
    assert!(a.headers.get("set-cookie").is_none());
    for user in [
        ("admin", "wrong"),
        ("alice", "wrong"),
        ("olduser", "wrong"),
        ("nobody", "admin-pass"),
    ] {
        let a = login_ex(&mock, user).await;
        assert_eq!(
            (a.status, &a.body),
            (200, &json!({"response_type": "AUTH_ERR"})),
            "{user:?}"
        );
        assert!(a.headers.get("set-cookie").is_none());
    }
    assert!(mock.authenticated_sessions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truenas_params_that_do_not_validate_are_400() {
    let mock = truenas::TrueNasMock::start().await.unwrap();
    let good =
        json!({"mechanism": "PASSWORD_PLAIN", "username": "admin", "password": "admin-pass"});
    for bad in [
        good.clone(),
        json!([]),
        json!([good.clone(), good.clone()]),
        json!(["admin"]),
        json!([{"mechanism": "PASSWORD_PLAIN", "username": "admin", "password": "admin-pass", "extra": 1}]),
        json!([{"mechanism": "API_KEY_PLAIN", "username": "admin", "password": "admin-pass"}]),
        json!([{"username": "admin", "password": "admin-pass"}]),
        json!([{"mechanism": "PASSWORD_PLAIN", "username": "admin"}]),
        json!([{"mechanism": "PASSWORD_PLAIN", "username": "admin", "password": 5}]),
        json!([{"mechanism": "PASSWORD_PLAIN", "username": "admin", "password": "admin-pass", "login_options": []}]),
    ] {
        let a = send(
            client()
                .post(format!("{}{LOGIN_EX}", mock.url()))
                .json(&bad),
        )
        .await;
        assert_eq!(a.status, 400, "{bad}");
        assert!(a.body["error"].is_string(), "{bad}");
        assert!(a.headers.get("set-cookie").is_none());
    }
    let a = send(
        client()
            .post(format!("{}{LOGIN_EX}", mock.url()))
            .json(&json!([{"mechanism": "PASSWORD_PLAIN", "username": "admin", "password": "admin-pass", "extra": 1}])),
    )
    .await;
    assert_eq!(
        a.body,
        json!({"error": "login_data.extra: No Additional Properties"})
    );
    let id = session_cookie(&login_ex(&mock, truenas::TWO_FACTOR).await);
    for bad in [
        json!({"mechanism": "OTP_TOKEN", "otp_token": truenas::OTP}),
        json!([{"mechanism": "OTP_TOKEN", "otp_token": truenas::OTP, "extra": true}]),
        json!([{"mechanism": "PASSWORD_PLAIN", "otp_token": truenas::OTP}]),
        json!([{"mechanism": "OTP_TOKEN", "otp_token": 246810}]),
    ] {
        let a = send(
            client()
                .post(format!("{}{CONTINUE}", mock.url()))
                .header("Cookie", format!("{}={id}", truenas::SESSION_COOKIE))
                .json(&bad),
        )
        .await;
        assert_eq!(a.status, 400, "{bad}");
        assert!(a.body["error"].is_string(), "{bad}");
    }
    // Bad requests do not count as wrong codes.
    let a = continue_otp(&mock, Some(&id), truenas::OTP).await;
    assert_eq!(a.body["response_type"], "SUCCESS");
    assert_eq!(mock.received_on(LOGIN_EX).len(), 12);
}

// ---------------------------------------------------------------- indee

const LOGIN: &str = "/v1/admin/auth/login";
const INITIATE: &str = "/v1/admin/auth/sso/initiate";
const SSO_LOGIN: &str = "/v1/admin/auth/sso/login";
const REFRESH: &str = "/v1/admin/auth/refresh";
const LOGOUT: &str = "/v1/admin/auth/logout";

async fn indee_post(mock: &indee::IndeeMock, path: &str, body: Value) -> Answer {
    send(
        client()
            .post(format!("{}{path}", mock.url()))
            .bearer_auth(indee::API_KEY)
            .json(&body),
    )
    .await
}

fn assert_tokens(a: &Answer, mock: &indee::IndeeMock) -> (String, String) {
    assert_eq!(a.status, 200);
    let b = a.body.as_object().unwrap();
    let keys: Vec<&str> = b.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["status_code", "status_message", "token", "refresh_token"]
    );
    assert_eq!(b["status_code"], "A0000");
    assert_eq!(b["status_message"], "success");
    let token = b["token"].as_str().unwrap().to_string();
    let refresh = b["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(token.split('.').count(), 3);
    assert_eq!(refresh.split('.').count(), 3);
    assert_ne!(token, refresh);
    assert_eq!(mock.issued_tokens().last(), Some(&token));
    assert_eq!(mock.issued_refresh_tokens().last(), Some(&refresh));
    (token, refresh)
}

fn indee_status(code: &str, message: &str) -> Value {
    json!({"status_code": code, "status_message": message})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indee_every_endpoint_needs_the_api_key() {
    let mock = indee::IndeeMock::start().await.unwrap();
    let denied = indee_status("A2002", "Access Denied");
    for path in [LOGIN, INITIATE, SSO_LOGIN, REFRESH, LOGOUT] {
        let body = json!({"username": indee::USERNAME, "password": indee::PASSWORD});
        let a = send(client().post(format!("{}{path}", mock.url())).json(&body)).await;
        assert_eq!((a.status, &a.body), (401, &denied), "{path}");
        let a = send(
            client()
                .post(format!("{}{path}", mock.url()))
                .bearer_auth("wrong-key")
                .json(&body),
        )
        .await;
        assert_eq!((a.status, &a.body), (401, &denied), "{path}");
        let a = send(
            client()
                .post(format!("{}{path}", mock.url()))
                .header("Authorization", indee::API_KEY)
                .json(&body),
        )
        .await;
        assert_eq!((a.status, &a.body), (401, &denied), "{path}");
    }
    assert_eq!(mock.received().len(), 15);
    assert!(mock.issued_tokens().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indee_password_login() {
    let mock = indee::IndeeMock::start().await.unwrap();
    let a = indee_post(
        &mock,
        LOGIN,
        json!({"username": indee::USERNAME, "password": indee::PASSWORD, "extended_expiry": false}),
    )
    .await;
    assert_tokens(&a, &mock);
    let a = indee_post(
        &mock,
        LOGIN,
        json!({"username": indee::USERNAME, "password": indee::PASSWORD}),
    )
    .await;
    assert_tokens(&a, &mock);
    assert_eq!(mock.issued_tokens().len(), 2);

    let a = indee_post(
        &mock,
        LOGIN,
        json!({"username": indee::USERNAME, "password": "wrong"}),
    )
    .await;
    assert_eq!(
        (a.status, a.body),
        (401, indee_status("A2001", "Invalid username or password"))
    );
    for bad in [
        json!({"username": indee::USERNAME, "password": indee::PASSWORD, "extended_expiry": "yes"}),
        json!({"username": indee::USERNAME}),
        json!([indee::USERNAME, indee::PASSWORD]),
    ] {
        let a = indee_post(&mock, LOGIN, bad.clone()).await;
        assert_eq!(
            (a.status, a.body),
            (400, indee_status("A1001", "Invalid request")),
            "{bad}"
        );
    }
    assert_eq!(mock.issued_tokens().len(), 2);
    let sent = mock.received_on(LOGIN);
    assert_eq!(sent.len(), 6);
    assert_eq!(
        sent[0].header("authorization"),
        Some(format!("Bearer {}", indee::API_KEY).as_str())
    );
}

async fn initiate(mock: &indee::IndeeMock) -> (String, String, String) {
    let a = indee_post(mock, INITIATE, json!({"username": indee::SSO_EMAIL})).await;
    assert_eq!(a.status, 200);
    let b = a.body.as_object().unwrap();
    let keys: Vec<&str> = b.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "state",
            "nonce",
            "redirect",
            "status_code",
            "status_message"
        ]
    );
    assert_eq!(b["status_code"], "A0000");
    assert_eq!(b["status_message"], "success");
    let state = b["state"].as_str().unwrap().to_string();
    let nonce = b["nonce"].as_str().unwrap().to_string();
    let redirect = b["redirect"].as_str().unwrap().to_string();
    assert_ne!(state, nonce);
    assert_eq!(
        redirect,
        format!(
            "{}/authorize?client_id=jkljeS0239F38tzRbh7LvMi5w7LHP&response_type=code\
             &scope=openid+profile+email&nonce={nonce}\
             &redirect_uri=http%3A%2F%2Flocalhost%3A3000%2Flogin%2Fsso_callback&state={state}",
            mock.idp_url()
        )
    );
    (state, nonce, redirect)
}

/// The IdP page at `redirect`, as a browser fetches it, and the code on it.
async fn idp_code(redirect: &str, state: &str) -> String {
    let r = reqwest::get(redirect).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = r.text().await.unwrap();
    let code = indee::code_from_page(&html).unwrap();
    assert!(html.contains(&format!(
        "http://localhost:3000/login/sso_callback?code={code}&amp;state={state}"
    )));
    code
}

fn sso_body(state: &str, nonce: &str, email: &str, code: &str) -> Value {
    json!({"state": state, "nonce": nonce, "email": email, "code": code, "error": false, "error_description": {}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indee_sso_login() {
    let mock = indee::IndeeMock::start().await.unwrap();
    assert_ne!(mock.idp_url(), mock.url());
    let (state, nonce, redirect) = initiate(&mock).await;
    let code = idp_code(&redirect, &state).await;
    let a = indee_post(
        &mock,
        SSO_LOGIN,
        sso_body(&state, &nonce, indee::SSO_EMAIL, &code),
    )
    .await;
    assert_tokens(&a, &mock);
    // The state is used up.
    let a = indee_post(
        &mock,
        SSO_LOGIN,
        sso_body(&state, &nonce, indee::SSO_EMAIL, &code),
    )
    .await;
    assert_eq!(
        (a.status, a.body),
        (401, indee_status("A2001", "Invalid or expired SSO state"))
    );
    let a = send(client().get(&redirect)).await;
    assert_eq!(a.status, 400);
    // The IdP's requests are kept apart from the API's.
    assert_eq!(mock.idp_received().len(), 2);
    assert_eq!(mock.received().len(), 3);
    assert!(mock.received().iter().all(|r| r.path.starts_with("/v1/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indee_sso_wrong_code_then_retry() {
    let mock = indee::IndeeMock::start().await.unwrap();
    let (state, nonce, redirect) = initiate(&mock).await;
    let invalid_code = indee_status("A2001", "Invalid SSO authorization code");
    // Before the IdP issued any code.
    let a = indee_post(
        &mock,
        SSO_LOGIN,
        sso_body(&state, &nonce, indee::SSO_EMAIL, "guess"),
    )
    .await;
    assert_eq!((a.status, &a.body), (401, &invalid_code));
    let first = idp_code(&redirect, &state).await;
    let a = indee_post(
        &mock,
        SSO_LOGIN,
        sso_body(&state, &nonce, indee::SSO_EMAIL, "wrong-code"),
    )
    .await;
    assert_eq!((a.status, &a.body), (401, &invalid_code));
    let mut no_code = sso_body(&state, &nonce, indee::SSO_EMAIL, "");
    no_code.as_object_mut().unwrap().remove("code");
    let a = indee_post(&mock, SSO_LOGIN, no_code).await;
    assert_eq!((a.status, &a.body), (401, &invalid_code));
    // A second visit replaces the code.
    let second = idp_code(&redirect, &state).await;
    assert_ne!(first, second);
    let a = indee_post(
        &mock,
        SSO_LOGIN,
        sso_body(&state, &nonce, indee::SSO_EMAIL, &first),
    )
    .await;
    assert_eq!((a.status, &a.body), (401, &invalid_code));
    // Nonce and email must match the initiation, and the IdP must not report an error.
    let a = indee_post(
        &mock,
        SSO_LOGIN,
        sso_body(&state, "other-nonce", indee::SSO_EMAIL, &second),
    )
    .await;
    assert_eq!(
        (a.status, a.body),
        (401, indee_status("A2001", "SSO nonce does not match"))
    );
    let a = indee_post(
        &mock,
        SSO_LOGIN,
        sso_body(&state, &nonce, "someone@else.example", &second),
    )
    .await;
    assert_eq!(
        (a.status, a.body),
        (
            401,
            indee_status("A2001", "Email does not match the SSO request")
        )
    );
    let mut failed = sso_body(&state, &nonce, indee::SSO_EMAIL, &second);
    failed["error"] = json!(true);
    let a = indee_post(&mock, SSO_LOGIN, failed).await;
    assert_eq!(
        (a.status, a.body),
        (
            401,
            indee_status("A2001", "The identity provider reported an error")
        )
    );
    // Malformed.
    for bad in [
        json!({"state": state, "nonce": nonce, "email": indee::SSO_EMAIL, "code": second}),
        json!({"state": state, "nonce": nonce, "email": indee::SSO_EMAIL, "code": second, "error": "false"}),
        json!({"nonce": nonce, "email": indee::SSO_EMAIL, "code": second, "error": false}),
    ] {
        let a = indee_post(&mock, SSO_LOGIN, bad.clone()).await;
        assert_eq!(
            (a.status, a.body),
            (400, indee_status("A1001", "Invalid request")),
            "{bad}"
        );
    }
    assert!(mock.issued_tokens().is_empty());
    let a = indee_post(
        &mock,
        SSO_LOGIN,
        sso_body(&state, &nonce, indee::SSO_EMAIL, &second),
    )
    .await;
    assert_tokens(&a, &mock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indee_sso_initiate_and_idp_refusals() {
    let mock = indee::IndeeMock::start().await.unwrap();
    for bad in [
        json!({}),
        json!({"username": 7}),
        json!({"username": "no-at-sign"}),
    ] {
        let a = indee_post(&mock, INITIATE, bad.clone()).await;
        assert_eq!(
            (a.status, a.body),
            (400, indee_status("A1001", "Invalid request")),
            "{bad}"
        );
    }
    let r = reqwest::get(format!("{}/authorize?state=unknown", mock.idp_url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(indee::code_from_page(&r.text().await.unwrap()), None);
    let r = reqwest::get(format!("{}/authorize", mock.idp_url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let a = indee_post(
        &mock,
        SSO_LOGIN,
        sso_body("unknown", "n", indee::SSO_EMAIL, "c"),
    )
    .await;
    assert_eq!(
        (a.status, a.body),
        (401, indee_status("A2001", "Invalid or expired SSO state"))
    );
}

#[test]
fn code_from_page_reads_the_code_element() {
    assert_eq!(
        indee::code_from_page(r#"<p>Signed in. Your code: <code id="sso-code">abc123</code></p>"#),
        Some("abc123".to_string())
    );
    assert_eq!(
        indee::code_from_page(r#"<code id="sso-code"></code>"#),
        None
    );
    assert_eq!(indee::code_from_page(r#"<code id="sso-code">x"#), None);
    assert_eq!(indee::code_from_page("<p>nothing</p>"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indee_refresh_and_logout() {
    let mock = indee::IndeeMock::start().await.unwrap();
    let a = indee_post(
        &mock,
        LOGIN,
        json!({"username": indee::USERNAME, "password": indee::PASSWORD}),
    )
    .await;
    let (token, refresh) = assert_tokens(&a, &mock);

    let a = indee_post(&mock, REFRESH, json!({"refresh_token": refresh})).await;
    assert_eq!(a.status, 200);
    let b = a.body.as_object().unwrap();
    let keys: Vec<&str> = b.keys().map(String::as_str).collect();
    assert_eq!(keys, ["status_code", "status_message", "token"]);
    assert_eq!(
        (&b["status_code"], &b["status_message"]),
        (&json!("A0000"), &json!("success"))
    );
    let new = b["token"].as_str().unwrap();
    assert_ne!(new, token);
    assert_eq!(mock.issued_tokens(), vec![token.clone(), new.to_string()]);
    assert_eq!(mock.issued_refresh_tokens(), vec![refresh.clone()]);

    let unauthorized = indee_status("A2003", "Unauthorized");
    for bad in [
        json!({"refresh_token": "made-up"}),
        json!({"refresh_token": token}),
        json!({}),
    ] {
        let a = indee_post(&mock, REFRESH, bad.clone()).await;
        assert_eq!((a.status, &a.body), (401, &unauthorized), "{bad}");
        let a = indee_post(&mock, LOGOUT, bad.clone()).await;
        assert_eq!((a.status, &a.body), (401, &unauthorized), "{bad}");
    }
    assert!(mock.revoked_refresh_tokens().is_empty());

    let a = indee_post(&mock, LOGOUT, json!({"refresh_token": refresh})).await;
    assert_eq!((a.status, a.body), (200, indee_status("A0000", "success")));
    assert_eq!(mock.revoked_refresh_tokens(), vec![refresh.clone()]);
    let a = indee_post(&mock, REFRESH, json!({"refresh_token": refresh})).await;
    assert_eq!((a.status, &a.body), (401, &unauthorized));
    let a = indee_post(&mock, LOGOUT, json!({"refresh_token": refresh})).await;
    assert_eq!((a.status, &a.body), (401, &unauthorized));
    assert_eq!(mock.revoked_refresh_tokens(), vec![refresh]);
    assert_eq!(mock.received_on(LOGOUT).len(), 5);
}
