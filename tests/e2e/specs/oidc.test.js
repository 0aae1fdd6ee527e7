// The Servicekonto as OpenID provider, tested with a relying-party library nobody here
// wrote: openid-client (v6, on oauth4webapi). Login and consent pages run in headless
// Chromium as the demo citizen (demo.json `citizen`); the relying party is the demo client
// (demo.json `oidc_client`, redirect URI http://127.0.0.1:8765/callback). Nothing listens
// there: the browser's request to it is caught (page 'request' event; Playwright's route()
// does not see redirect hops) and handed to the library (lib/oidc.js).
//
// 1. Discovery and JWKS.
// 2. The whole flow: discovery → authorization URL (PKCE S256, state, nonce) → login →
//    consent page listing the attributes → Allow → code + state + iss → token
//    (client_secret_basic) → ID token (signature by JWKS, acr, amr, auth_time, sid, nonce,
//    at_hash) → userinfo → introspection → refresh with rotation and reuse detection →
//    RP-initiated logout.
// 3. Errors: prompt=none without session, unregistered redirect_uri / unknown client (error
//    page, no redirect), missing or plain PKCE, wrong code_verifier, missing response_type,
//    request objects, acr_values above level 1, consent denied.
//
// Sessions and consent: oidc-sessions.test.js. Python's authlib: oidc-authlib.test.js.
// docs/oidc-conformance.md maps all of them to the OpenID Foundation's Basic OP test plan.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import {
  launchBrowser,
  withPage,
  baseUrl,
  navigateBy,
  assertNoAxeViolations,
  norm,
  pageUrl,
  VIEWPORTS,
} from '../lib/harness.js';
import { demoData } from '../lib/demo.js';
import {
  RP,
  CALLBACK,
  LOGGED_OUT,
  LEVEL_1,
  PROFILE,
  demoClient,
  issuer,
  rp,
  meta,
  authRequest,
  postForm,
  jwtParts,
  halfHash,
  oauthError,
  loginForm,
  authorize,
  watchRp,
  describeRun,
  callbackParams,
  assertErrorAtRedirect,
  exchange,
  codeFlow,
  fillProfile,
  revokeConsent,
  sleep,
} from '../lib/oidc.js';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

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
    await fillProfile(page);
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
      assert.equal(run.trace.login, 1, `the OP did not ask the signed-out user to log in (${describeRun(run, page)})`);
      assert.equal(run.trace.consent, 1, `no consent page (${describeRun(run, page)})`);
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
    assert.equal(run.trace.login, 0, `prompt=none showed the login page (${describeRun(run, page)})`);
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
      assert.ok(run.trace.status >= 400, `no response_type: neither an error redirect nor an error page (${describeRun(run, page)})`);
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
    assert.equal(run.trace.consent, 1, `no consent page (${describeRun(run, page)})`);
    await assertErrorAtRedirect(run, page, { error: 'access_denied', state: req.state, what: 'Deny' });
  });
});
