// Shared parts of the OpenID Connect specs (oidc*.test.js): the demo client as relying
// party with openid-client, and the user's side of the authorization endpoint in Chromium
// (login, consent, the redirect to the relying party caught in the browser).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as client from 'openid-client';
import { gotoOk, pageUrl, baseUrl, navigateBy, norm } from './harness.js';
import { demoData } from './demo.js';

export const RP = 'http://127.0.0.1:8765';
export const CALLBACK = `${RP}/callback`;
export const LOGGED_OUT = `${RP}/logged-out`;
export const LEVEL_1 = 'STORK-QAA-Level-1';
export const ALLOW = /^(Zulassen|Allow)$/;
export const DENY = /^(Ablehnen|Deny)$/;

// What the demo citizen's profile holds while these tests run (fillProfile).
export const PROFILE = {
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

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// Relying party: openid-client configured for the demo client
// ---------------------------------------------------------------------------------------

export function demoClient() {
  const oc = demoData().oidc_client;
  assert.ok(oc?.client_id && oc?.client_secret, 'demo.json has no oidc_client {client_id, client_secret}');
  assert.equal(oc.redirect_uri, CALLBACK, `demo.json oidc_client.redirect_uri is ${oc.redirect_uri}`);
  return oc;
}

export function issuer() {
  const iss = demoData().issuer;
  assert.ok(typeof iss === 'string' && iss, 'demo.json has no "issuer"');
  return iss;
}

let rpConfig;
/** openid-client's Configuration for the demo client: client_secret_basic, ES256 ID tokens
 * whose signatures are checked against the JWKS (enableNonRepudiationChecks). */
export async function rp() {
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
export async function meta() {
  if (metaCache) return metaCache;
  const res = await fetch(`${issuer()}/.well-known/openid-configuration`);
  assert.equal(res.status, 200, `discovery answered HTTP ${res.status}`);
  metaCache = await res.json();
  return metaCache;
}

/** A fresh authorization request: PKCE S256, state, nonce; `extra` adds or (undefined) drops. */
export async function authRequest(extra = {}) {
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

export function basicAuth(id, secret) {
  const enc = (s) => encodeURIComponent(s);
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
}

/** POST a form to an OP endpoint; returns status, content type and parsed body. */
export async function postForm(url, params, headers = {}) {
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

export function jwtParts(jwt) {
  const [h, p] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
  };
}

/** at_hash: left half of SHA-256/384/512 (per the JWS alg) of the token, base64url (OIDC Core 3.1.3.6). */
export function halfHash(value, alg) {
  const digest = createHash(`sha${alg.slice(-3)}`).update(value, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

/** The OAuth error code of a rejected openid-client call (ResponseBodyError etc.). */
export async function oauthError(promise) {
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

export function loginForm(page) {
  return page.locator('main form[method="post"][action^="/konto/anmelden"]').first();
}

export function consentForms(page) {
  return page.locator('main form[method="post"][action^="/oidc/"]');
}

export function consentButton(page, name) {
  return consentForms(page).getByRole('button', { name });
}

/**
 * Open `url` (an authorization request; or call it, if it is a function that sends one and
 * resolves with the response) and act as the user until the OP sends the browser
 * to the relying party: log in on /konto/anmelden when asked (unless `login` is false), and
 * on the consent page press Allow (`consent: 'allow'`), Deny ('deny') or nothing ('stop').
 * `inspect(page, 'login' | 'consent')` runs on each such page before acting on it.
 * Returns the callback URL the OP redirected to (null if it never did) and a trace.
 */
export async function authorize(page, url, { login = true, consent = 'allow', user = demoData().citizen, inspect = null, maxSteps = 8 } = {}) {
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
    const start = typeof url === 'function' ? url : () => page.goto(String(url), { waitUntil: 'load' });
    const res = await start().catch((err) => {
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
export function watchRp(page) {
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

export function describeRun(run, page) {
  return `steps: ${run.trace.steps.join(' → ') || '(none)'}; browser at ${page.url()}`;
}

/** Query parameters of the redirect to the relying party; fails if there was none. */
export function callbackParams(run, page, what) {
  assert.ok(run.callback, `${what}: the OP never redirected to ${RP} (${describeRun(run, page)})`);
  return Object.fromEntries(run.callback.searchParams);
}

/** An error response at the redirect URI (OIDC Core 3.1.2.6) with state and iss (RFC 9207). */
export async function assertErrorAtRedirect(run, page, { error, state, what }) {
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
export async function exchange(req, run, page, checks = {}) {
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
export async function codeFlow(page, extra = {}, opts = {}) {
  const req = await authRequest(extra);
  const run = await authorize(page, req.url, opts);
  return { req, run };
}

/** Make sure `page`'s context has an OP session and consent for 'openid profile email'. */
export async function signedIn(page) {
  const { req, run } = await codeFlow(page);
  const tokens = await exchange(req, run, page);
  return { tokens, claims: tokens.claims(), run };
}

// ---------------------------------------------------------------------------------------
// Account pages
// ---------------------------------------------------------------------------------------

export async function accountLogin(page, lang = 'de') {
  const { username, password } = demoData().citizen;
  await gotoOk(page, pageUrl('/konto/anmelden', lang, lang === 'de' ? { lang: 'de' } : {}));
  const form = loginForm(page);
  await form.locator('#email').fill(username);
  await form.locator('#password').fill(password);
  await navigateBy(page, () => form.locator('button[type="submit"], button:not([type])').first().click(), { what: 'login' });
  assert.equal(new URL(page.url()).pathname, '/konto', `demo citizen login ended on ${page.url()}`);
}

/** Revoke the consent for `clientId` on /konto/einwilligungen; false if there was none. */
export async function revokeConsent(page, clientId) {
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
export async function assertLanguage(page, lang) {
  const current = await page.locator('.lang-switch a[aria-current="true"]').getAttribute('href', { timeout: 2_000 }).catch(() => null);
  assert.match(current ?? '', new RegExp(`[?&]lang=${lang}\\b`), `${page.url()} is not in lang=${lang} (language switch: ${current})`);
}

/** Log in as the demo citizen and fill the profile with PROFILE (the claims the scopes release). */
export async function fillProfile(page) {
  await accountLogin(page);
  await gotoOk(page, pageUrl('/konto/profil', 'de', { lang: 'de' }));
  for (const [name, value] of Object.entries(PROFILE)) await page.locator(`#${name}`).fill(value);
  const form = page.locator('main form[action^="/konto/profil"]');
  const res = await navigateBy(page, () => form.locator('button[type="submit"]').click(), { what: 'save profile' });
  assert.equal(res?.status(), 200, `saving the profile answered HTTP ${res?.status()}`);
  assert.match(page.url(), /gesendet=gespeichert/, `saving the profile ended on ${page.url()}`);
}
