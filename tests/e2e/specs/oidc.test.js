// The Servicekonto as OpenID provider, tested with relying-party libraries nobody here wrote:
// openid-client (v6, on oauth4webapi) in this file and Python's authlib (oidc_authlib.py,
// started with /usr/bin/python3). Login and consent pages run in headless Chromium as the demo
// citizen (demo.json `citizen`); the relying party is the demo client (demo.json
// `oidc_client`, redirect URI http://127.0.0.1:8765/callback). Nothing listens there: the
// browser's request to it is caught (page 'request' event; Playwright's route() does not see
// redirect hops) and handed to the library, so the code never reaches a real server.
//
// 1. Discovery and JWKS.
// 2. The whole flow with openid-client: discovery → authorization URL (PKCE S256, state,
//    nonce) → login → consent page listing the attributes → Allow → code + state + iss →
//    token (client_secret_basic) → ID token (signature by JWKS, acr, amr, auth_time, sid,
//    nonce, at_hash) → userinfo → introspection → refresh with rotation, reuse detection →
//    RP-initiated logout.
// 3. Errors: prompt=none without session, unregistered redirect_uri / unknown client (error
//    page, no redirect), missing or plain PKCE, missing response_type, acr_values above
//    level 1, consent denied.
// 4. Sessions: remembered consent, prompt=none and id_token_hint while logged in,
//    prompt=login, max_age=0 and max_age=10000, parameters an OP must tolerate (display,
//    login_hint, claims_locales, ui_locales, acr_values, unknown parameters, other scope
//    order, no nonce, claims), POST to the authorization endpoint, code reuse, revocation,
//    consent revoked in /konto/einwilligungen, ui_locales=en, axe on the consent page
//    (de, en, Leichte Sprache).
// 5. authlib: code flow with client_secret_post and refresh; client_credentials with
//    client_secret_post; a private_key_jwt client registered with `rathaus clients add
//    --jwks` (key made by authlib) and RS256 ID tokens.
//
// docs/oidc-conformance.md maps these tests to the OpenID Foundation's Basic OP test plan.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as client from 'openid-client';
import {
  launchBrowser,
  withPage,
  gotoOk,
  pageUrl,
  baseUrl,
  navigateBy,
  assertNoAxeViolations,
  norm,
  VIEWPORTS,
} from '../lib/harness.js';
import { demoData } from '../lib/demo.js';

const RP = 'http://127.0.0.1:8765';
const CALLBACK = `${RP}/callback`;
const LOGGED_OUT = `${RP}/logged-out`;
const LEVEL_1 = 'STORK-QAA-Level-1';
const ALLOW = /^(Zulassen|Allow)$/;
const DENY = /^(Ablehnen|Deny)$/;
const PYTHON = '/usr/bin/python3';
const AUTHLIB_SCRIPT = fileURLToPath(new URL('../oidc_authlib.py', import.meta.url));

// What the demo citizen's profile holds while these tests run (set in the setup test).
const PROFILE = {
  given_name: 'Anna',
  family_name: 'Schmidt',
  birth_day: '12',
  birth_month: '04',
  birth_year: '1985',
  street_address: 'Hauptstraße 1',
  postal_code: '31542',
  locality: 'Bad Nenndorf',
  phone_number: '+49 5723 12345',
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

// ---------------------------------------------------------------------------------------
// Relying party: openid-client configured for the demo client
// ---------------------------------------------------------------------------------------

function demoClient() {
  const oc = demoData().oidc_client;
  assert.ok(oc?.client_id && oc?.client_secret, 'demo.json has no oidc_client {client_id, client_secret}');
  assert.equal(oc.redirect_uri, CALLBACK, `demo.json oidc_client.redirect_uri is ${oc.redirect_uri}`);
  return oc;
}

function issuer() {
  const iss = demoData().issuer;
  assert.ok(typeof iss === 'string' && iss, 'demo.json has no "issuer"');
  return iss;
}

let rpConfig;
/** openid-client's Configuration for the demo client: client_secret_basic, ES256 ID tokens
 * whose signatures are checked against the JWKS (enableNonRepudiationChecks). */
async function rp() {
  if (rpConfig) return rpConfig;
  const oc = demoClient();
  rpConfig = await client.discovery(
    new URL(issuer()),
    oc.client_id,
    { client_secret: oc.client_secret, id_token_signed_response_alg: 'ES256' },
    client.ClientSecretBasic(oc.client_secret),
    { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] },
  );
  return rpConfig;
}

let metaCache;
async function meta() {
  if (metaCache) return metaCache;
  const res = await fetch(`${issuer()}/.well-known/openid-configuration`);
  assert.equal(res.status, 200, `discovery answered HTTP ${res.status}`);
  metaCache = await res.json();
  return metaCache;
}

/** A fresh authorization request: PKCE S256, state, nonce; `extra` adds or (undefined) drops. */
async function authRequest(extra = {}) {
  const cfg = await rp();
  const verifier = client.randomPKCECodeVerifier();
  const params = {
    redirect_uri: CALLBACK,
    scope: 'openid profile email',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state: client.randomState(),
    nonce: client.randomNonce(),
    ...extra,
  };
  for (const k of Object.keys(params)) if (params[k] === undefined) delete params[k];
  const url = client.buildAuthorizationUrl(cfg, params);
  return { url, verifier, state: params.state, nonce: params.nonce, params };
}

function basicAuth(id, secret) {
  const enc = (s) => encodeURIComponent(s);
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
}

/** POST a form to an OP endpoint; returns status, content type and parsed body. */
async function postForm(url, params, headers = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json', ...headers },
    body: new URLSearchParams(params),
  });
  const text = await res.text();
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text for the message
  }
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', body };
}

function jwtParts(jwt) {
  const [h, p] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
  };
}

