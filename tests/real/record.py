"""Records the response samples of tests/real/*.yaml from the real servers.

    eval "$(bash tests/real/start.sh)"
    python3 tests/real/record.py

Sends each request a provider file makes (and the answers it must tell apart: a wrong
password, a wrong code, a spent two-factor challenge) to the servers that tests/real/start.sh
started, and writes what came back to tests/real/samples/: NAME.json (the body, as sent) and
NAME.http (the status line and headers). The provider files take their samples' bodies from
the .json files and copy status and Set-Cookie from the .http files. Standard library only.
"""

import base64
import hmac
import json
import os
import struct
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "samples"
PASSWORD = "correct horse battery staple"
# better-auth checks the Origin of every cookie-carrying POST (tests/real/better-auth.yaml).
ORIGIN = "https://tv.example"


def totp(secret, offset=0):
    """RFC 6238: SHA-1, 6 digits, 30-second steps (both servers' defaults)."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    counter = int(time.time()) // 30 + offset
    mac = hmac.new(key, struct.pack(">Q", counter), "sha1").digest()
    at = mac[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", mac[at : at + 4])[0] & 0x7FFFFFFF) % 1_000_000)


def wrong(code):
    """A code that is certainly not `code`."""
    return "%06d" % ((int(code) + 1) % 1_000_000)


def send(method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def record(name, answer):
    status, headers, body = answer
    SAMPLES.mkdir(exist_ok=True)
    text = json.dumps(json.loads(body), indent=2, ensure_ascii=False) + "\n"
    (SAMPLES / f"{name}.json").write_text(text)
    head = [f"HTTP {status}"] + [f"{k}: {v}" for k, v in headers.items()]
    (SAMPLES / f"{name}.http").write_text("\n".join(head) + "\n")
    print(f"{name}: HTTP {status}", file=sys.stderr)
    return status, headers, json.loads(body)


def cookie(headers, name):
    for h in headers.get_all("Set-Cookie") or []:
        k, _, rest = h.partition("=")
        if k == name:
            return rest.split(";", 1)[0]
    raise SystemExit(f"no cookie {name} in {headers}")


def allauth(base):
    api = f"{base}/_allauth/app/v1"

    def login(email, password):
        return send("POST", f"{api}/auth/login", {"email": email, "password": password})

    record("allauth-login-signed-in", login("plain@example.com", PASSWORD))
    record("allauth-login-wrong-password", login("plain@example.com", "not the password"))
    _, _, pending = record("allauth-login-mfa-pending", login("totp@example.com", PASSWORD))
    token = {"X-Session-Token": pending["meta"]["session_token"]}
    code = fresh_code("allauth")
    record(
        "allauth-mfa-incorrect-code",
        send("POST", f"{api}/auth/2fa/authenticate", {"code": wrong(code)}, token),
    )
    record(
        "allauth-mfa-signed-in",
        send("POST", f"{api}/auth/2fa/authenticate", {"code": code}, token),
    )
    # A spent or unknown session token: the run cannot go on.
    record(
        "allauth-mfa-session-gone",
        send("POST", f"{api}/auth/2fa/authenticate", {"code": code}, token),
    )


def better_auth(base):
    api = f"{base}/api/auth"
    origin = {"Origin": ORIGIN}

    def sign_in(email, password):
        return send("POST", f"{api}/sign-in/email", {"email": email, "password": password})

    def verify(two_factor, code):
        headers = {"Cookie": f"better-auth.two_factor={two_factor}", **origin}
        return send("POST", f"{api}/two-factor/verify-totp", {"code": code}, headers)

    record("better-auth-sign-in-signed-in", sign_in("plain@example.com", PASSWORD))
    record("better-auth-sign-in-wrong-password", sign_in("plain@example.com", "not the password"))
    # Five wrong codes spend a challenge; the sixth try is refused.
    _, headers, _ = sign_in("totp@example.com", PASSWORD)
    spent = cookie(headers, "better-auth.two_factor")
    code = fresh_code("better-auth")
    for _ in range(5):
        verify(spent, wrong(code))
    record("better-auth-verify-too-many-attempts", verify(spent, code))
    record("better-auth-verify-challenge-gone", verify(spent, code))

    _, headers, _ = record(
        "better-auth-sign-in-two-factor", sign_in("totp@example.com", PASSWORD)
    )
    two_factor = cookie(headers, "better-auth.two_factor")
    record("better-auth-verify-invalid-code", verify(two_factor, wrong(code)))
    record("better-auth-verify-signed-in", verify(two_factor, code))


def fresh_code(name):
    """The current code of `name`'s TOTP account; a code is accepted once, so when the one of
    this 30-second step may have been used already (by a test run), the next step's."""
    secret = os.environ[f"OTVI_REAL_{name.upper().replace('-', '_')}_TOTP_SECRET"]
    time.sleep(30 - time.time() % 30 + 0.5)
    return totp(secret)


def main():
    for name, run in [("allauth", allauth), ("better-auth", better_auth)]:
        var = f"OTVI_REAL_{name.upper().replace('-', '_')}_URL"
        if var not in os.environ:
            raise SystemExit(f"{var} is not set: eval \"$(bash tests/real/start.sh)\" first")
        run(os.environ[var])


if __name__ == "__main__":
    main()
