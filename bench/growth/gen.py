#!/usr/bin/env python3
"""Writes N provider files of 5 flows x 3 steps each for bench/growth.sh.

    gen.py DIR N      # DIR/p0000.yaml ... (DIR is emptied of *.yaml first)

Each file is what a real provider looks like: JSON and form bodies built from inputs and from
values stored by earlier steps, default and per-step headers, query parameters, a templated
path, outcomes chosen by status and by JSONPath, extracts from JSON, headers and cookies, an
OTP prompt that may be asked again, a display field, a flow that reads a session value, and a
logout. Files differ in ids, names, paths, keys and which optional parts they carry, so no two
emit the same code.
"""
import os
import sys


def provider(i: int) -> str:
    v = i % 3 + 1  # API version in paths
    host = f"api{i}.tv{i % 17}.example"
    tok = ["access_token", "token", "accessToken"][i % 3]
    msg = ["$.error.message", "$.message", "$.status_message"][i % 3]
    secret = i % 4 == 0
    out = [
        f"# Generated for bench/growth.sh: provider {i}.",
        f"provider: {{ id: p{i:04}, name: \"Provider {i} TV\", logo: \"https://{host}/logo.png\" }}",
    ]
    if secret:
        out += ["secrets:", f"  api_key: {{ env: P{i:04}_API_KEY }}"]
    out += [
        "defaults:",
        f"  base_url: \"https://{host}/api\"",
        "  headers:",
        f"    User-Agent: \"Provider{i}/{v}.{i % 10}\"",
        "    Accept: application/json",
    ]
    if secret:
        out.append("    X-Api-Key: \"{{secret.api_key}}\"")
    out += ["auth:", "  scope: per_user", "  flows:"]

    # Flow 0: email and password, an OTP when the provider asks for one, then the profile.
    out += f"""\
    - id: email_password
      name: "Email & Password"
      inputs:
        - {{ key: email, label: "Email address", type: email }}
        - {{ key: password, label: "Password", type: password }}
        - {{ key: device_name, label: "Device name", required: false }}
      steps:
        - id: sign_in
          name: "Sign In"
          request:
            method: POST
            path: "/v{v}/auth/login"
            headers: {{ X-Request-Id: "{{{{uuid}}}}", X-Client: "tv-{i}" }}
            body: |
              {{
                "email": "{{{{input.email}}}}",
                "password": "{{{{input.password}}}}",
                "device": {{ "id": "{{{{uuid}}}}", "name": "{{{{input.device_name}}}}", "type": "tv" }},
                "client_version": "{v}.{i % 10}.0"
              }}
          error_message: "{msg}"
          outcomes:
            - when: {{ status: 200, "$.status": OTP_REQUIRED }}
              extract: {{ request_id: "$.data.request_id" }}
              prompt:
                - {{ key: otp, label: "Code sent to your phone", type: text }}
              next: verify
            - when: {{ status: 200, "$.status": OK }}
              extract:
                {tok}: "$.data.{tok}"
                refresh_token: "$.data.refresh_token"
              next: profile
            - when: {{ status: [401, 403] }}
              fail: {{ from: "{msg}", message: "Wrong email address or password" }}
        - id: verify
          name: "Verify Code"
          request:
            method: POST
            path: "/v{v}/auth/otp/verify"
            headers: {{ X-Request-Id: "{{{{stored.request_id}}}}" }}
            body: '{{"code": "{{{{input.otp}}}}", "request_id": "{{{{stored.request_id}}}}", "email": "{{{{input.email}}}}"}}'
          error_message: "{msg}"
          outcomes:
            - when: {{ status: 200, "$.verified": true }}
              extract:
                {tok}: "$.data.{tok}"
                refresh_token: "$.data.refresh_token"
            - when: {{ "$.code": {400 + i % 7} }}
              prompt:
                - {{ key: otp, label: "Code sent to your phone", type: text }}
              message: "That code was not accepted; try again"
              next: verify
            - fail: "The code could not be verified"
        - id: profile
          name: "Load Profile"
          request:
            method: GET
            path: "/v{v}/users/me"
            params: {{ lang: en, fields: "id,name,plan", ts: "{{{{utcnow}}}}" }}
            headers: {{ Authorization: "Bearer {{{{stored.{tok}}}}}" }}
          on_success:
            extract:
              user_name: "$.profile.display_name"
              user_id: "$.profile.id"
              plan: {{ path: "$.profile.plan.name", optional: true }}
""".splitlines()

    # Flow 1: phone number (base64) and an SMS code, form-encoded; a templated path.
    out += f"""\
    - id: phone_otp
      name: "Phone Number"
      inputs:
        - {{ key: phone, label: "Phone number", type: tel, transform: base64 }}
        - {{ key: country, label: "Country code", required: false }}
      steps:
        - name: "Send Code"
          request:
            method: POST
            path: "/v{v}/auth/sms/send"
            body_encoding: form
            body: "phone={{{{input.phone}}}}&country={{{{input.country}}}}&channel=sms&ts={{{{utcdate}}}}"
          success_status: [200, 202]
          on_success:
            extract: {{ request_id: "$.request_id", sms_session: {{ cookie: sms{i % 5} }} }}
            prompt:
              - {{ key: otp, label: "SMS code", type: text }}
        - name: "Verify SMS Code"
          request:
            method: POST
            path: "/v{v}/auth/sms/{{{{stored.request_id}}}}/verify"
            headers: {{ Cookie: "sms{i % 5}={{{{stored.sms_session}}}}" }}
            body_encoding: form
            body: "code={{{{input.otp}}}}&phone={{{{input.phone}}}}"
          success_when: {{ "$.result": success }}
          error_message: "{msg}"
          on_success:
            extract:
              {tok}: "$.{tok}"
              user_id: "$.user.id"
        - name: "Load Account"
          request:
            method: GET
            path: "/v{v}/accounts/{{{{stored.user_id}}}}"
            headers: {{ Authorization: "Bearer {{{{stored.{tok}}}}}" }}
          on_success:
            extract: {{ user_name: "$.account.name", account_id: "$.account.id" }}
""".splitlines()

    # Flow 2: a code shown on another device (display fields), polled until it is confirmed.
    out += f"""\
    - id: device_code
      name: "Sign in on another device"
      steps:
        - name: "Get Code"
          request:
            method: POST
            path: "/v{v}/device/code"
            headers: {{ x-correlation-id: "{{{{run_id}}}}" }}
            body: '{{"client_id": "tv-{i}", "scope": "profile offline"}}'
          on_success:
            extract:
              device_code: "$.device_code"
              verification_uri: "$.verification_uri"
              user_code: "$.user_code"
            prompt:
              - {{ key: open_page, type: link, label: "Open this page", value: "{{{{stored.verification_uri}}}}" }}
              - {{ key: show_code, type: info, label: "and enter this code", value: "{{{{stored.user_code}}}}" }}
              - {{ key: confirm, label: "Type DONE when the page says you are signed in" }}
        - id: poll
          name: "Poll Token"
          request:
            method: POST
            path: "/v{v}/device/token"
            headers: {{ x-correlation-id: "{{{{run_id}}}}" }}
            body: '{{"device_code": "{{{{stored.device_code}}}}", "confirm": "{{{{input.confirm}}}}"}}'
          outcomes:
            - when: {{ "$.error": authorization_pending }}
              prompt:
                - {{ key: confirm, label: "Type DONE when the page says you are signed in" }}
              message: "Not confirmed yet"
              next: poll
            - when: {{ status: 200 }}
              extract: {{ {tok}: "$.{tok}", refresh_token: "$.refresh_token", expires: {{ path: "$.expires_in", optional: true }} }}
            - when: {{ "$.error": expired_token }}
              fail: "The code expired; start again"
        - name: "Who Am I"
          request:
            method: GET
            path: "/v{v}/me"
            headers: {{ Authorization: "Bearer {{{{stored.{tok}}}}}", x-correlation-id: "{{{{run_id}}}}" }}
          on_success:
            extract: {{ user_name: "$.name", user_id: "$.id", region: {{ header: X-Region-{i % 9} }} }}
""".splitlines()

    # Flow 3: account number and PIN, a session cookie carried through the steps.
    out += f"""\
    - id: account_pin
      name: "Account & PIN"
      inputs:
        - {{ key: account, label: "Account number {i}" }}
        - {{ key: pin, label: "PIN", type: password }}
      steps:
        - name: "Open Session"
          request:
            method: GET
            path: "/v{v}/session/new"
            params: {{ account: "{{{{input.account}}}}", client: "tv-{i}" }}
          on_success:
            extract: {{ sid: {{ cookie: sid{i % 11} }}, nonce: "$.nonce" }}
        - name: "Send PIN"
          request:
            method: PUT
            path: "/v{v}/session/pin"
            headers: {{ Cookie: "sid{i % 11}={{{{stored.sid}}}}", X-Nonce: "{{{{stored.nonce}}}}" }}
            body: '{{"account": "{{{{input.account}}}}", "pin": "{{{{input.pin}}}}", "nonce": "{{{{stored.nonce}}}}"}}'
          outcomes:
            - when: {{ "$.state": ACCEPTED }}
              extract: {{ {tok}: "$.session.{tok}", http_status: {{ status: true }} }}
            - when: {{ "$.state": LOCKED }}
              fail: {{ from: "{msg}", message: "The account is locked", clear_session: true }}
            - when: {{ "$.state": REJECTED }}
              fail: "Wrong account number or PIN"
        - name: "Entitlements"
          request:
            method: GET
            path: "/v{v}/entitlements"
            headers: {{ Cookie: "sid{i % 11}={{{{stored.sid}}}}", Authorization: "Bearer {{{{stored.{tok}}}}}" }}
            params: {{ date: "{{{{utcdate}}}}" }}
          on_success:
            extract:
              user_name: "$.subscriber.name"
              packages: {{ path: "$.packages[*].id", all: true }}
""".splitlines()

    # Flow 4: a token refresh that reads the session's refresh token.
    out += f"""\
    - id: refresh
      name: "Refresh Session"
      steps:
        - name: "Refresh Token"
          request:
            method: POST
            path: "/v{v}/auth/refresh"
            body: '{{"refresh_token": "{{{{stored.refresh_token}}}}", "grant_type": "refresh_token"}}'
          outcomes:
            - when: {{ status: 200 }}
              extract: {{ {tok}: "$.{tok}", refresh_token: "$.refresh_token" }}
            - when: {{ status: [400, 401] }}
              fail: {{ from: "{msg}", message: "Please sign in again", clear_session: true }}
        - name: "Check Token"
          request:
            method: GET
            path: "/v{v}/auth/introspect"
            headers: {{ Authorization: "Bearer {{{{stored.{tok}}}}}" }}
          success_when: {{ "$.active": true }}
          on_success:
            extract: {{ user_id: "$.sub", scope: {{ path: "$.scope", optional: true }} }}
        - name: "Reload Profile"
          request:
            method: GET
            path: "/v{v}/users/{{{{stored.user_id}}}}"
            headers: {{ Authorization: "Bearer {{{{stored.{tok}}}}}" }}
          on_success:
            extract: {{ user_name: "$.display_name" }}
""".splitlines()

    out += f"""\
  logout:
    request:
      method: POST
      path: "/v{v}/auth/logout"
      headers: {{ Authorization: "Bearer {{{{stored.{tok}}}}}" }}
      body: '{{"refresh_token": "{{{{stored.refresh_token}}}}", "all_devices": false}}'
""".splitlines()
    return "\n".join(out) + "\n"


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    d, n = sys.argv[1], int(sys.argv[2])
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.endswith(".yaml"):
            os.remove(os.path.join(d, f))
    for i in range(n):
        with open(os.path.join(d, f"p{i:04}.yaml"), "w") as f:
            f.write(provider(i))


if __name__ == "__main__":
    main()