/** at_hash: left half of SHA-256/384/512 (per the JWS alg) of the token, base64url (OIDC Core 3.1.3.6). */
function halfHash(value, alg) {
  const digest = createHash(`sha${alg.slice(-3)}`).update(value, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

/** The OAuth error code of a rejected openid-client call (ResponseBodyError etc.). */
async function oauthError(promise) {
  try {
    await promise;
  } catch (err) {
    return err.error ?? err.code ?? err.message;
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// Browser: the user's side of the authorization endpoint
// ---------------------------------------------------------------------------------------

function loginForm(page) {
  return page.locator('main form[method="post"][action^="/konto/anmelden"]').first();
}

function consentForms(page) {
  return page.locator('main form[method="post"][action^="/oidc/"]');
}

function consentButton(page, name) {
  return consentForms(page).getByRole('button', { name });
}

/**
 * Open `url` (an authorization request) and act as the user until the OP sends the browser
 * to the relying party: log in on /konto/anmelden when asked (unless `login` is false), and
 * on the consent page press Allow (`consent: 'allow'`), Deny ('deny') or nothing ('stop').
 * `inspect(page, 'login' | 'consent')` runs on each such page before acting on it.
 * Returns the callback URL the OP redirected to (null if it never did) and a trace.
 */
async function authorize(page, url, { login = true, consent = 'allow', user = demoData().citizen, inspect = null, maxSteps = 8 } = {}) {
  const trace = { login: 0, consent: 0, consentText: [], steps: [], status: null };
  const rpWatch = watchRp(page);
  const settle = async (action, what) => {
    const res = await navigateBy(page, action, { what }).catch((err) => {
      if (!rpWatch.url) throw err;
      return null;
    });
    if (res) trace.status = res.status();
  };
  let callback = null;
  try {
    const res = await page.goto(String(url), { waitUntil: 'load' }).catch((err) => {
      if (!rpWatch.url) throw err;
      return null;
    });
    if (res) trace.status = res.status();
    for (let i = 0; i < maxSteps && !rpWatch.url; i++) {
      const here = new URL(page.url());
      trace.steps.push(`${here.pathname}${trace.status ? ` (${trace.status})` : ''}`);
      if (here.origin !== baseUrl()) break;
      if (here.pathname === '/konto/anmelden' && (await loginForm(page).count()) > 0) {
        trace.login++;
        if (inspect) await inspect(page, 'login');
        if (!login) break;
        const form = loginForm(page);
        const email = form.locator('#email');
        if ((await email.count()) > 0 && (await email.isEditable())) await email.fill(user.username);
        await form.locator('#password').fill(user.password);
        await settle(() => form.locator('button[type="submit"], button:not([type])').first().click(), 'login');
        continue;
      }
      if (here.pathname.startsWith('/konto/anmelden/')) {
        trace.steps.push('second factor asked (the demo citizen has none)');
        break;
      }
      // The consent page: under /oidc/, a POST form with buttons (labels differ per language).
      if (here.pathname.startsWith('/oidc/') && (await consentForms(page).locator('button').count()) > 0) {
        trace.consent++;
        trace.consentText.push(norm(await page.locator('main').innerText()));
        if (inspect) await inspect(page, 'consent');
        if (consent === 'stop') break;
        const button = consentButton(page, consent === 'deny' ? DENY : ALLOW);
        assert.equal(await button.count(), 1, `consent page ${page.url()}: no single ${consent} button`);
        await settle(() => button.click(), `consent ${consent}`);
        continue;
      }
      break; // a page of the OP that is neither login nor consent (an error page, …)
    }
  } finally {
    callback = await rpWatch.stop();
  }
  return { callback: callback ? new URL(callback) : null, trace };
}

/**
 * Watch `page` for the browser being sent to the relying party. Nothing listens there, so
 * Chromium then commits its own error page; `stop()` waits for that commit (so the next
 * page.goto is not interrupted by it) and returns the URL the OP sent the browser to.
 */
function watchRp(page) {
  let url = null;
  let committed = Promise.resolve();
  const onRequest = (r) => {
    if (url || !r.url().startsWith(`${RP}/`) || r.frame() !== page.mainFrame()) return;
    url = r.url();
    committed = page
      .waitForEvent('framenavigated', {
        predicate: (f) => f === page.mainFrame() && !f.url().startsWith(baseUrl()),
        timeout: 5_000,
      })
      .then(() => page.waitForLoadState('load'))
      .catch(() => {});
  };
  page.on('request', onRequest);
  return {
    get url() {
      return url;
    },
    async stop() {
      page.off('request', onRequest);
      await committed;
      return url;
    },
  };
}

function describe(run, page) {
  return `steps: ${run.trace.steps.join(' → ') || '(none)'}; browser at ${page.url()}`;
}

/** Query parameters of the redirect to the relying party; fails if there was none. */
function callbackParams(run, page, what) {
  assert.ok(run.callback, `${what}: the OP never redirected to ${RP} (${describe(run, page)})`);
  return Object.fromEntries(run.callback.searchParams);
}

/** An error response at the redirect URI (OIDC Core 3.1.2.6) with state and iss (RFC 9207). */
async function assertErrorAtRedirect(run, page, { error, state, what }) {
  const q = callbackParams(run, page, what);
  assert.equal(q.error, error, `${what}: expected error=${error} at the redirect URI, got ${run.callback}`);
  assert.equal(q.state, state, `${what}: the error response does not carry the request's state (${run.callback})`);
  assert.equal(q.code, undefined, `${what}: an error response carries a code`);
  if ((await meta()).authorization_response_iss_parameter_supported) {
    assert.equal(q.iss, issuer(), `${what}: RFC 9207 iss missing or wrong in the error response (${run.callback})`);
  }
  return q;
}

/** Code → tokens with openid-client (state, iss, PKCE, nonce, ID token signature checked). */
async function exchange(req, run, page, checks = {}) {
  callbackParams(run, page, 'authorization');
  return client.authorizationCodeGrant(await rp(), run.callback, {
    pkceCodeVerifier: req.verifier,
    expectedState: req.state,
    expectedNonce: req.nonce,
    idTokenExpected: true,
    ...checks,
  });
}

/** One complete authorization with openid-client; `extra` changes request parameters. */
async function codeFlow(page, extra = {}, opts = {}) {
  const req = await authRequest(extra);
  const run = await authorize(page, req.url, opts);
  return { req, run };
}

/** Make sure `page`'s context has an OP session and consent for 'openid profile email'. */
async function signedIn(page) {
  const { req, run } = await codeFlow(page);
  const tokens = await exchange(req, run, page);
  return { tokens, claims: tokens.claims(), run };
}

// ---------------------------------------------------------------------------------------
// Account pages
// ---------------------------------------------------------------------------------------

async function accountLogin(page, lang = 'de') {
  const { username, password } = demoData().citizen;
  await gotoOk(page, pageUrl('/konto/anmelden', lang, lang === 'de' ? { lang: 'de' } : {}));
  const form = loginForm(page);
  await form.locator('#email').fill(username);
  await form.locator('#password').fill(password);
  await navigateBy(page, () => form.locator('button[type="submit"], button:not([type])').first().click(), { what: 'login' });
  assert.equal(new URL(page.url()).pathname, '/konto', `demo citizen login ended on ${page.url()}`);
}

/** Revoke the consent for `clientId` on /konto/einwilligungen; false if there was none. */
async function revokeConsent(page, clientId) {
  await gotoOk(page, pageUrl('/konto/einwilligungen', 'de', { lang: 'de' }));
  const form = page.locator('main form[action^="/konto/einwilligungen/widerrufen"]').filter({
    has: page.locator(`input[name="client_id"][value="${clientId}"]`),
  });
  if ((await form.count()) === 0) return false;
  await navigateBy(page, () => form.locator('button[type="submit"]').click(), { what: 'revoke consent' });
  assert.match(page.url(), /gesendet=widerrufen/, `revoking the consent ended on ${page.url()}`);
  return true;
}

/** The page's language as the language switch marks it (as servicekonto.test.js checks). */
async function assertLanguage(page, lang) {
  const current = await page.locator('.lang-switch a[aria-current="true"]').getAttribute('href', { timeout: 2_000 }).catch(() => null);
  assert.match(current ?? '', new RegExp(`[?&]lang=${lang}\\b`), `${page.url()} is not in lang=${lang} (language switch: ${current})`);
}

// ---------------------------------------------------------------------------------------
// 1. Discovery and JWKS
// ---------------------------------------------------------------------------------------

test('discovery (OIDC Discovery 1.0 § 3) and JWKS: endpoints, PKCE S256 only, ES256 + RS256 public keys', async () => {
  const m = await meta();
  const iss = issuer();
  assert.equal(m.issuer, iss, 'issuer in the discovery document differs from demo.json issuer');
  assert.equal(iss, baseUrl(), 'issuer is not the public base URL');
  const endpoints = {
    authorization_endpoint: '/oidc/authorize',
    token_endpoint: '/oauth/token',
    userinfo_endpoint: '/oidc/userinfo',
    jwks_uri: '/oidc/jwks',
    introspection_endpoint: '/oauth/introspect',
    revocation_endpoint: '/oauth/revoke',
    end_session_endpoint: '/oidc/logout',
  };
  for (const [key, p] of Object.entries(endpoints)) assert.equal(m[key], `${iss}${p}`, `discovery ${key}`);
  assert.deepEqual(m.response_types_supported, ['code'], 'code flow only');
  assert.deepEqual(m.code_challenge_methods_supported, ['S256'], 'PKCE: S256 only, plain refused');
  for (const alg of ['ES256', 'RS256']) assert.ok(m.id_token_signing_alg_values_supported?.includes(alg), `id_token_signing_alg_values_supported lacks ${alg}`);
  assert.ok(!m.id_token_signing_alg_values_supported.includes('none'), 'alg none offered');
  for (const method of ['client_secret_basic', 'client_secret_post', 'private_key_jwt']) {
    assert.ok(m.token_endpoint_auth_methods_supported?.includes(method), `token_endpoint_auth_methods_supported lacks ${method}`);
  }
  for (const s of ['openid', 'profile', 'email', 'address', 'phone', 'offline_access']) assert.ok(m.scopes_supported?.includes(s), `scopes_supported lacks ${s}`);
  assert.ok(Array.isArray(m.subject_types_supported) && m.subject_types_supported.length > 0, 'subject_types_supported missing (REQUIRED)');
  assert.ok(m.acr_values_supported?.includes(LEVEL_1), `acr_values_supported lacks ${LEVEL_1}`);
  assert.equal(m.authorization_response_iss_parameter_supported, true, 'RFC 9207 iss not announced');
  // Request objects are refused (request_not_supported / request_uri_not_supported), so the
  // metadata must say so: request_uri_parameter_supported defaults to true (Discovery § 3).
  assert.equal(m.request_uri_parameter_supported, false, 'request_uri_parameter_supported must be false (its default is true)');
  assert.notEqual(m.request_parameter_supported, true, 'request_parameter_supported is true, but request objects are refused');

  // openid-client accepts the document (it checks issuer equality itself).
  const cfg = await rp();
  assert.equal(cfg.serverMetadata().issuer, iss);

  const res = await fetch(m.jwks_uri);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /json/);
  const { keys } = await res.json();
  assert.ok(Array.isArray(keys) && keys.length >= 2, `JWKS has ${keys?.length} keys`);
  const kids = keys.map((k) => k.kid);
  assert.equal(new Set(kids).size, kids.length, `duplicate kid in the JWKS: ${kids}`);
  for (const k of keys) {
    assert.ok(k.kid, 'a JWKS key without kid (OIDC Core 10.1: needed with several keys)');
    const leaked = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].filter((x) => x in k);
    assert.deepEqual(leaked, [], `key ${k.kid} publishes private members ${leaked}`);
    if (k.use !== undefined) assert.equal(k.use, 'sig');
  }
  assert.ok(keys.some((k) => k.kty === 'EC' && k.crv === 'P-256'), 'no P-256 key (ES256)');
  assert.ok(keys.some((k) => k.kty === 'RSA' && Buffer.from(k.n, 'base64url').length >= 256), 'no RSA key of >= 2048 bits (RS256)');
});

// ---------------------------------------------------------------------------------------
// Setup: claims to release
// ---------------------------------------------------------------------------------------

test('setup: the demo citizen fills the profile (the claims the scopes release) and has no consent for the demo client yet', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    await accountLogin(page);
    await gotoOk(page, pageUrl('/konto/profil', 'de', { lang: 'de' }));
    for (const [name, value] of Object.entries(PROFILE)) await page.locator(`#${name}`).fill(value);
    const form = page.locator('main form[action^="/konto/profil"]');
    const res = await navigateBy(page, () => form.locator('button[type="submit"]').click(), { what: 'save profile' });
    assert.equal(res?.status(), 200, `saving the profile answered HTTP ${res?.status()}`);
    assert.match(page.url(), /gesendet=gespeichert/, `saving the profile ended on ${page.url()}`);
    // A server reused from an earlier run may remember a consent: start without it.
    await revokeConsent(page, demoClient().client_id);
  });
});

