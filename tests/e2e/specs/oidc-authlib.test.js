// OpenID provider, continued (see oidc.test.js): Python's authlib as a second, independent
// relying party. oidc_authlib.py runs with Debian's /usr/bin/python3 (python3-authlib,
// python3-requests; scripts/test installs them) and talks JSON lines with this spec, which
// drives Chromium through login and consent when authlib hands it an authorization URL.
//
// Code flow with client_secret_post (ID token validated with the JWKS by authlib's
// CodeIDToken, userinfo, refresh, code reuse); client_credentials with client_secret_post;
// a private_key_jwt client registered with `rathaus clients add --jwks` using a key authlib
// made, with RS256 ID tokens, and an assertion signed by a foreign key refused.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { launchBrowser, withPage, VIEWPORTS } from '../lib/harness.js';
import { demoData } from '../lib/demo.js';
import { CALLBACK, LEVEL_1, demoClient, issuer, authorize, describeRun } from '../lib/oidc.js';

const PYTHON = '/usr/bin/python3';
const AUTHLIB_SCRIPT = fileURLToPath(new URL('../oidc_authlib.py', import.meta.url));

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
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
            run.where = describeRun(run, page);
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
  const { code, last, stderr, runs } = result;
  const browserRuns = runs.map((r, i) => `\n  browser run ${i + 1}: ${r.callback ? `→ ${r.callback}` : 'no redirect to the RP'}; ${r.where}`).join('');
  assert.ok(
    code === 0 && last?.step === 'done',
    `${what}: authlib ${last?.step === 'error' ? `failed: ${last.error}` : `exited ${code}`}${browserRuns}\n` +
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
