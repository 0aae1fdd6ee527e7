// Passkeys in the Servicekonto with Chromium's virtual authenticator (DevTools protocol,
// WebAuthn domain): a CTAP2 platform authenticator with resident keys and user verification
// that always succeeds, as a phone or laptop with a fingerprint reader would.
//
// Flow: register an account (the verification link comes from the demo mail page), log in
// with the password, add a passkey on /konto/passkeys, log out, log in with the passkey alone
// (no e-mail, no password). axe checks the passkey page and the login page with its button.
// Without JavaScript the passkey controls stay hidden and the forms still work.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHmac } from 'node:crypto';
import {
  launchBrowser,
  withPage,
  gotoOk,
  pageUrl,
  navigateBy,
  assertNoAxeViolations,
  norm,
  VIEWPORTS,
} from '../lib/harness.js';

const PASSWORD = 'Laubfrosch im Regenfass 2024';
const NO_JS = { ...VIEWPORTS.desktop, javaScriptEnabled: false };

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

function uniqueEmail() {
  return `passkey-${Date.now()}-${randomBytes(4).toString('hex')}@example.org`;
}

/** A virtual authenticator in this page's browser context; returns its id and the session. */
async function addVirtualAuthenticator(context, page) {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
    },
  });
  return { cdp, authenticatorId };
}

/** Register `email` through the pages and confirm it with the link from /demo/mails. */
async function registerAccount(page, email) {
  await gotoOk(page, pageUrl('/konto/registrieren'));
  await page.fill('#email', email);
  await page.fill('#password', PASSWORD);
  const res = await navigateBy(page, () => page.locator('main form button[type="submit"]').click(), {
    what: 'registration',
  });
  assert.equal(res?.status(), 200, `registration answered HTTP ${res?.status()}`);

  await gotoOk(page, pageUrl('/demo/mails'));
  const mail = page.locator('article.mail').filter({ hasText: email }).first();
  assert.equal(await mail.count(), 1, `no demo mail to ${email} on /demo/mails`);
  const href = await mail.locator('a[href*="/konto/bestaetigen"]').first().getAttribute('href');
  assert.ok(href, 'the verification mail has no link to /konto/bestaetigen');
  await gotoOk(page, href);
}

/** Log in with address and password; lands on /konto. */
async function passwordLogin(page, email) {
  await gotoOk(page, pageUrl('/konto/anmelden'));
  await page.fill('#email', email);
  await page.fill('#password', PASSWORD);
  await navigateBy(page, () => page.locator('main form[method="post"] button[type="submit"]').first().click(), {
    what: 'password login',
  });
  assert.equal(new URL(page.url()).pathname, '/konto', `password login ended on ${page.url()}`);
}

test('passkey: add in the account, then log in without password', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page, context) => {
    const { cdp, authenticatorId } = await addVirtualAuthenticator(context, page);
    const email = uniqueEmail();
    await registerAccount(page, email);
    await passwordLogin(page, email);

    // The account overview links to the passkey page.
    const link = page.locator('main a[href^="/konto/passkeys"]');
    assert.equal(await link.count(), 1, '/konto has no link to /konto/passkeys');
    await navigateBy(page, () => link.click(), { what: 'link to the passkey page' });
    assert.equal(new URL(page.url()).pathname, '/konto/passkeys');
    assert.ok(await page.locator('[data-passkey-register]').isVisible(), 'the add form is hidden although WebAuthn exists');
    assert.ok(!(await page.locator('[data-passkey-unsupported]').isVisible()), 'the "needs JavaScript" note is still shown');
    await assertNoAxeViolations(page, '/konto/passkeys (empty)');

    await page.fill('#passkey-name', 'E2E-Laptop');
    await navigateBy(page, () => page.locator('[data-passkey-register-form] button[type="submit"]').click(), {
      what: 'adding a passkey',
    });
    const url = new URL(page.url());
    assert.equal(url.pathname, '/konto/passkeys');
    assert.equal(url.searchParams.get('hinzugefuegt'), '1', `after adding: ${page.url()}`);
    assert.match(norm(await page.locator('main').innerText()), /E2E-Laptop/);

    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.length, 1, 'the authenticator holds no credential');
    assert.ok(credentials[0].isResidentCredential, 'the passkey is not discoverable (resident)');
    assert.equal(credentials[0].rpId, new URL(page.url()).hostname);

    await assertNoAxeViolations(page, '/konto/passkeys (one passkey)');

    // Log out, then in with the passkey alone.
    await gotoOk(page, pageUrl('/konto'));
    await navigateBy(page, () => page.locator('form[action^="/konto/abmelden"] button').click(), { what: 'logout' });
    await gotoOk(page, pageUrl('/konto/anmelden'));
    const button = page.locator('[data-passkey-button]');
    assert.ok(await button.isVisible(), 'the login page shows no passkey button');
    await assertNoAxeViolations(page, '/konto/anmelden (with passkey button)');
    await navigateBy(page, () => button.click(), { what: 'passkey login' });
    assert.equal(new URL(page.url()).pathname, '/konto', `passkey login ended on ${page.url()}`);
    const overview = norm(await page.locator('main').innerText());
    assert.ok(overview.includes(email), 'the overview does not show the account that logged in');
    assert.match(overview, /Passkey/, 'the overview does not name the passkey as login method');

    // The Kontoaktivität records both.
    assert.match(overview, /Passkey hinzugefügt/);

    // Remove it (a plain form); it is gone from the list and the authenticator no longer logs in.
    await gotoOk(page, pageUrl('/konto/passkeys'));
    await navigateBy(page, () => page.locator('form[action^="/konto/passkeys/entfernen"] button').click(), {
      what: 'removing the passkey',
    });
    assert.equal(new URL(page.url()).searchParams.get('entfernt'), '1');
    assert.doesNotMatch(norm(await page.locator('main').innerText()), /E2E-Laptop/);
    await gotoOk(page, pageUrl('/konto'));
    await navigateBy(page, () => page.locator('form[action^="/konto/abmelden"] button').click(), { what: 'logout' });
    await gotoOk(page, pageUrl('/konto/anmelden'));
    await page.locator('[data-passkey-button]').click();
    await page.waitForFunction(
      () => (document.querySelector('[data-passkey-error]')?.textContent ?? '').trim().length > 0,
      null,
      { timeout: 15_000 },
    );
    assert.equal(new URL(page.url()).pathname, '/konto/anmelden', 'a removed passkey still logged in');
  });
});