// ---------------------------------------------------------------------------------------
// 2. The whole flow with openid-client
// ---------------------------------------------------------------------------------------

test('openid-client: code flow with PKCE, consent, ID token, userinfo, introspection, refresh rotation, logout', { timeout: 180_000 }, async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const cfg = await rp();
    const oc = demoClient();
    const m = await meta();
    const scope = 'openid profile email address phone offline_access';
    // offline_access with prompt=consent, as OIDC Core § 11 asks.
    const req = await authRequest({ scope, prompt: 'consent' });
    let run;
    let tokens;
    let claims;
    let rt2;

    await t.test('authorization: login page, consent page listing the attributes, Allow → code, state, iss', async () => {
      assert.equal(req.url.searchParams.get('code_challenge_method'), 'S256');
      run = await authorize(page, req.url, { consent: 'allow' });
      assert.equal(run.trace.login, 1, `the OP did not ask the signed-out user to log in (${describe(run, page)})`);
      assert.equal(run.trace.consent, 1, `no consent page (${describe(run, page)})`);
      const text = run.trace.consentText[0];
      for (const [what, re] of [
        ['name (profile)', /Name/],
        ['date of birth (profile)', /Geburtsdatum/],
        ['e-mail address (email)', /E-Mail/],
        ['address (address)', /Anschrift|Adresse/],
        ['phone number (phone)', /Telefon/],
      ]) {
        assert.match(text, re, `the consent page does not list the ${what}: "${text.slice(0, 600)}"`);
      }
      if (oc.name) assert.ok(text.includes(oc.name), `the consent page does not name the client "${oc.name}"`);
      const q = callbackParams(run, page, 'authorization');
      assert.ok(q.code, `no code at the redirect URI: ${run.callback}`);
      assert.equal(q.state, req.state);
      assert.equal(q.iss, issuer(), 'RFC 9207 iss');
      assert.equal(run.callback.origin + run.callback.pathname, CALLBACK);
    });

    await t.test('token request (client_secret_basic) and ID token: signature by the JWKS (ES256), acr, amr, auth_time, sid, nonce, at_hash', async () => {
      const before = Math.floor(Date.now() / 1000);
      tokens = await exchange(req, run, page);
      claims = tokens.claims();
      assert.equal(tokens.token_type.toLowerCase(), 'bearer');
      assert.ok(tokens.expiresIn() > 0, 'no expires_in');
      assert.ok(tokens.refresh_token, 'no refresh_token for offline_access with prompt=consent');
      const { header } = jwtParts(tokens.id_token);
      assert.equal(header.alg, 'ES256', 'default ID token alg');
      const jwks = await (await fetch(m.jwks_uri)).json();
      assert.ok(jwks.keys.some((k) => k.kid === header.kid), `ID token kid ${header.kid} is not in the JWKS`);
      assert.equal(claims.iss, issuer());
      assert.deepEqual([claims.aud].flat(), [oc.client_id]);
      assert.equal(claims.nonce, req.nonce);
      assert.equal(claims.acr, LEVEL_1, `acr is ${claims.acr}`);
      assert.ok(Array.isArray(claims.amr) && claims.amr.length > 0, `amr: ${JSON.stringify(claims.amr)}`);
      // RFC 8176: a password login is "pwd".
      assert.ok(claims.amr.includes('pwd'), `amr ${JSON.stringify(claims.amr)} lacks "pwd" (RFC 8176) for a password login`);
      assert.equal(typeof claims.auth_time, 'number', 'auth_time');
      assert.ok(claims.auth_time <= claims.iat && claims.auth_time > before - 120, `auth_time ${claims.auth_time} is not this login (iat ${claims.iat})`);
      assert.ok(typeof claims.sid === 'string' && claims.sid.length > 0, 'sid');
      assert.ok(claims.exp > claims.iat);
      assert.equal(claims.at_hash, halfHash(tokens.access_token, header.alg), 'at_hash');
      assert.ok(typeof claims.sub === 'string' && claims.sub.length > 0);
      assert.ok(!claims.sub.includes(demoData().citizen.username), 'sub exposes the e-mail address');
    });

    await t.test('userinfo: GET and POST with the Bearer header; the released claims', async () => {
      const info = await client.fetchUserInfo(cfg, tokens.access_token, claims.sub);
      assert.equal(info.sub, claims.sub);
      assert.equal(info.email, demoData().citizen.username);
      assert.equal(info.given_name, PROFILE.given_name);
      assert.equal(info.family_name, PROFILE.family_name);
      assert.equal(info.birthdate, `${PROFILE.birth_year}-${PROFILE.birth_month}-${PROFILE.birth_day}`, 'birthdate (YYYY-MM-DD, OIDC Core 5.1)');
      assert.equal(typeof info.address, 'object', `address claim: ${JSON.stringify(info.address)}`);
      assert.equal(info.address.postal_code, PROFILE.postal_code);
      assert.equal(info.address.locality, PROFILE.locality);
      assert.match(info.address.street_address ?? '', /Hauptstraße 1/);
      assert.match((info.phone_number ?? '').replace(/\D/g, ''), /5723\s*12345|572312345/, `phone_number ${info.phone_number}`);
      const post = await fetch(m.userinfo_endpoint, { method: 'POST', headers: { Authorization: `Bearer ${tokens.access_token}` } });
      assert.equal(post.status, 200, `POST userinfo answered HTTP ${post.status}`);
      assert.equal((await post.json()).sub, claims.sub);
      // Without a token: 401 with a Bearer challenge (RFC 6750 § 3).
      const anon = await fetch(m.userinfo_endpoint);
      assert.equal(anon.status, 401);
      assert.match(anon.headers.get('www-authenticate') ?? '', /^Bearer/i, 'no WWW-Authenticate: Bearer');
    });

    await t.test('introspection (RFC 7662): active access token with sub, client_id, scope; 401 without client authentication', async () => {
      const intro = await client.tokenIntrospection(cfg, tokens.access_token);
      assert.equal(intro.active, true, JSON.stringify(intro));
      assert.equal(intro.sub, claims.sub);
      assert.equal(intro.client_id, oc.client_id);
      assert.ok((intro.scope ?? '').split(' ').includes('openid'), `scope ${intro.scope}`);
      assert.ok(typeof intro.exp === 'number' && intro.exp > Date.now() / 1000, `exp ${intro.exp}`);
      const bogus = await client.tokenIntrospection(cfg, 'not-a-token');
      assert.equal(bogus.active, false, `an unknown token introspects as ${JSON.stringify(bogus)}`);
      // RFC 7662 § 2.2: SHOULD NOT say more about an inactive token.
      assert.deepEqual(Object.keys(bogus).filter((k) => k !== 'active'), [], `inactive token with details: ${JSON.stringify(bogus)}`);
      const anon = await postForm(m.introspection_endpoint, { token: tokens.access_token });
      assert.equal(anon.status, 401, `introspection without client authentication answered HTTP ${anon.status}`);
    });

    await t.test('refresh: rotation; reusing the old refresh token → invalid_grant and the new one is revoked too', async () => {
      const rt1 = tokens.refresh_token;
      const refreshed = await client.refreshTokenGrant(cfg, rt1);
      rt2 = refreshed.refresh_token;
      assert.ok(rt2 && rt2 !== rt1, 'refresh did not rotate the refresh token');
      assert.ok(refreshed.access_token && refreshed.access_token !== tokens.access_token, 'no new access token');
      if (refreshed.id_token) {
        // OIDC Core 12.2: same iss, sub, aud; auth_time of the original authentication.
        const c2 = refreshed.claims();
        for (const k of ['iss', 'sub', 'auth_time', 'acr']) assert.deepEqual(c2[k], claims[k], `refreshed ID token: ${k}`);
      }
      const info = await client.fetchUserInfo(cfg, refreshed.access_token, claims.sub);
      assert.equal(info.sub, claims.sub);

      const reuse = await oauthError(client.refreshTokenGrant(cfg, rt1));
      assert.equal(reuse, 'invalid_grant', `reusing the rotated refresh token gave ${reuse}`);
      const after = await oauthError(client.refreshTokenGrant(cfg, rt2));
      assert.equal(after, 'invalid_grant', `after a reuse the newest refresh token still worked (${after}): the family was not revoked`);
    });

    await t.test('RP-initiated logout: id_token_hint, post_logout_redirect_uri, state → back at the RP; the OP session is gone', async () => {
      const state = client.randomState();
      const url = client.buildEndSessionUrl(cfg, {
        id_token_hint: tokens.id_token,
        post_logout_redirect_uri: LOGGED_OUT,
        state,
      });
      assert.equal(url.origin + url.pathname, m.end_session_endpoint);
      const rpWatch = watchRp(page);
      let back = null;
      try {
        await page.goto(String(url)).catch((err) => {
          if (!rpWatch.url) throw err;
        });
        if (!rpWatch.url) {
          // The OP may ask before logging out (RP-Initiated Logout 1.0 § 2): confirm.
          const confirm = page.locator('main form[method="post"] button[type="submit"], main form[method="post"] button:not([type])').first();
          assert.equal(await confirm.count(), 1, `logout: neither a redirect nor a confirmation form at ${page.url()}`);
          await navigateBy(page, () => confirm.click(), { what: 'confirm logout' }).catch((err) => {
            if (!rpWatch.url) throw err;
          });
        }
        if (!rpWatch.url) {
          // Or a "done" page (e.g. with front-channel logout frames) and a link back to the RP.
          const link = page.locator(`main a[href^="${LOGGED_OUT}"]`);
          assert.equal(await link.count(), 1, `logout: no redirect and no link to ${LOGGED_OUT} at ${page.url()}: ${norm(await page.locator('main').innerText()).slice(0, 300)}`);
          await navigateBy(page, () => link.click(), { what: 'continue to the RP' }).catch((err) => {
            if (!rpWatch.url) throw err;
          });
        }
      } finally {
        back = await rpWatch.stop();
      }
      assert.ok(back, `logout did not redirect to ${LOGGED_OUT} (browser at ${page.url()})`);
      const b = new URL(back);
      assert.equal(b.origin + b.pathname, LOGGED_OUT);
      assert.equal(b.searchParams.get('state'), state, `logout redirect without the state: ${back}`);

      const none = await authRequest({ prompt: 'none' });
      const r = await authorize(page, none.url, { login: false });
      await assertErrorAtRedirect(r, page, { error: 'login_required', state: none.state, what: 'prompt=none after logout' });
      const konto = await page.goto(pageUrl('/konto'));
      assert.equal(new URL(page.url()).pathname, '/konto/anmelden', `after logout /konto did not ask to log in (HTTP ${konto?.status()})`);
    });
  });
});

