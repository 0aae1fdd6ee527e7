// The Zustelldienst (FIT-Connect Submission API) with an independent client: Python's
// jwcrypto encrypts, decrypts, signs and verifies; requests speaks HTTP. The script
// fitconnect_jwcrypto.py plays sender and subscriber of the demo's external destination,
// the way the SDKs in the field behave (no scope in the token request, thumbprint kid,
// zip DEF, a repeated attachment id), and exits non-zero with the reason if anything
// differs from FIT-Connect's contract.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../fitconnect_jwcrypto.py', import.meta.url));

test('a jwcrypto sender and subscriber carry a submission through the Zustelldienst', async () => {
  const demoJson = process.env.RATHAUS_E2E_DEMO_JSON;
  assert.ok(demoJson, 'RATHAUS_E2E_DEMO_JSON must name the demo.json of the server under test');
  const out = await new Promise((resolve, reject) => {
    execFile(PYTHON, [SCRIPT, demoJson], { timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`fitconnect_jwcrypto.py failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
  const result = JSON.parse(out.trim().split('\n').pop());
  assert.equal(result.ok, true);
  assert.equal(result.events, 4);
});
