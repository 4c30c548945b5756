"""Drives the login console (/console) in headless Debian chromium with Playwright.

Run by tests/console.rs, which starts the mocks and the server and passes, in the environment:

  OTVI_CONSOLE_URL       the server, http://127.0.0.1:PORT
  OTVI_CONSOLE_TOKEN     a JWT the server accepts
  OTVI_CONSOLE_OTP       the acme mock's one-time code
  OTVI_CONSOLE_SHOTS     the directory for screenshots (created if missing)
  OTVI_CONSOLE_OPENTV    "user:password:account,account…" of an OpenTV sign-in with several
                         accounts (optional: the OpenTV part is skipped without it)
  OTVI_CONSOLE_INDEE     "email idp-url" of an Indee SSO login (optional, likewise)
  OTVI_CONSOLE_CHROMIUM  the browser (default /usr/bin/chromium)
  OTVI_CONSOLE_OTHER     another user's token (sub someone-else, role admin), for a link
                         that would replace the token in use
  OTVI_CONSOLE_LIMITED   a token whose user the test drives over the failed-login limit

Controls are found by role and label, and most of it is driven by the keyboard. Exits 0 when
every assertion holds; otherwise prints what failed and saves failure.png.
"""

import os
import re
import sys
import time
import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from playwright.sync_api import expect, sync_playwright

URL = os.environ["OTVI_CONSOLE_URL"].rstrip("/")
TOKEN = os.environ["OTVI_CONSOLE_TOKEN"]
OTP = os.environ["OTVI_CONSOLE_OTP"]
SHOTS = os.environ.get("OTVI_CONSOLE_SHOTS", "target/console")
OPENTV = os.environ.get("OTVI_CONSOLE_OPENTV")
INDEE = os.environ.get("OTVI_CONSOLE_INDEE")
CHROMIUM = os.environ.get("OTVI_CONSOLE_CHROMIUM", "/usr/bin/chromium")
OTHER = os.environ["OTVI_CONSOLE_OTHER"]
LIMITED = os.environ["OTVI_CONSOLE_LIMITED"]
ORIGIN = "{0.scheme}://{0.netloc}".format(urlsplit(URL))
PHONE_WIDTH = 375

expect.set_options(timeout=10_000)
started = time.monotonic()


def step(text):
    print(f"[{time.monotonic() - started:5.1f}s] {text}", flush=True)


def shot(page, name):
    path = os.path.join(SHOTS, name)
    page.screenshot(path=path, full_page=True)
    step(f"screenshot {path}")


def no_horizontal_scroll(page, where):
    width, scroll = page.evaluate(
        "[window.innerWidth, document.documentElement.scrollWidth]"
    )
    assert scroll <= width, f"{where}: scrolls sideways ({scroll} > {width} px)"


def status(page, section):
    """The live status message of a section (named by its heading)."""
    msg = page.get_by_role("region", name=section, exact=True).locator(".msg")
    expect(msg).to_have_attribute("aria-live", "polite")
    return msg


def sentence(msg):
    """A status message's sentence, without the details under it."""
    return msg.locator(".sentence")


def details_on_demand(msg, text):
    """`text` is in the message's details, hidden until they are opened."""
    detail = msg.locator("details p")
    expect(detail).to_be_hidden()
    expect(detail).to_contain_text(text)
    msg.get_by_text("Details", exact=True).click()
    expect(detail).to_be_visible()


def plain(msg):
    """No internals in a message's sentence: no HTTP status, no field of the API."""
    text = sentence(msg).inner_text()
    for internal in ["HTTP", "valid:", "true", "false", " s."]:
        assert internal not in text, f"{internal!r} in {text!r}"