// ---------------------------------------------------------------------------------------
// 3. Errors
// ---------------------------------------------------------------------------------------

test('prompt=none without a session → error=login_required at the redirect URI, with state; no login page', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const req = await authRequest({ prompt: 'none' });
    const run = await authorize(page, req.url, { login: false });
    assert.equal(run.trace.login, 0, `prompt=none showed the login page (${describe(run, page)})`);
    await assertErrorAtRedirect(run, page, { error: 'login_required', state: req.state, what: 'prompt=none' });
  });
});

test('unregistered redirect_uri, unknown client_id, missing redirect_uri → error page at the OP, never a redirect', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const cases = [
      ['unregistered redirect_uri', { redirect_uri: `${RP}/evil` }],
      ['redirect_uri differing in a trailing slash', { redirect_uri: `${CALLBACK}/` }],
      ['redirect_uri with an added query', { redirect_uri: `${CALLBACK}?x=1` }],
      ['missing redirect_uri', { redirect_uri: undefined }],
      ['unknown client_id', { client_id: 'no-such-client' }],
    ];
    for (const [what, extra] of cases) {
      const req = await authRequest(extra);
      const seen = [];
      const onRequest = (r) => {
        if (r.url().startsWith(`${RP}/`)) seen.push(r.url());
      };
      page.on('request', onRequest);
      const res = await page.goto(String(req.url));
      await sleep(300);
      page.off('request', onRequest);
      assert.deepEqual(seen, [], `${what}: the OP redirected to ${seen[0]}`);
      assert.equal(new URL(page.url()).origin, baseUrl(), `${what}: the browser left the OP (${page.url()})`);
      assert.ok(res.status() >= 400 && res.status() < 500, `${what}: the error page answered HTTP ${res.status()}`);
      assert.equal(await loginForm(page).count(), 0, `${what}: the OP asked to log in before rejecting the request`);
    }
    await assertNoAxeViolations(page, 'authorization error page (unknown client)');
  });
});

