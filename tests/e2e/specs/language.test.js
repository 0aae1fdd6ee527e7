// Language switch: German by default, English via ?lang=en, Leichte Sprache via ?lang=ls.
// Runs without JavaScript: the switch is a plain link.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, withPage, gotoOk, pageUrl, navigateBy, VIEWPORTS, NENNDORF_ARS } from '../lib/harness.js';

const NO_JS = { ...VIEWPORTS.desktop, javaScriptEnabled: false };

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

async function htmlLang(page) {
  return (await page.locator('html').getAttribute('lang')) ?? '';
}

/** The visible link that switches to `code` (its href carries lang=<code>). */
function switchLink(page, code) {
  return page.locator(`a[href*="lang=${code}"]`).filter({ visible: true }).first();
}

for (const path of ['/', '/zustaendigkeit', `/behoerden/${NENNDORF_ARS}`]) {
  test(`language switch on ${path}: de → en → de`, async (t) => {
    await withPage(browser, t, NO_JS, async (page) => {
      await gotoOk(page, pageUrl(path));
      assert.match(await htmlLang(page), /^de\b/i, `${path} is not German by default`);

      const toEn = switchLink(page, 'en');
      assert.equal(await toEn.count(), 1, `${path}: no visible link with lang=en`);
      // WCAG 3.1.2 (language of parts): "English" inside a German page must be marked up.
      const partLang = await toEn.evaluate((a) => {
        const marked = a.closest('[lang]'); // the link itself or an ancestor below <html>
        if (marked && marked !== document.documentElement) return marked.getAttribute('lang');
        return a.querySelector('[lang]')?.getAttribute('lang') ?? ''; // or a span inside it
      });
      assert.match(partLang, /^en\b/i, `${path}: the English switch link is not marked lang="en" (found "${partLang}")`);

      await navigateBy(page, () => toEn.click(), { what: 'switch to English' });
      assert.equal(new URL(page.url()).pathname, path, 'switching language must stay on the same page');
      assert.match(await htmlLang(page), /^en\b/i, `${page.url()}: <html lang> is not English after the switch`);

      // Back to German: ?lang=de, or a link marked as German (German needs no parameter).
      const toDe = page.locator('a[href*="lang=de"], a[hreflang="de"], a[lang="de"]').filter({ visible: true }).first();
      assert.equal(await toDe.count(), 1, `${page.url()}: no visible link back to German (lang=de, hreflang=de or lang="de")`);
      await navigateBy(page, () => toDe.click(), { what: 'switch back to German' });
      assert.equal(new URL(page.url()).pathname, path, 'switching back must stay on the same page');
      assert.match(await htmlLang(page), /^de\b/i, `${page.url()}: <html lang> is not German after switching back`);
    });
  });
}

test('home page offers Leichte Sprache (BITV 2.0 § 4)', async (t) => {
  await withPage(browser, t, NO_JS, async (page) => {
    await gotoOk(page, pageUrl('/'));
    const toLs = switchLink(page, 'ls');
    assert.equal(await toLs.count(), 1, '/: no visible link with lang=ls');
    await navigateBy(page, () => toLs.click(), { what: 'switch to Leichte Sprache' });
    assert.match(page.url(), /[?&]lang=ls\b/);
    assert.match(await htmlLang(page), /^de\b/i, 'Leichte Sprache is German: <html lang> should stay de');
  });
});

test('the chosen language survives following a link', async (t) => {
  await withPage(browser, t, NO_JS, async (page) => {
    await gotoOk(page, pageUrl('/', 'en'));
    const toFinder = page.locator('main a[href*="/zustaendigkeit"]').first();
    assert.ok((await toFinder.count()) > 0, '/?lang=en: no link to the finder inside <main>');
    await navigateBy(page, () => toFinder.click(), { what: 'home → finder (English)' });
    assert.equal(new URL(page.url()).pathname, '/zustaendigkeit');
    assert.match(await htmlLang(page), /^en\b/i, `${page.url()}: the English choice was lost on the next page`);
  });
});
