//! AFL++ target: a login request body through `otvi_server::api::parse_login`.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        otvi_fuzz::login_body(data);
    });
}
