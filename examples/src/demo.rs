//! `otvi demo`'s mocks: every shipped provider's API on loopback, and `curl` lines for one
//! path of each provider.

use crate::{acme, ags, indee, truenas};
use otvi_server::demo::Demo;
use serde_json::json;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;

fn started<T>(r: std::io::Result<T>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("cannot start the {what} mock: {e}"))
}

/// Starts the mocks (`otvi_server::Cli::demo`).
pub fn start() -> Pin<Box<dyn Future<Output = Result<Demo, String>> + Send>> {
    Box::pin(async {
        let acme = started(acme::MockProvider::start().await, "acme")?;
        let ags = started(ags::AgsMock::start().await, "OpenTV AGS")?;
        let truenas = started(truenas::TrueNasMock::start().await, "TrueNAS")?;
        let indee = started(indee::IndeeMock::start().await, "Indee")?;
        let base_urls = [
            ("acme", acme.url()),
            ("acme-shared", acme.url()),
            ("opentv", ags.url()),
            ("truenas", truenas.url()),
            ("indee", indee.url()),
        ]
        .into_iter()
        .map(|(id, url)| (id.to_string(), url))
        .collect();
        let mocks = format!(
            "mock providers: acme {}, opentv {}, truenas {}, indee {} (identity provider {})",
            acme.url(),
            ags.url(),
            truenas.url(),
            indee.url(),
            indee.idp_url()
        );
        Ok(Demo {
            base_urls,
            secret_values: [("INDEE_API_KEY".to_string(), indee::API_KEY.to_string())].into(),
            mocks,
            guide: Box::new(guide),
            running: Box::new((acme, ags, truenas, indee)),
        })
    })
}

/// `curl` lines for one path of each shipped provider, against the API at `api`.
fn guide(api: &str) -> String {
    let mut out = String::new();
    let login = |provider: &str, body: String| {
        format!("curl -s -X POST {api}/{provider}/auth/login -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{body}'")
    };
    let body = |flow: &str, step: usize, inputs: serde_json::Value| {
        json!({"flow_id": flow, "step": step, "inputs": inputs}).to_string()
    };

    let _ = writeln!(
        out,
        "## acme (providers/acme.yaml): phone + OTP, check, logout, email + password\n"
    );
    let _ = writeln!(out, "# Phone + OTP, step 0: the server sends the (base64-encoded) phone number and asks for a code");
    let _ = writeln!(
        out,
        "{}\n",
        login(
            "acme",
            body("phone_otp", 0, json!({"phone": "+15551234567"}))
        )
    );
    let _ = writeln!(out, "# Step 1: the mock provider's code is {}", acme::OTP);
    let _ = writeln!(
        out,
        "{}\n",
        login(
            "acme",
            body(
                "phone_otp",
                1,
                json!({"phone": "+15551234567", "otp": acme::OTP})
            )
        )
    );
    let _ = writeln!(out, "# Is there a session?");
    let _ = writeln!(
        out,
        "curl -s {api}/acme/auth/check -H \"Authorization: Bearer $TOKEN\"\n"
    );
    let _ = writeln!(
        out,
        "# Log out (the server calls the provider's logout first)"
    );
    let _ = writeln!(
        out,
        "curl -s -X POST {api}/acme/auth/logout -H \"Authorization: Bearer $TOKEN\"\n"
    );
    let _ = writeln!(out, "# Email + password in one step");
    let _ = writeln!(
        out,
        "{}\n",
        login(
            "acme",
            body(
                "email_password",
                0,
                json!({"email": "alice@example.com", "password": "secretpassword"})
            )
        )
    );

    let (user, pass) = ags::SEVERAL_ACCOUNTS;
    let _ = writeln!(
        out,
        "## opentv (providers/opentv.yaml): a sign-in with several accounts\n"
    );
    let _ = writeln!(
        out,
        "# Step 0: signOn answers 300; the server shows the linked accounts and asks which one"
    );
    let _ = writeln!(
        out,
        "{}\n",
        login(
            "opentv",
            body("sign_on", 0, json!({"username": user, "password": pass}))
        )
    );
    let _ = writeln!(
        out,
        "# Step 1: subsequentSignOn to one of them, with the User-Token from the 300 answer"
    );
    let _ = writeln!(
        out,
        "{}\n",
        login(
            "opentv",
            body("sign_on", 1, json!({"account": ags::LINKED_ACCOUNTS[1]}))
        )
    );

    let (user, pass) = truenas::TWO_FACTOR;
    let _ = writeln!(
        out,
        "## truenas (providers/truenas.yaml): two-factor sign-in\n"
    );
    let _ = writeln!(
        out,
        "# Step 0: login_ex answers OTP_REQUIRED and sets a session cookie"
    );
    let _ = writeln!(
        out,
        "{}\n",
        login(
            "truenas",
            body("password", 0, json!({"username": user, "password": pass}))
        )
    );
    let _ = writeln!(out,
            "# Step 1: login_ex_continue on that session; the mock's code is {} (a wrong one is asked for again)",
            truenas::OTP
        );
    let _ = writeln!(
        out,
        "{}\n",
        login("truenas", body("password", 1, json!({"otp": truenas::OTP})))
    );

    let _ = writeln!(out, "## indee (providers/indee.yaml): the API key comes from INDEE_API_KEY, set to the mock's\n");
    let _ = writeln!(out, "# Password sign-in");
    let _ = writeln!(
        out,
        "{}\n",
        login(
            "indee",
            body(
                "password",
                0,
                json!({"username": indee::USERNAME, "password": indee::PASSWORD})
            )
        )
    );
    let _ = writeln!(
        out,
        "# Refresh the access token with the session's refresh token"
    );
    let _ = writeln!(
        out,
        "{}\n",
        login("indee", r#"{"flow_id":"refresh","step":0}"#.into())
    );
    let _ = writeln!(out, "# SSO, step 0: the answer's `sso_page` field is a link; open it and copy the code it shows");
    let _ = writeln!(
        out,
        "{}\n",
        login("indee", body("sso", 0, json!({"email": indee::SSO_EMAIL})))
    );
    let _ = writeln!(out, "# Step 1: send the code (replace CODE)");
    let _ = writeln!(
        out,
        "{}\n",
        login(
            "indee",
            body("sso", 1, json!({"email": indee::SSO_EMAIL, "code": "CODE"}))
        )
    );
    let _ = writeln!(out, "# That is one path of every shipped provider.");
    out
}
