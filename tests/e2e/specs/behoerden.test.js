// Authority pages: /behoerden/<ars> and its legal sub-pages.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, withPage, gotoOk, pageUrl, norm, VIEWPORTS, NENNDORF_ARS } from '../lib/harness.js';

const NO_JS = { ...VIEWPORTS.desktop, javaScriptEnabled: false };
const BASE = `/behoerden/${NENNDORF_ARS}`;

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

test('authority page names the Samtgemeinde Nenndorf', async (t) => {
  await withPage(browser, t, NO_JS, async (page) => {
    await gotoOk(page, pageUrl(BASE));
    const h1 = norm(await page.locator('h1').first().innerText());
    assert.match(h1, /Nenndorf/, `${BASE}: <h1> "${h1}" does not name Nenndorf`);
  });
});

for (const sub of ['impressum', 'datenschutz', 'barrierefreiheit']) {
  test(`${BASE}/${sub} is served and linked from the authority page`, async (t) => {
    await withPage(browser, t, NO_JS, async (page) => {
      await gotoOk(page, pageUrl(`${BASE}/${sub}`));
      assert.ok(norm(await page.locator('main').innerText()).length > 0, `${BASE}/${sub}: empty <main>`);
      await gotoOk(page, pageUrl(BASE));
      const links = await page.locator(`a[href*="${BASE}/${sub}"]`).count();
      assert.ok(links > 0, `${BASE} does not link to its ${sub} page`);
    });
  });
}

test('unknown authority answers 404 with a page', async (t) => {
  await withPage(browser, t, NO_JS, async (page) => {
    const url = pageUrl('/behoerden/000000000000');
    const response = await page.goto(url);
    assert.equal(response?.status(), 404, `${url} answered HTTP ${response?.status()}`);
    assert.ok(norm(await page.locator('body').innerText()).length > 0, `${url}: empty 404 page`);
  });
});