test('PKCE: missing code_challenge, code_challenge_method=plain or missing → invalid_request at the redirect URI', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const verifier = client.randomPKCECodeVerifier();
    for (const [what, extra] of [
      ['no code_challenge', { code_challenge: undefined, code_challenge_method: undefined }],
      ['code_challenge_method=plain', { code_challenge: verifier, code_challenge_method: 'plain' }],
      ['code_challenge without a method (RFC 7636 default: plain)', { code_challenge_method: undefined }],
    ]) {
      const req = await authRequest(extra);
      const run = await authorize(page, req.url);
      await assertErrorAtRedirect(run, page, { error: 'invalid_request', state: req.state, what });
    }
  });
});

test('PKCE: a wrong code_verifier at the token endpoint → invalid_grant', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const { req, run } = await codeFlow(page);
    const err = await oauthError(exchange({ ...req, verifier: client.randomPKCECodeVerifier() }, run, page));
    assert.equal(err, 'invalid_grant', `a wrong code_verifier gave ${err}`);
  });
});

test('response_type missing → invalid_request (or an error page); response_type=token → unsupported_response_type', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const req = await authRequest();
    req.url.searchParams.delete('response_type');
    const run = await authorize(page, req.url, { login: false });
    if (run.callback) {
      const q = callbackParams(run, page, 'no response_type');
      assert.ok(['invalid_request', 'unsupported_response_type'].includes(q.error), `no response_type gave ${run.callback}`);
      assert.equal(q.state, req.state);
    } else {
      assert.ok(run.trace.status >= 400, `no response_type: neither an error redirect nor an error page (${describe(run, page)})`);
    }
    const tok = await authRequest({ response_type: 'token' });
    const r2 = await authorize(page, tok.url, { login: false });
    await assertErrorAtRedirect(r2, page, { error: 'unsupported_response_type', state: tok.state, what: 'response_type=token' });
  });
});

