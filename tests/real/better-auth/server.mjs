// A better-auth server: email + password, with the two-factor plugin's TOTP as the second
// factor, set up as better-auth's documentation shows ("Installation", "Plugins: Two-Factor
// Authentication", "Integrations: Node"), on its in-memory adapter.
//
//   node server.mjs STATE_DIR PORT
//
// Once listening it creates its test accounts through its own HTTP API, as a user would:
// `plain@example.com` (password only) and `totp@example.com` (password, then TOTP enabled and
// verified with a code). The TOTP secret goes to STATE_DIR/totp-secret, and STATE_DIR/ready
// is written last.
import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { toNodeHandler } from "better-auth/node";
import { twoFactor } from "better-auth/plugins";
import { createHmac, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";

const [stateDir, port] = process.argv.slice(2);
const base = `http://127.0.0.1:${port}`;
// A server-to-server client sends no Origin of its own; better-auth checks the Origin of
// every cookie-carrying POST against its trusted origins, so the provider file names this one.
export const CLIENT_ORIGIN = "https://tv.example";
export const PASSWORD = "correct horse battery staple";

const db = { user: [], session: [], account: [], verification: [], twoFactor: [] };
const auth = betterAuth({
  appName: "otvi real server",
  baseURL: base,
  secret: randomBytes(32).toString("hex"),
  database: memoryAdapter(db),
  emailAndPassword: { enabled: true },
  trustedOrigins: [CLIENT_ORIGIN],
  plugins: [twoFactor()],
  telemetry: { enabled: false },
});

const server = http.createServer(toNodeHandler(auth));
server.listen(Number(port), "127.0.0.1", async () => {
  try {
    await createAccounts();
    writeFileSync(join(stateDir, "ready"), `${base}\n`);
    console.log(`better-auth listening on ${base}`);
  } catch (e) {
    console.error("cannot create the test accounts:", e);
    process.exit(1);
  }
});

async function call(path, body, cookie) {
  const headers = { "content-type": "application/json", origin: CLIENT_ORIGIN };
  if (cookie) headers.cookie = cookie;
  const r = await fetch(`${base}/api/auth${path}`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${text}`);
  const cookies = r.headers.getSetCookie().map((c) => c.split(";")[0]);
  return { json: JSON.parse(text), cookie: cookies.join("; ") || cookie };
}

async function createAccounts() {
  await call("/sign-up/email", { email: "plain@example.com", password: PASSWORD, name: "Plain" });
  const totp = await call("/sign-up/email", {
    email: "totp@example.com",
    password: PASSWORD,
    name: "Totp",
  });
  const enabled = await call("/two-factor/enable", { password: PASSWORD }, totp.cookie);
  const secret = new URL(enabled.json.totpURI).searchParams.get("secret");
  await call("/two-factor/verify-totp", { code: totpCode(secret) }, enabled.cookie);
  writeFileSync(join(stateDir, "totp-secret"), `${secret}\n`);
}

// RFC 6238 with SHA-1, 6 digits, 30-second steps (better-auth's defaults).
function totpCode(base32) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of base32.replace(/=+$/, "").toUpperCase()) {
    bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(value).padStart(6, "0");
}
