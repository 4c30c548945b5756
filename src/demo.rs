//! `otvi demo`: mocks of every shipped provider's API and the server on loopback, with a
//! temporary database, an admin token, and `curl` lines for one path of each provider.

use crate::server::{self, Config};
use otvi_mocks::{acme, ags, indee, truenas};
use otvi_runtime::auth::{unix_now, Claims, Jwt};
use serde_json::json;

fn started<T>(r: std::io::Result<T>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("cannot start the {what} mock: {e}"))
}

pub async fn run(bind: String) -> Result<(), String> {
    let acme = started(acme::MockProvider::start().await, "acme")?;
    let ags = started(ags::AgsMock::start().await, "OpenTV AGS")?;
    let truenas = started(truenas::TrueNasMock::start().await, "TrueNAS")?;
    let indee = started(indee::IndeeMock::start().await, "Indee")?;
    let dir =
        tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let db = dir.path().join("otvi.db");
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let mut cfg = Config::new(
        secret.clone(),
        format!("sqlite://{}?mode=rwc", db.display()),
    );
    // The demo's sessions live in a temporary file for one run: a key made now seals them.
    cfg.sealer = otvi_runtime::seal::Sealer::ephemeral();
    // Each shipped provider at its mock; any other provider file at the acme mock.
    cfg.base_urls = server::providers()
        .iter()
        .map(|p| {
            let url = match p.id {
                "opentv" => ags.url(),
                "truenas" => truenas.url(),
                "indee" => indee.url(),
                _ => acme.url(),
            };
            (p.id.to_string(), url)
        })
        .collect();
    // The mocks' secrets, whatever the environment holds; placeholders for other providers.
    cfg.secret_values = server::providers()
        .iter()
        .flat_map(|p| p.secrets)
        .map(|s| (s.env.to_string(), format!("demo-{}", s.key)))
        .collect();
    cfg.secret_values
        .insert("INDEE_API_KEY".into(), indee::API_KEY.into());
    let app = server::app(&cfg).await?;
    let listener = match tokio::net::TcpListener::bind(&bind).await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?,
    };
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let token = Jwt::new(secret.as_bytes()).sign(&Claims {
        sub: "demo-admin".into(),
        exp: unix_now() + 24 * 3600,
        role: "admin".into(),
        must_change_password: false,
        providers: None,
        username: None,
    });

    let api = format!("http://{addr}/api/providers");
    let login = |provider: &str, body: String| {
        format!("curl -s -X POST {api}/{provider}/auth/login -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{body}'")
    };
    let body = |flow: &str, step: usize, inputs: serde_json::Value| {
        json!({"flow_id": flow, "step": step, "inputs": inputs}).to_string()
    };

    println!(
        "otvi demo: server on http://{addr}, database {}",
        db.display()
    );
    println!(
        "mock providers: acme {}, opentv {}, truenas {}, indee {} (identity provider {})",
        acme.url(),
        ags.url(),
        truenas.url(),
        indee.url(),
        indee.idp_url()
    );
    println!("Press Ctrl-C to stop.\n");
    println!("export TOKEN={token}\n");
    println!("Login console (in a browser): http://{addr}/console#token={token}");
    println!("OpenAPI document: http://{addr}/api/openapi.json\n");

    println!("## acme (providers/acme.yaml): phone + OTP, check, logout, email + password\n");
    println!("# Phone + OTP, step 0: the server sends the (base64-encoded) phone number and asks for a code");
    println!(
        "{}\n",
        login(
            "acme",
            body("phone_otp", 0, json!({"phone": "+15551234567"}))
        )
    );
    println!("# Step 1: the mock provider's code is {}", acme::OTP);
    println!(
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
    println!("# Is there a session?");
    println!("curl -s {api}/acme/auth/check -H \"Authorization: Bearer $TOKEN\"\n");
    println!("# Log out (the server calls the provider's logout first)");
    println!("curl -s -X POST {api}/acme/auth/logout -H \"Authorization: Bearer $TOKEN\"\n");
    println!("# Email + password in one step");
    println!(
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
    println!("## opentv (providers/opentv.yaml): a sign-in with several accounts\n");
    println!(
        "# Step 0: signOn answers 300; the server shows the linked accounts and asks which one"
    );
    println!(
        "{}\n",
        login(
            "opentv",
            body("sign_on", 0, json!({"username": user, "password": pass}))
        )
    );
    println!("# Step 1: subsequentSignOn to one of them, with the User-Token from the 300 answer");
    println!(
        "{}\n",
        login(
            "opentv",
            body("sign_on", 1, json!({"account": ags::LINKED_ACCOUNTS[1]}))
        )
    );

    let (user, pass) = truenas::TWO_FACTOR;
    println!("## truenas (providers/truenas.yaml): two-factor sign-in\n");
    println!("# Step 0: login_ex answers OTP_REQUIRED and sets a session cookie");
    println!(
        "{}\n",
        login(
            "truenas",
            body("password", 0, json!({"username": user, "password": pass}))
        )
    );
    println!(
        "# Step 1: login_ex_continue on that session; the mock's code is {} (a wrong one is asked for again)",
        truenas::OTP
    );
    println!(
        "{}\n",
        login("truenas", body("password", 1, json!({"otp": truenas::OTP})))
    );

    println!("## indee (providers/indee.yaml): the API key comes from INDEE_API_KEY, set to the mock's\n");
    println!("# Password sign-in");
    println!(
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
    println!("# Refresh the access token with the session's refresh token");
    println!(
        "{}\n",
        login("indee", r#"{"flow_id":"refresh","step":0}"#.into())
    );
    println!("# SSO, step 0: the answer's `sso_page` field is a link; open it and copy the code it shows");
    println!(
        "{}\n",
        login("indee", body("sso", 0, json!({"email": indee::SSO_EMAIL})))
    );
    println!("# Step 1: send the code (replace CODE)");
    println!(
        "{}\n",
        login(
            "indee",
            body("sso", 1, json!({"email": indee::SSO_EMAIL, "code": "CODE"}))
        )
    );
    println!("# That is one path of every shipped provider.");

    server::run(listener, app)
        .await
        .map_err(|e| e.to_string())?;
    drop(dir);
    Ok(())
}