test('request objects are refused as unsupported: request → request_not_supported, request_uri → request_uri_not_supported', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const unsigned = (claims) =>
      `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;
    const req = await authRequest();
    req.url.searchParams.set('request', unsigned(Object.fromEntries(req.url.searchParams)));
    const run = await authorize(page, req.url);
    await assertErrorAtRedirect(run, page, { error: 'request_not_supported', state: req.state, what: 'request (unsigned)' });
    const req2 = await authRequest({ request_uri: 'https://rp.example/request.jwt' });
    const run2 = await authorize(page, req2.url);
    await assertErrorAtRedirect(run2, page, { error: 'request_uri_not_supported', state: req2.state, what: 'request_uri' });
  });
});

test('acr_values=STORK-QAA-Level-3 (and eIDAS substantial) → error=unmet_authentication_requirements', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    for (const acr of ['STORK-QAA-Level-3', 'http://eidas.europa.eu/LoA/substantial']) {
      const req = await authRequest({ acr_values: acr });
      const run = await authorize(page, req.url);
      await assertErrorAtRedirect(run, page, { error: 'unmet_authentication_requirements', state: req.state, what: `acr_values=${acr}` });
    }
  });
});

test('consent denied → error=access_denied at the redirect URI, with state', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const req = await authRequest({ prompt: 'consent' });
    const run = await authorize(page, req.url, { consent: 'deny' });
    assert.equal(run.trace.consent, 1, `no consent page (${describe(run, page)})`);
    await assertErrorAtRedirect(run, page, { error: 'access_denied', state: req.state, what: 'Deny' });
  });
});

// ---------------------------------------------------------------------------------------
// 4. Sessions
// ---------------------------------------------------------------------------------------

test('remembered consent: a second authorization for the same scopes shows no consent page', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    await signedIn(page);
    const { req, run } = await codeFlow(page);
    assert.equal(run.trace.login, 0, `logged in, yet asked to log in (${describe(run, page)})`);
    assert.equal(run.trace.consent, 0, `consent was given, yet the consent page came again (${describe(run, page)})`);
    await exchange(req, run, page);
  });
});

test('prompt=none while logged in, also with id_token_hint → a code without any page; same sub and auth_time', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const first = await signedIn(page);
    for (const [what, extra] of [
      ['prompt=none', { prompt: 'none' }],
      ['prompt=none with id_token_hint', { prompt: 'none', id_token_hint: first.tokens.id_token }],
    ]) {
      const { req, run } = await codeFlow(page, extra, { login: false, consent: 'stop' });
      assert.ok(run.callback, `${what}: no redirect (${describe(run, page)})`);
      const tokens = await exchange(req, run, page);
      const c = tokens.claims();
      assert.equal(c.sub, first.claims.sub, `${what}: another sub`);
      assert.equal(c.auth_time, first.claims.auth_time, `${what}: auth_time changed without a login`);
    }
  });
});

test('prompt=login forces the login page again; auth_time moves on', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const first = await signedIn(page);
    await sleep(1_100);
    const { req, run } = await codeFlow(page, { prompt: 'login' });
    assert.equal(run.trace.login, 1, `prompt=login did not show the login page (${describe(run, page)})`);
    const c = (await exchange(req, run, page)).claims();
    assert.equal(c.sub, first.claims.sub);
    assert.ok(c.auth_time > first.claims.auth_time, `auth_time ${c.auth_time} not later than ${first.claims.auth_time}`);
  });
});

test('max_age=1 (after 2 s) and max_age=0 force a new login (auth_time later); max_age=10000 does not', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const first = await signedIn(page);
    const { req, run } = await codeFlow(page, { max_age: '10000' });
    assert.equal(run.trace.login, 0, `max_age=10000 asked to log in again (${describe(run, page)})`);
    const c1 = (await exchange(req, run, page, { maxAge: 10000 })).claims();
    assert.equal(c1.auth_time, first.claims.auth_time, 'max_age=10000: auth_time changed');

    // As the conformance suite's oidcc-max-age-1: wait 2 s, then max_age=1.
    await sleep(2_000);
    const one = await codeFlow(page, { max_age: '1' });
    assert.equal(one.run.trace.login, 1, `max_age=1 two seconds after the login did not ask to log in again (${describe(one.run, page)})`);
    const c1b = (await exchange(one.req, one.run, page, { maxAge: 1 })).claims();
    assert.ok(c1b.auth_time > first.claims.auth_time, `max_age=1: auth_time ${c1b.auth_time} not later than ${first.claims.auth_time}`);

    await sleep(1_100);
    const again = await codeFlow(page, { max_age: '0' });
    assert.equal(again.run.trace.login, 1, `max_age=0 did not ask to log in again (${describe(again.run, page)})`);
    const c2 = (await exchange(again.req, again.run, page, { maxAge: 0 })).claims();
    assert.equal(typeof c2.auth_time, 'number', 'max_age makes auth_time REQUIRED (OIDC Core 3.1.2.1)');
    assert.ok(c2.auth_time > c1b.auth_time, `max_age=0: auth_time ${c2.auth_time} not later than ${c1b.auth_time}`);
  });
});

test('each scope releases its claims and no others (OIDC Core 5.4): profile, email, address, phone, all', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const cfg = await rp();
    const CLAIMS = {
      profile: ['given_name', 'family_name', 'birthdate'],
      email: ['email'],
      address: ['address'],
      phone: ['phone_number'],
    };
    const all = Object.values(CLAIMS).flat();
    for (const scopes of [['profile'], ['email'], ['address'], ['phone'], ['profile', 'email', 'address', 'phone']]) {
      const { req, run } = await codeFlow(page, { scope: `openid ${scopes.join(' ')}` });
      const tokens = await exchange(req, run, page);
      const info = await client.fetchUserInfo(cfg, tokens.access_token, tokens.claims().sub);
      const want = scopes.flatMap((s) => CLAIMS[s]);
      for (const c of want) assert.ok(info[c] !== undefined && info[c] !== '', `scope ${scopes.join(' ')}: userinfo lacks ${c}: ${JSON.stringify(info)}`);
      for (const c of all.filter((x) => !want.includes(x))) assert.equal(info[c], undefined, `scope ${scopes.join(' ')}: userinfo releases ${c}`);
      // OIDC Core 5.4 sends these claims to userinfo when an access token is issued; in the
      // ID token they are allowed but unneeded (the suite only warns): noted, not asserted.
      const inIdToken = all.filter((c) => tokens.claims()[c] !== undefined);
      if (inIdToken.length) t.diagnostic(`scope ${scopes.join(' ')}: the ID token also carries ${inIdToken.join(', ')}`);
    }
  });
});

test('parameters an OP must accept: display, login_hint, ui_locales, claims_locales, acr_values, unknown ones, other scope order, no nonce, claims', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    await signedIn(page);
    const m = await meta();
    const cases = [
      ['display=page', { display: 'page' }],
      ['display=popup', { display: 'popup' }],
      ['login_hint', { login_hint: demoData().citizen.username }],
      ['ui_locales=se (not offered)', { ui_locales: 'se' }],
      ['claims_locales=se', { claims_locales: 'se' }],
      ['acr_values = all of acr_values_supported', { acr_values: (m.acr_values_supported ?? [LEVEL_1]).join(' ') }],
      ['unknown parameter', { extra_param: 'foobar' }],
      ['scope in another order', { scope: 'email openid' }],
      ['unknown scope', { scope: 'openid profile email no-such-scope' }],
      ['no nonce (code flow)', { nonce: undefined }],
      ['claims requesting name as essential', { claims: JSON.stringify({ userinfo: { name: { essential: true } } }) }],
      ['prompt=consent login (both)', { prompt: 'login consent' }],
    ];
    for (const [what, extra] of cases) {
      const { req, run } = await codeFlow(page, extra);
      const q = callbackParams(run, page, what);
      assert.ok(q.code, `${what}: no code but ${run.callback}`);
      const tokens = await exchange(req, run, page);
      const c = tokens.claims();
      if (what.startsWith('no nonce')) assert.equal(c.nonce, undefined, 'a nonce in the ID token although none was sent');
      if (what.startsWith('acr_values')) assert.ok(req.params.acr_values.split(' ').includes(c.acr), `acr ${c.acr} is not one of the requested values`);
    }
  });
});

test('authorization request sent as a form POST (OIDC Core 3.1.2.1) succeeds', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    await signedIn(page);
    const req = await authRequest();
    const endpoint = req.url.origin + req.url.pathname;
    // A page of the OP's own origin posts the form, as an RP page would from elsewhere.
    await gotoOk(page, pageUrl('/'));
    await page.evaluate(
      ({ endpoint, params }) => {
        const f = document.createElement('form');
        f.method = 'post';
        f.action = endpoint;
        for (const [k, v] of params) {
          const i = document.createElement('input');
          i.type = 'hidden';
          i.name = k;
          i.value = v;
          f.append(i);
        }
        document.body.append(f);
      },
      { endpoint, params: [...req.url.searchParams] },
    );
    const rpWatch = watchRp(page);
    await navigateBy(page, () => page.evaluate(() => document.forms[document.forms.length - 1].submit()), { what: 'POST authorize' }).catch((err) => {
      if (!rpWatch.url) throw err;
    });
    const callback = await rpWatch.stop();
    assert.ok(callback, `POST to the authorization endpoint did not redirect to the RP (at ${page.url()})`);
    await exchange(req, { callback: new URL(callback), trace: { steps: [] } }, page);
  });
});

test('authorization code reuse → 400 invalid_grant (JSON); tokens issued for that code are revoked (RFC 6749 4.1.2 SHOULD)', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const m = await meta();
    const oc = demoClient();
    const { req, run } = await codeFlow(page);
    const tokens = await exchange(req, run, page);
    const again = await postForm(
      m.token_endpoint,
      { grant_type: 'authorization_code', code: run.callback.searchParams.get('code'), redirect_uri: CALLBACK, code_verifier: req.verifier },
      { Authorization: basicAuth(oc.client_id, oc.client_secret) },
    );
    assert.equal(again.status, 400, `reused code answered HTTP ${again.status}: ${JSON.stringify(again.body)}`);
    assert.match(again.contentType, /^application\/json/);
    assert.equal(again.body.error, 'invalid_grant');
    assert.doesNotMatch(again.body.error_description ?? '', /[\r\n\t"\\]/, 'error_description with characters RFC 6749 5.2 excludes');
    const intro = await client.tokenIntrospection(await rp(), tokens.access_token);
    assert.equal(intro.active, false, 'the access token from a reused code is still active');
  });
});

test('revocation (RFC 7009): access token → inactive, userinfo 401; refresh token → invalid_grant; unknown token → 200; refresh token bound to its client', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const cfg = await rp();
    const m = await meta();
    const scope = 'openid profile email offline_access';

    let { req, run } = await codeFlow(page, { scope, prompt: 'consent' });
    let tokens = await exchange(req, run, page);
    assert.ok(tokens.refresh_token, 'no refresh_token');
    await client.tokenRevocation(cfg, tokens.access_token, { token_type_hint: 'access_token' });
    const intro = await client.tokenIntrospection(cfg, tokens.access_token);
    assert.equal(intro.active, false, 'revoked access token still active');
    const ui = await fetch(m.userinfo_endpoint, { headers: { Authorization: `Bearer ${tokens.access_token}` } });
    assert.equal(ui.status, 401, `userinfo with a revoked access token answered HTTP ${ui.status}`);
    assert.match(ui.headers.get('www-authenticate') ?? '', /invalid_token/, 'no error="invalid_token" challenge');

    ({ req, run } = await codeFlow(page, { scope, prompt: 'consent' }));
    tokens = await exchange(req, run, page);
    // Another client cannot use this refresh token (RFC 6749 § 6, refresh token bound to the client).
    const api = demoData().postfach_api;
    const foreign = await postForm(
      m.token_endpoint,
      { grant_type: 'refresh_token', refresh_token: tokens.refresh_token },
      { Authorization: basicAuth(api.client_id, api.client_secret) },
    );
    assert.equal(foreign.status, 400, `another client's refresh token answered HTTP ${foreign.status}: ${JSON.stringify(foreign.body)}`);
    assert.ok(['invalid_grant', 'unauthorized_client'].includes(foreign.body.error), `another client's refresh token: ${JSON.stringify(foreign.body)}`);

    await client.tokenRevocation(cfg, tokens.refresh_token, { token_type_hint: 'refresh_token' });
    const err = await oauthError(client.refreshTokenGrant(cfg, tokens.refresh_token));
    assert.equal(err, 'invalid_grant', `a revoked refresh token gave ${err}`);
    const rtIntro = await client.tokenIntrospection(cfg, tokens.access_token);
    t.diagnostic(`access token after its refresh token was revoked: active=${rtIntro.active} (RFC 7009 § 2.1: SHOULD be invalidated)`);

    // Unknown tokens: 200 (RFC 7009 § 2.2); without client authentication: 401.
    await client.tokenRevocation(cfg, 'no-such-token');
    const anon = await postForm(m.revocation_endpoint, { token: tokens.access_token });
    assert.equal(anon.status, 401, `revocation without client authentication answered HTTP ${anon.status}`);
  });
});