class Watch:
    """Every request, console error and page error of a browser context's pages."""

    def __init__(self, context):
        self.requests = []
        self.errors = []
        context.on("request", lambda r: self.requests.append(r.url))
        context.on("page", self.page)

    def page(self, page):
        page.on(
            "console",
            lambda m: m.type == "error" and self.errors.append(m.text),
        )
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def check(self):
        away = [
            u
            for u in self.requests
            if not (u.startswith(ORIGIN + "/") or u.startswith("data:"))
        ]
        assert not away, f"requests away from {ORIGIN}: {away}"
        assert not self.errors, f"console errors: {self.errors}"


def desktop(browser):
    """acme phone + OTP at desktop width: a bad token, the token, a reload, a wrong code,
    the right code, check, logout, check."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watch = Watch(context)
    page = context.new_page()
    response = page.goto(URL + "/console")
    assert response.status == 200, response.status
    csp = response.headers.get("content-security-policy", "")
    assert "default-src 'none'" in csp, csp
    expect(page.get_by_role("heading", level=1)).to_have_text("otvi login console")
    expect(page.get_by_label("Provider", exact=True)).to_be_hidden()

    step("a token the server refuses: 401 shown")
    jwt = page.get_by_label("Access token (JWT)", exact=True)
    jwt.fill("not-a-token")
    jwt.press("Enter")
    token_msg = status(page, "Access token")
    expect(sentence(token_msg)).to_have_text(
        "The server did not accept this token. It may have expired: paste a new one."
    )
    expect(token_msg).to_have_class(re.compile(r"\berror\b"))
    plain(token_msg)
    details_on_demand(token_msg, "HTTP 401")
    identity = page.locator("#identity")
    expect(identity).to_have_text("This does not look like an access token.")
    expect(page.get_by_label("Provider", exact=True)).to_be_hidden()
    # Chromium logs the 401 answer to the console; that one error is expected.
    refused = [e for e in watch.errors if "401" in e]
    assert watch.errors == refused and len(refused) <= 1, watch.errors
    watch.errors.clear()

    step("the token: providers listed; kept over a reload")
    jwt.fill(TOKEN)
    jwt.press("Enter")
    expect(token_msg).to_contain_text("available to this token")
    expect(page.get_by_label("Provider", exact=True)).to_be_visible()
    step("whose token it is: subject, role, expiry")
    expect(identity).to_have_text(
        re.compile(r"^Token for console-user, role user, valid until .+ \((59|60) minutes from now\)\.$")
    )
    page.reload()
    expect(page.get_by_label("Access token (JWT)", exact=True)).to_have_value(TOKEN)
    expect(page.get_by_label("Provider", exact=True)).to_be_visible()

    step("acme, phone + OTP: step 0 drawn from the flow's fields")
    page.get_by_label("Provider", exact=True).select_option("acme")
    page.get_by_label("Sign-in method", exact=True).select_option(label="Phone Number")
    phone = page.get_by_label("Phone Number", exact=True)
    expect(phone).to_have_attribute("type", "tel")
    expect(phone).to_have_attribute("required", "")
    phone.focus()
    page.keyboard.type("+15551234567")
    page.keyboard.press("Enter")

    step("the code step: focus on its field")
    expect(page.get_by_role("group", name="Step 2: Verify Code")).to_be_visible()
    code = page.get_by_label("Enter Verification Code", exact=True)
    expect(code).to_be_focused()
    expect(phone).to_have_count(0)

    step("a wrong code: the error, and the code asked for again")
    page.keyboard.type("000000")
    page.keyboard.press("Enter")
    login_msg = status(page, "Sign in")
    expect(sentence(login_msg)).to_have_text(
        "The provider did not accept what was entered. Check it and try again."
    )
    expect(login_msg).to_have_class(re.compile(r"\berror\b"))
    expect(code).to_be_visible()
    expect(code).to_be_focused()
    plain(login_msg)
    details_on_demand(login_msg, "the provider answered HTTP 401")
    shot(page, "desktop-wrong-code.png")

    step("the right code: signed in")
    code.fill(OTP)
    code.press("Enter")
    expect(login_msg).to_have_text("Signed in to Acme TV.")
    expect(code).to_be_hidden()
    shot(page, "desktop-signed-in.png")

    step("check, logout, check")
    session_msg = status(page, "Session")
    page.get_by_role("button", name="Check session").click()
    expect(session_msg).to_have_text("You have a session with Acme TV.")
    plain(session_msg)
    logout = page.get_by_role("button", name="Log out")
    logout.focus()
    page.keyboard.press("Enter")
    expect(session_msg).to_have_text("Logged out of Acme TV.")
    expect(login_msg).to_be_empty()
    expect(page.get_by_label("Phone Number", exact=True)).to_be_visible()
    page.get_by_role("button", name="Check session").press("Enter")
    expect(session_msg).to_have_text("You have no session with Acme TV.")
    plain(session_msg)
    step("logout with no session: said so, the provider not asked")
    logout.click()
    expect(session_msg).to_have_text("There was no session with Acme TV to end.")
    shot(page, "desktop-logged-out.png")

    watch.check()
    context.close()


def phone(browser):
    """At 375 px, opened with #token=…: OpenTV's choice of account, Indee's link
    field, forgetting the token."""
    context = browser.new_context(
        viewport={"width": PHONE_WIDTH, "height": 740},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    watch = Watch(context)
    page = context.new_page()
    page.goto(URL + "/console#token=" + TOKEN)
    step("phone width, token from the fragment")
    expect(page.get_by_label("Provider", exact=True)).to_be_visible()
    assert "#" not in page.url, f"the token stayed in the address: {page.url}"
    expect(page.get_by_label("Access token (JWT)", exact=True)).to_have_value(TOKEN)
    no_horizontal_scroll(page, "providers listed")
    login_msg = status(page, "Sign in")

    if OPENTV:
        user, password, accounts = OPENTV.split(":", 2)
        accounts = accounts.split(",")
        step("OpenTV: several accounts, a choice")
        page.get_by_label("Provider", exact=True).select_option("opentv")
        page.get_by_label("Sign-in method", exact=True).select_option(label="Username & Password")
        page.get_by_label("Username", exact=True).fill(user)
        expect(page.get_by_label("Password", exact=True)).to_have_attribute("type", "password")
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_label("Password", exact=True).press("Enter")
        group = page.get_by_role("group", name="Account to use")
        expect(group).to_be_visible()
        radios = group.get_by_role("radio")
        # One radio button per account the provider listed, its value the account's username
        # and its label the account's name; the first has the focus.
        expect(radios).to_have_count(len(accounts))
        for i, a in enumerate(accounts):
            expect(radios.nth(i)).to_have_attribute("value", a)
            expect(radios.nth(i)).not_to_be_checked()
        expect(group.locator("label")).to_have_text([a.capitalize() for a in accounts])
        expect(radios.first).to_be_focused()
        no_horizontal_scroll(page, "choice field")
        shot(page, "phone-choice.png")

        step("OpenTV: none chosen is not sent; the chosen account signs on")
        page.get_by_role("button", name="Continue").click()
        expect(login_msg).not_to_have_text("Signed in to OpenTV.")
        group.get_by_label(accounts[-1].capitalize(), exact=True).check()
        page.get_by_role("button", name="Continue").click()
        expect(login_msg).to_have_text("Signed in to OpenTV.")
        page.get_by_role("button", name="Check session").click()
        expect(status(page, "Session")).to_have_text("You have a session with OpenTV.")

    if INDEE:
        email, idp = INDEE.split(" ", 1)
        step("Indee: single sign-on, a link field")
        page.get_by_label("Provider", exact=True).select_option("indee")
        page.get_by_label("Sign-in method", exact=True).select_option(label="Single Sign-On")
        work_email = page.get_by_label("Work email", exact=True)
        expect(work_email).to_have_attribute("type", "email")
        work_email.fill(email)
        work_email.press("Enter")
        link = page.get_by_role(
            "link", name="Open this page, sign in, and copy the code it shows"
        )
        expect(link).to_have_attribute(
            "href", re.compile("^" + re.escape(idp) + r"/authorize\?.*state=")
        )
        expect(link).to_have_attribute("target", "_blank")
        expect(link).to_have_attribute("rel", "noopener noreferrer")
        expect(page.get_by_label("Code from the sign-in page", exact=True)).to_be_focused()
        no_horizontal_scroll(page, "link field")
        shot(page, "phone-link.png")

        # The identity provider's page, read here rather than in the browser (whose requests
        # must all go to the server).
        with urllib.request.urlopen(link.get_attribute("href"), timeout=10) as r:
            code = re.search(r'<code id="sso-code">([^<]+)</code>', r.read().decode())
        assert code, "no code on the identity provider's page"
        page.keyboard.type(code.group(1))
        page.keyboard.press("Enter")
        expect(login_msg).to_have_text("Signed in to Indee.")
        page.get_by_role("button", name="Sign in again").focus()
        no_horizontal_scroll(page, "signed in")
        shot(page, "phone-signed-in.png")

    step("forget the token")
    page.get_by_role("button", name="Forget token").click()
    expect(page.get_by_label("Access token (JWT)", exact=True)).to_have_value("")
    expect(page.get_by_label("Access token (JWT)", exact=True)).to_be_focused()
    expect(page.get_by_label("Provider", exact=True)).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    expect(page.get_by_label("Access token (JWT)", exact=True)).to_have_value("")
    expect(status(page, "Access token")).to_have_text("Paste a token to start.")

    watch.check()
    context.close()


def links(browser):
    """A link with a token never replaces the one in use without asking, and says whose each
    is; with none in use it is taken."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watch = Watch(context)
    page = context.new_page()
    jwt = page.get_by_label("Access token (JWT)", exact=True)
    identity = page.locator("#identity")
    offer = page.get_by_role("region", name="Use the token from the link?", exact=True)
    stored = lambda: page.evaluate("Object.values(sessionStorage)")

    step("a link with a token, none in use: taken, and whose it is shown")
    page.goto(URL + "/console#token=" + TOKEN)
    expect(page.get_by_label("Provider", exact=True)).to_be_visible()
    expect(identity).to_contain_text("Token for console-user, role user")
    expect(offer).to_be_hidden()

    step("a link with another user's token while the page is open: asked, kept")
    page.goto(URL + "/console#token=" + OTHER)
    expect(offer).to_be_visible()
    assert "#" not in page.url, f"the token stayed in the address: {page.url}"
    expect(offer).to_contain_text("From the link: Token for someone-else, role admin")
    expect(offer).to_contain_text("In use now: Token for console-user, role user")
    expect(page.get_by_role("button", name="Keep the current token")).to_be_focused()
    expect(jwt).to_have_value(TOKEN)
    assert stored() == [TOKEN], stored()
    shot(page, "desktop-link-token.png")
    page.get_by_role("button", name="Keep the current token").click()
    expect(offer).to_be_hidden()
    expect(jwt).to_have_value(TOKEN)
    expect(identity).to_contain_text("console-user")
    assert stored() == [TOKEN], stored()

    step("the same link opened anew in this tab: asked again, then used when the user says so")
    page.goto("about:blank")
    page.goto(URL + "/console#token=" + OTHER)
    expect(offer).to_be_visible()
    expect(jwt).to_have_value(TOKEN)
    page.get_by_role("button", name="Use the link's token").click()
    expect(offer).to_be_hidden()
    expect(jwt).to_have_value(OTHER)
    expect(identity).to_contain_text("Token for someone-else, role admin")
    expect(status(page, "Access token")).to_contain_text("available to this token")
    assert stored() == [OTHER], stored()

    watch.check()
    context.close()