/** RFC 6238 TOTP (SHA-1, 30 s, 6 digits) for a base32 secret, as an authenticator app. */
function totp(base32, unixSeconds = Math.floor(Date.now() / 1000)) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of base32.replace(/[\s=]/g, '').toUpperCase()) {
    bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

test('passkey as second factor after the password', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page, context) => {
    await addVirtualAuthenticator(context, page);
    const email = uniqueEmail();
    await registerAccount(page, email);
    await passwordLogin(page, email);

    await gotoOk(page, pageUrl('/konto/passkeys'));
    await navigateBy(page, () => page.locator('[data-passkey-register-form] button[type="submit"]').click(), {
      what: 'adding a passkey',
    });
    assert.equal(new URL(page.url()).searchParams.get('hinzugefuegt'), '1', `after adding: ${page.url()}`);

    // Authenticator app on: the password login now asks for a second factor.
    await gotoOk(page, pageUrl('/konto/zwei-faktor'));
    const secret = norm(await page.locator('#totp-secret').innerText());
    await page.fill('#code', totp(secret));
    await navigateBy(page, () => page.locator('main form button[type="submit"]').click(), { what: 'TOTP setup' });
    await gotoOk(page, pageUrl('/konto'));
    await navigateBy(page, () => page.locator('form[action^="/konto/abmelden"] button').click(), { what: 'logout' });

    await gotoOk(page, pageUrl('/konto/anmelden'));
    await page.fill('#email', email);
    await page.fill('#password', PASSWORD);
    await navigateBy(page, () => page.locator('main form[method="post"] button[type="submit"]').first().click(), {
      what: 'password login',
    });
    assert.equal(new URL(page.url()).pathname, '/konto/anmelden/code', `no second-factor page: ${page.url()}`);
    const box = page.locator('[data-passkey-login]');
    assert.equal(await box.getAttribute('data-mode'), 'second_factor');
    await assertNoAxeViolations(page, '/konto/anmelden/code (with passkey button)');
    await navigateBy(page, () => box.locator('[data-passkey-button]').click(), { what: 'passkey second factor' });
    assert.equal(new URL(page.url()).pathname, '/konto', `second factor ended on ${page.url()}`);
    assert.match(norm(await page.locator('main').innerText()), /Passwort, Passkey/);
  });
});

test('passkey endpoints refuse requests without the CSRF header', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    await gotoOk(page, pageUrl('/konto/anmelden'));
    const status = await page.evaluate(async () => {
      const res = await fetch('/konto/anmelden/passkey/start', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: '{}',
      });
      return res.status;
    });
    assert.equal(status, 403);
  });
});

test('without JavaScript the passkey controls stay hidden and the pages still work', async (t) => {
  await withPage(browser, t, NO_JS, async (page) => {
    await gotoOk(page, pageUrl('/konto/anmelden'));
    assert.equal(await page.locator('[data-passkey-login]').count(), 1);
    assert.ok(!(await page.locator('[data-passkey-login]').isVisible()), 'passkey button visible without JavaScript');
    assert.ok(await page.locator('#password').isVisible(), 'no password field on the login page');

    const email = uniqueEmail();
    await registerAccount(page, email);
    await passwordLogin(page, email);
    await gotoOk(page, pageUrl('/konto/passkeys'));
    assert.ok(await page.locator('[data-passkey-unsupported]').isVisible(), 'no explanation why passkeys cannot be added');
    assert.ok(!(await page.locator('[data-passkey-register]').isVisible()), 'the add form is visible without JavaScript');
  });
});