test('consent revoked on /konto/einwilligungen: prompt=none → consent_required, then the consent page appears again', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    await signedIn(page);
    const oc = demoClient();
    await gotoOk(page, pageUrl('/konto/einwilligungen', 'de', { lang: 'de' }));
    const listed = page.locator(`main input[name="client_id"][value="${oc.client_id}"]`);
    assert.equal(await listed.count(), 1, 'the demo client is not listed on /konto/einwilligungen after consent');
    assert.equal(await revokeConsent(page, oc.client_id), true);
    assert.equal(await page.locator(`main input[name="client_id"][value="${oc.client_id}"]`).count(), 0, 'the consent is still listed');

    const none = await authRequest({ prompt: 'none' });
    const r = await authorize(page, none.url, { login: false, consent: 'stop' });
    await assertErrorAtRedirect(r, page, { error: 'consent_required', state: none.state, what: 'prompt=none without consent' });

    const { req, run } = await codeFlow(page);
    assert.equal(run.trace.consent, 1, `after revoking, no consent page (${describe(run, page)})`);
    await exchange(req, run, page);
  });
});

test('ui_locales=en: login and consent pages in English (Allow), without any language cookie', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const req = await authRequest({ ui_locales: 'en', prompt: 'consent' });
    const seen = {};
    const run = await authorize(page, req.url, {
      inspect: async (p, kind) => {
        seen[kind] = {
          htmlLang: await p.locator('html').getAttribute('lang'),
          allow: await consentButton(p, /^Allow$/).count(),
          deny: await consentButton(p, /^Deny$/).count(),
        };
      },
    });
    assert.equal(run.trace.login, 1, `no login page (${describe(run, page)})`);
    assert.equal(run.trace.consent, 1, `no consent page (${describe(run, page)})`);
    assert.match(seen.login.htmlLang ?? '', /^en\b/i, `login page for ui_locales=en has <html lang="${seen.login.htmlLang}">`);
    assert.match(seen.consent.htmlLang ?? '', /^en\b/i, `consent page for ui_locales=en has <html lang="${seen.consent.htmlLang}">`);
    assert.equal(seen.consent.allow, 1, 'no "Allow" button on the English consent page');
    assert.equal(seen.consent.deny, 1, 'no "Deny" button on the English consent page');
    await exchange(req, run, page);
  });
});

for (const lang of ['de', 'en', 'ls']) {
  test(`axe on the consent page, lang=${lang}`, async (t) => {
    await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
      await accountLogin(page);
      // The site remembers the language chosen by ?lang= (as servicekonto.test.js relies on).
      await gotoOk(page, pageUrl('/', lang, lang === 'de' ? { lang: 'de' } : {}));
      const req = await authRequest({ scope: 'openid profile email address phone', prompt: 'consent' });
      const run = await authorize(page, req.url, { consent: 'stop' });
      assert.equal(run.trace.consent, 1, `no consent page (${describe(run, page)})`);
      await assertLanguage(page, lang);
      await assertNoAxeViolations(page, `consent page (${lang})`);
      const htmlLang = await page.locator('html').getAttribute('lang');
      assert.match(htmlLang ?? '', lang === 'en' ? /^en\b/i : /^de\b/i, `<html lang="${htmlLang}">`);
    });
  });
}

