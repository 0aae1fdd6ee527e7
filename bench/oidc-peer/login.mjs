// Signs the bench user in at the oidc-provider peer (server.mjs) and grants consent once, as a
// browser would, then checks that a new authorization request with only the session cookies
// answers 303 with a code at once and that the code goes through /token and /me.
//
//   node login.mjs --info FILE --scope "openid profile email" --verifier V --challenge C
//
// FILE is what server.mjs wrote. Prints one JSON line on stdout:
//   {"cookie": "<Cookie header of the signed-in session>", "steps": [...], "check": {...}}
// Progress and errors go to stderr; exit status 1 on any unexpected answer.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    info: { type: 'string' },
    scope: { type: 'string', default: 'openid profile email' },
    verifier: { type: 'string' },
    challenge: { type: 'string' },
  },
});
if (!opts.info || !opts.verifier || !opts.challenge) {
  console.error('usage: node login.mjs --info FILE --verifier V --challenge C [--scope S]');
  process.exit(2);
}
const info = JSON.parse(readFileSync(opts.info, 'utf8'));
const { issuer } = info;
const client = info.web_client;

// the smallest cookie jar that works here: name -> { value, path }, no domains (one host)
const jar = new Map();
function store(res) {
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';').map((s) => s.trim());
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    let path = '/';
    let expired = false;
    for (const a of attrs) {
      const [k, v = ''] = a.split('=');
      if (k.toLowerCase() === 'path') path = v;
      if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      if (k.toLowerCase() === 'expires' && Date.parse(v) <= Date.now()) expired = true;
    }
    if (expired || value === '') jar.delete(name);
    else jar.set(name, { value, path });
  }
}
function cookieFor(path) {
  return [...jar]
    .filter(([, c]) => path === c.path || path.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`) || c.path === '/')
    .map(([n, c]) => `${n}=${c.value}`)
    .join('; ');
}

const steps = [];
async function call(method, url, { headers = {}, body, cookies = true } = {}) {
  const u = new URL(url, issuer);
  const h = { ...headers };
  const c = cookies ? cookieFor(u.pathname) : '';
  if (c) h.cookie = c;
  const res = await fetch(u, { method, headers: h, body, redirect: 'manual' });
  store(res);
  const text = await res.text();
  steps.push(`${method} ${u.pathname} -> ${res.status}`);
  return { res, text, location: res.headers.get('location') };
}
function fail(msg) {
  console.error(`login.mjs: ${msg}`);
  console.error(`steps: ${steps.join(', ')}`);
  process.exit(1);
}

function authorizeUrl(state) {
  const q = new URLSearchParams({
    client_id: client.client_id,
    response_type: 'code',
    redirect_uri: client.redirect_uri,
    scope: opts.scope,
    state,
    nonce: `n-${state}`,
    code_challenge: opts.challenge,
    code_challenge_method: 'S256',
  });
  return `${info.authorization_path}?${q}`;
}

// 1. the browser flow: authorize -> login interaction -> resume -> consent -> resume -> code
let r = await call('GET', authorizeUrl('setup'));
let prompts = 0;
while (r.res.status === 303 || r.res.status === 302) {
  const loc = new URL(r.location, issuer);
  if (loc.href.startsWith(client.redirect_uri)) break;
  if (loc.pathname.startsWith('/interaction/')) {
    prompts += 1;
    if (prompts > 2) fail('more than two interactions (login, consent)');
    // which prompt: login first, then consent
    const which = prompts === 1 ? 'login' : 'consent';
    r = await call('POST', `${loc.pathname}/${which}`);
    if (r.res.status !== 303) fail(`POST ${loc.pathname}/${which} answered ${r.res.status}: ${r.text.slice(0, 300)}`);
    continue;
  }
  r = await call('GET', loc.pathname + loc.search);
}
if (!(r.res.status === 303 || r.res.status === 302) || !r.location?.startsWith(client.redirect_uri)) {
  fail(`the setup flow ended with ${r.res.status} ${r.location ?? ''} ${r.text.slice(0, 300)}`);
}
const setupCode = new URL(r.location).searchParams.get('code');
if (!setupCode) fail(`no code in ${r.location}`);

// 2. the session cookies alone: an authorization request answers 303 with a code at once
const sessionCookie = [...jar]
  .filter(([name, c]) => name.startsWith('_session') && c.path === '/')
  .map(([n, c]) => `${n}=${c.value}`)
  .join('; ');
if (!sessionCookie) fail(`no _session cookie (jar: ${[...jar.keys()].join(', ')})`);
jar.clear();
const basic = `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`).toString('base64')}`;
const check = {};
for (const [i, code0] of [[0, setupCode], [1, null]]) {
  let code = code0;
  if (code === null) {
    const a = await call('GET', authorizeUrl('check'), { headers: { cookie: sessionCookie }, cookies: false });
    check.authorize = a.res.status;
    if (a.res.status !== 303 || !a.location?.startsWith(client.redirect_uri)) {
      fail(`authorize with the session cookie answered ${a.res.status} ${a.location ?? ''} ${a.text.slice(0, 300)}`);
    }
    code = new URL(a.location).searchParams.get('code');
  }
  const t = await call('POST', info.token_path, {
    cookies: false,
    headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      code_verifier: opts.verifier,
      redirect_uri: client.redirect_uri,
    }).toString(),
  });
  if (t.res.status !== 200) fail(`token answered ${t.res.status}: ${t.text.slice(0, 300)}`);
  const tok = JSON.parse(t.text);
  if (!tok.access_token || !tok.id_token || !tok.refresh_token) {
    fail(`token answer lacks access_token, id_token or refresh_token: ${t.text.slice(0, 300)}`);
  }
  const header = JSON.parse(Buffer.from(tok.id_token.split('.')[0], 'base64url').toString());
  const claims = JSON.parse(Buffer.from(tok.id_token.split('.')[1], 'base64url').toString());
  const u = await call('GET', info.userinfo_path, {
    cookies: false,
    headers: { authorization: `Bearer ${tok.access_token}` },
  });
  if (u.res.status !== 200) fail(`userinfo answered ${u.res.status}: ${u.text.slice(0, 300)}`);
  if (i === 1) {
    check.token = t.res.status;
    check.token_keys = Object.keys(tok).sort();
    check.id_token_alg = header.alg;
    check.id_token_claims = Object.keys(claims).sort();
    check.userinfo = JSON.parse(u.text);
  }
}
process.stdout.write(`${JSON.stringify({ cookie: sessionCookie, steps, check })}\n`);