def guarded(browser):
    """While a sign-in runs its provider and method cannot be changed, and an answer for one
    no longer chosen is not shown; a 429 says the wait once, in words."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watch = Watch(context)
    page = context.new_page()
    page.goto(URL + "/console#token=" + TOKEN)
    provider = page.get_by_label("Provider", exact=True)
    method = page.get_by_label("Sign-in method", exact=True)
    login_msg = status(page, "Sign in")

    step("a sign-in under way: the pickers and session buttons locked")
    provider.select_option("acme")
    method.select_option(label="Email & Password")
    held = []
    page.route("**/auth/login", lambda route: held.append(route))
    page.get_by_label("Email Address", exact=True).fill("alice@example.com")
    page.get_by_label("Password", exact=True).fill("secretpassword")
    page.get_by_label("Password", exact=True).press("Enter")
    expect(login_msg).to_have_text("Working…")
    for control in [
        provider,
        method,
        page.get_by_role("button", name="Check session"),
        page.get_by_role("button", name="Log out"),
        page.get_by_role("button", name="Continue"),
    ]:
        expect(control).to_be_disabled()
    assert len(held) == 1, held
    shot(page, "desktop-locked.png")

    step("the provider changed anyway (by script): acme's answer is not shown for OpenTV")
    page.evaluate(
        """() => { const p = document.getElementById("provider");
                   p.value = "opentv"; p.dispatchEvent(new Event("change")); }"""
    )
    with page.expect_response("**/auth/login") as answered:
        held[0].continue_()
    assert answered.value.status == 200, answered.value.status
    page.unroute("**/auth/login")
    expect(provider).to_be_enabled()
    page.wait_for_timeout(300)  # past the moment a message is written
    expect(login_msg).to_be_empty()
    expect(page.get_by_label("Username", exact=True)).to_be_visible()

    step("too many failed sign-ins: the wait said once, in words")
    body = json.dumps(
        {
            "flow_id": "email_password",
            "step": 0,
            "inputs": {"email": "limited@example.com", "password": "wrong"},
        }
    ).encode()
    for _ in range(5):
        request = urllib.request.Request(
            URL + "/api/providers/acme/auth/login",
            data=body,
            headers={"Authorization": "Bearer " + LIMITED, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            assert json.load(r)["success"] is False
    jwt = page.get_by_label("Access token (JWT)", exact=True)
    jwt.fill(LIMITED)
    jwt.press("Enter")
    expect(page.locator("#identity")).to_contain_text("limited-user")
    provider.select_option("acme")
    method.select_option(label="Email & Password")
    page.get_by_label("Email Address", exact=True).fill("limited@example.com")
    page.get_by_label("Password", exact=True).fill("wrong")
    page.get_by_label("Password", exact=True).press("Enter")
    expect(sentence(login_msg)).to_have_text(
        re.compile(r"^Too many failed sign-ins\. Try again in 1[45] minutes\.$")
    )
    plain(login_msg)
    assert login_msg.inner_text().count("minute") == 1, login_msg.inner_text()
    details_on_demand(login_msg, "HTTP 429")
    shot(page, "desktop-too-many.png")
    # Chromium logs the 429 answer to the console; that one error is expected.
    watch.errors = [e for e in watch.errors if "429" not in e]

    watch.check()
    context.close()


def main():
    os.makedirs(SHOTS, exist_ok=True)
    if os.path.exists(os.path.join(SHOTS, "failure.png")):
        os.remove(os.path.join(SHOTS, "failure.png"))  # from an earlier run
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            desktop(browser)
            links(browser)
            guarded(browser)
            phone(browser)
        except BaseException:
            for context in browser.contexts:
                for page in context.pages:
                    try:
                        page.screenshot(path=os.path.join(SHOTS, "failure.png"), full_page=True)
                        print("page text at the failure:\n" + page.inner_text("body"))
                    except Exception as e:  # the page may be gone
                        print(f"(no failure screenshot: {e})")
            raise
        finally:
            browser.close()
    step("all console checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        raise