test('RP-initiated logout with an unregistered post_logout_redirect_uri: no redirect there', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const { tokens } = await signedIn(page);
    const url = client.buildEndSessionUrl(await rp(), {
      id_token_hint: tokens.id_token,
      post_logout_redirect_uri: `${RP}/evil`,
      state: 'x',
    });
    const seen = [];
    const onRequest = (r) => {
      if (r.url().startsWith(`${RP}/`)) seen.push(r.url());
    };
    page.on('request', onRequest);
    const res = await page.goto(String(url));
    const confirm = page.locator('main form[method="post"] button[type="submit"], main form[method="post"] button:not([type])').first();
    if ((await confirm.count()) > 0) {
      await navigateBy(page, () => confirm.click(), { what: 'confirm logout' }).catch(() => {});
    }
    await sleep(300);
    page.off('request', onRequest);
    assert.deepEqual(seen, [], `the OP redirected to an unregistered post_logout_redirect_uri: ${seen[0]}`);
    assert.equal(await page.locator(`a[href^="${RP}/"]`).count(), 0, 'the OP links to an unregistered post_logout_redirect_uri');
    assert.ok(res.status() < 500, `logout answered HTTP ${res.status()}`);
  });
});

// ---------------------------------------------------------------------------------------
// 5. authlib (Python)
// ---------------------------------------------------------------------------------------

/**
 * Run oidc_authlib.py with `args`. When it prints an authorization URL, drive `page`
 * through login and consent and hand the callback URL back. Resolves with its last
 * message ({step: 'done' | 'error', ...}) and stderr.
 */
function runAuthlib(args, page) {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [AUTHLIB_SCRIPT, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    let last = null;
    const runs = [];
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    const lines = readline.createInterface({ input: child.stdout });
    const work = [];
    lines.on('line', (line) => {
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        stderr += `(stdout) ${line}\n`;
        return;
      }
      last = msg;
      if (msg.step === 'authorize') {
        work.push(
          (async () => {
            assert.ok(page, 'authlib asked for a browser, none given');
            const run = await authorize(page, new URL(msg.url));
            runs.push(run);
            child.stdin.write(`${JSON.stringify({ callback_url: run.callback ? String(run.callback) : '' })}\n`);
          })().catch((err) => {
            child.kill();
            reject(err);
          }),
        );
      }
    });
    child.on('close', async (code) => {
      await Promise.allSettled(work);
      resolve({ code, last, stderr, runs });
    });
  });
}

function assertAuthlibDone(result, what) {
  const { code, last, stderr } = result;
  assert.ok(
    code === 0 && last?.step === 'done',
    `${what}: authlib ${last?.step === 'error' ? `failed: ${last.error}` : `exited ${code}`}\n` +
      `  report: ${JSON.stringify(last?.report ?? {}).slice(0, 1500)}\n  stderr: ${stderr.slice(-1500)}`,
  );
  return last.report;
}

test('authlib: code flow with PKCE and client_secret_post, ID token validated with the JWKS (CodeIDToken), userinfo, refresh', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const oc = demoClient();
    const result = await runAuthlib(
      [
        'code-flow',
        '--issuer', issuer(),
        '--client-id', oc.client_id,
        '--client-secret', oc.client_secret,
        '--auth-method', 'client_secret_post',
        '--redirect-uri', CALLBACK,
        '--scope', 'openid profile email offline_access',
        '--prompt', 'consent',
        '--refresh',
        '--expect-alg', 'ES256',
      ],
      page,
    );
    const report = assertAuthlibDone(result, 'authlib code flow');
    assert.equal(report.id_token_claims.acr, LEVEL_1);
    assert.equal(report.code_reuse_error, 'invalid_grant');
    assert.equal(report.refresh_rotated, true);
    assert.equal(report.userinfo.email, demoData().citizen.username);
    assert.equal(report.introspection.active, true);
    t.diagnostic(`userinfo with the access token in a POST body (RFC 6750 § 2.2, optional): HTTP ${report.userinfo_post_body_status}`);
  });
});

test('authlib: client_credentials with client_secret_post (the Postfach API client); a wrong secret → invalid_client', async () => {
  const api = demoData().postfach_api;
  const result = await runAuthlib([
    'client-credentials',
    '--issuer', issuer(),
    '--client-id', api.client_id,
    '--client-secret', api.client_secret,
    '--scope', 'postfach:deliver',
  ]);
  const report = assertAuthlibDone(result, 'authlib client_credentials');
  assert.equal(report.wrong_secret_error, 'invalid_client');
});

/** `rathaus clients add ... --json` against the data dir of the server under test. */
function rathausClientsAdd(args) {
  const bin = process.env.RATHAUS_BIN;
  const demoJson = process.env.RATHAUS_E2E_DEMO_JSON;
  const dataDir = process.env.RATHAUS_E2E_DATA_DIR || (demoJson ? path.dirname(demoJson) : '');
  return new Promise((resolve, reject) => {
    execFile(bin, ['--data-dir', dataDir, 'clients', 'add', ...args, '--json'], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`rathaus clients add ${args.join(' ')} failed: ${err.message}\n${stderr}`));
        return;
      }
      const line = stdout.trim().split('\n').reverse().find((l) => l.startsWith('{'));
      try {
        resolve(JSON.parse(line));
      } catch {
        reject(new Error(`rathaus clients add printed no JSON: ${stdout}\n${stderr}`));
      }
    });
  });
}

test('authlib: private_key_jwt client (key made by authlib, registered with `rathaus clients add --jwks`), RS256 ID token; a foreign key → invalid_client', async (t) => {
  if (!process.env.RATHAUS_BIN || !process.env.RATHAUS_E2E_DEMO_JSON) {
    t.skip('needs RATHAUS_BIN and the server\'s data dir (tests/e2e/run exports both when it starts the server)');
    return;
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'rathaus-oidc-'));
  try {
    const keyFile = path.join(dir, 'client-key.json');
    const gen = assertAuthlibDone(await runAuthlib(['genkey', '--kty', 'EC', '--private-out', keyFile]), 'authlib genkey');
    const jwksFile = path.join(dir, 'client-jwks.json');
    writeFileSync(jwksFile, JSON.stringify(gen.jwks));
    const reg = await rathausClientsAdd([
      '--name', `E2E authlib private_key_jwt ${randomBytes(3).toString('hex')}`,
      '--kind', 'web',
      '--redirect-uri', CALLBACK,
      '--jwks', jwksFile,
      '--id-token-alg', 'RS256',
    ]);
    assert.ok(reg.client_id, `clients add printed ${JSON.stringify(reg)}`);

    await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
      const result = await runAuthlib(
        [
          'code-flow',
          '--issuer', issuer(),
          '--client-id', reg.client_id,
          '--auth-method', 'private_key_jwt',
          '--private-key', keyFile,
          '--redirect-uri', CALLBACK,
          '--scope', 'openid email',
          '--expect-alg', 'RS256',
        ],
        page,
      );
      const report = assertAuthlibDone(result, 'authlib private_key_jwt code flow');
      assert.equal(report.id_token_header.alg, 'RS256');
      assert.equal(report.id_token_claims.aud, reg.client_id);
      assert.equal(result.runs[0]?.trace.consent, 1, 'a new client got no consent page');
    });

    const wrong = await runAuthlib(['wrong-key', '--issuer', issuer(), '--client-id', reg.client_id, '--redirect-uri', CALLBACK]);
    assert.equal(assertAuthlibDone(wrong, 'authlib private_key_jwt with a foreign key').wrong_key_error, 'invalid_client');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
