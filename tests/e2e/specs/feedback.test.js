// The feedback form of the accessibility statement (/behoerden/<ars>/barrierefreiheit):
// fields `name` (optional), `email` (optional), `nachricht` (required), hidden `csrf_token`;
// it POSTs to its own URL and confirms in #bestaetigung.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser,
  withPage,
  gotoOk,
  pageUrl,
  navigateBy,
  assertNoAxeViolations,
  norm,
  VIEWPORTS,
  NENNDORF_ARS,
} from '../lib/harness.js';

const PATH = `/behoerden/${NENNDORF_ARS}/barrierefreiheit`;
const NO_JS = { ...VIEWPORTS.desktop, javaScriptEnabled: false };

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

function feedbackForm(page) {
  return page.locator('form').filter({ has: page.locator('[name="nachricht"]') }).first();
}

function submitButtonOf(form) {
  return form.locator('button:not([type]), button[type="submit"], input[type="submit"]').first();
}

/** Check the form's shape and return it. */
async function openForm(page, lang = 'de') {
  const url = pageUrl(PATH, lang);
  await gotoOk(page, url);
  const form = feedbackForm(page);
  assert.equal(await form.count(), 1, `${url}: no form with a field named "nachricht"`);
  assert.equal(((await form.getAttribute('method')) ?? '').toLowerCase(), 'post', 'feedback form must POST');
  const action = await form.getAttribute('action');
  const target = new URL(action ?? '', page.url());
  assert.equal(target.pathname, PATH, `feedback form posts to ${target.pathname}, not to its own URL`);
  const token = form.locator('input[type="hidden"][name="csrf_token"]');
  assert.equal(await token.count(), 1, 'feedback form has no hidden csrf_token');
  assert.ok(((await token.inputValue()) ?? '').length >= 16, 'csrf_token is empty or too short to be unguessable');
  for (const name of ['name', 'email']) {
    assert.equal(await form.locator(`[name="${name}"]`).count(), 1, `feedback form lacks the optional field "${name}"`);
  }
  return form;
}

test('feedback round trip without JavaScript', async (t) => {
  await withPage(browser, t, NO_JS, async (page) => {
    const form = await openForm(page);
    const stamp = `E2E ${Date.now()}`;
    await form.locator('[name="name"]').fill('Erika Mustermann');
    await form.locator('[name="email"]').fill('erika@example.org');
    await form.locator('[name="nachricht"]').fill(`Der Kontrast im Footer ist zu schwach. (${stamp})`);
    const response = await navigateBy(page, () => submitButtonOf(form).click(), { what: 'feedback submit' });
    assert.ok(!response || response.status() < 400, `feedback submit answered HTTP ${response?.status()}`);
    const confirmation = page.locator('#bestaetigung');
    assert.ok(await confirmation.isVisible().catch(() => false), `no visible #bestaetigung after submitting (now at ${page.url()})`);
    assert.ok(norm(await confirmation.innerText()).length > 0, '#bestaetigung is empty');
    assert.equal(await page.locator('.error-summary').count(), 0, 'an error summary appeared next to the confirmation');
  });
});

test('feedback with only the required field, confirmation passes axe (phone)', async (t) => {
  await withPage(browser, t, VIEWPORTS.phone, async (page) => {
    const form = await openForm(page);
    await form.locator('[name="nachricht"]').fill('Nur eine Nachricht, ohne Namen und E-Mail.');
    await navigateBy(page, () => submitButtonOf(form).click(), { what: 'feedback submit' });
    assert.ok(await page.locator('#bestaetigung').isVisible().catch(() => false), `no #bestaetigung (now at ${page.url()})`);
    await assertNoAxeViolations(page, `feedback confirmation [phone] (${page.url()})`);
  });
});

test('feedback in English confirms in English', async (t) => {
  await withPage(browser, t, NO_JS, async (page) => {
    const form = await openForm(page, 'en');
    await form.locator('[name="nachricht"]').fill('The footer contrast is too low.');
    await navigateBy(page, () => submitButtonOf(form).click(), { what: 'feedback submit (en)' });
    assert.ok(await page.locator('#bestaetigung').isVisible().catch(() => false), `no #bestaetigung (now at ${page.url()})`);
    const lang = (await page.locator('html').getAttribute('lang')) ?? '';
    assert.match(lang, /^en\b/i, `the English feedback confirmation is <html lang="${lang}">`);
  });
});

for (const [vpName, vp] of Object.entries(VIEWPORTS)) {
  test(`feedback without a message shows the error summary and passes axe (${vpName})`, async (t) => {
    await withPage(browser, t, vp, async (page) => {
      const form = await openForm(page);
      await form.locator('[name="name"]').fill('Max');
      await navigateBy(page, () => submitButtonOf(form).click(), { what: 'empty feedback submit' });
      assert.equal(await page.locator('#bestaetigung').count(), 0, 'an empty message was confirmed');
      const summary = page.locator('.error-summary').first();
      assert.ok(await summary.isVisible().catch(() => false), `no visible .error-summary (now at ${page.url()})`);
      assert.equal(await summary.getAttribute('role'), 'alert', '.error-summary must have role="alert"');
      const pointsAtNachricht = await summary.evaluate((el) =>
        [...el.querySelectorAll('a[href^="#"]')].some((a) => {
          const target = document.getElementById(decodeURIComponent(a.getAttribute('href').slice(1)));
          return !!target && (target.getAttribute('name') === 'nachricht' || !!target.querySelector('[name="nachricht"]'));
        }),
      );
      assert.ok(pointsAtNachricht, 'the error summary does not link to the "nachricht" field');
      assert.equal(await page.locator('[name="name"]').first().inputValue(), 'Max', 'the entered name was lost');
      await assertNoAxeViolations(page, `feedback errors [${vpName}] (${page.url()})`);
    });
  });
}

test('feedback POST with a forged or missing csrf_token is not accepted', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    await openForm(page); // gets whatever session cookie the token is bound to
    const url = pageUrl(PATH);
    for (const form of [
      { nachricht: 'Gefälschte Anfrage', csrf_token: 'forged-token-0123456789abcdef' },
      { nachricht: 'Anfrage ohne Token' },
    ]) {
      const res = await page.request.post(url, { form, maxRedirects: 5, failOnStatusCode: false });
      const body = await res.text();
      assert.ok(
        !/id\s*=\s*["']?bestaetigung\b/.test(body),
        `POST with csrf_token=${form.csrf_token ?? '(none)'} was confirmed (HTTP ${res.status()})`,
      );
      assert.ok(res.status() < 500, `POST with a bad csrf_token crashed the server (HTTP ${res.status()})`);
    }
  });
});
