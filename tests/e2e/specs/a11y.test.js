// Accessibility of every public page: axe (WCAG 2.1 A/AA) in German and English (and
// Leichte Sprache where offered), at desktop and phone size, plus the structure every
// page promises: <html lang>, landmarks, a skip link to #main as the first Tab stop.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser,
  withPage,
  gotoOk,
  pageUrl,
  assertNoAxeViolations,
  focused,
  LANGS,
  VIEWPORTS,
  NENNDORF_ARS,
} from '../lib/harness.js';

const PAGES = [
  { path: '/', langs: ['de', 'en', 'ls'] },
  { path: '/zustaendigkeit', langs: ['de', 'en', 'ls'] },
  { path: `/behoerden/${NENNDORF_ARS}`, langs: ['de', 'en'] },
  { path: `/behoerden/${NENNDORF_ARS}/impressum`, langs: ['de', 'en'] },
  { path: `/behoerden/${NENNDORF_ARS}/datenschutz`, langs: ['de', 'en'] },
  { path: `/behoerden/${NENNDORF_ARS}/barrierefreiheit`, langs: ['de', 'en'] },
];

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

for (const { path, langs } of PAGES) {
  for (const lang of langs) {
    for (const [vpName, vp] of Object.entries(VIEWPORTS)) {
      test(`axe ${path} lang=${lang} ${vpName}`, async (t) => {
        await withPage(browser, t, vp, async (page) => {
          const url = pageUrl(path, lang);
          await gotoOk(page, url);
          await assertNoAxeViolations(page, `${url} [${vpName}]`);
          if (vpName === 'phone') {
            // WCAG 1.4.10 Reflow: no horizontal scrolling on a narrow screen.
            const { scrollWidth, innerWidth } = await page.evaluate(() => ({
              scrollWidth: document.documentElement.scrollWidth,
              innerWidth: window.innerWidth,
            }));
            assert.ok(
              scrollWidth <= innerWidth + 1,
              `${url}: page is ${scrollWidth}px wide at a ${innerWidth}px phone viewport (horizontal scrolling)`,
            );
          }
        });
      });
    }

    test(`structure ${path} lang=${lang}: html lang, landmarks, skip link`, async (t) => {
      await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
        const url = pageUrl(path, lang);
        await gotoOk(page, url);

        const htmlLang = (await page.locator('html').getAttribute('lang')) ?? '';
        assert.match(htmlLang, LANGS[lang].htmlLang, `${url}: <html lang="${htmlLang}"> does not fit lang=${lang}`);

        const landmarks = await page.evaluate(() => ({
          header: !!document.querySelector('header, [role="banner"]'),
          nav: !!document.querySelector('nav, [role="navigation"]'),
          main: document.querySelectorAll('main, [role="main"]').length,
          footer: !!document.querySelector('footer, [role="contentinfo"]'),
          h1: document.querySelectorAll('h1').length,
          title: document.title.trim(),
        }));
        assert.ok(landmarks.header, `${url}: no header/banner landmark`);
        assert.ok(landmarks.nav, `${url}: no nav landmark`);
        assert.equal(landmarks.main, 1, `${url}: expected exactly one main landmark`);
        assert.ok(landmarks.footer, `${url}: no footer/contentinfo landmark`);
        assert.ok(landmarks.h1 >= 1, `${url}: no <h1>`);
        assert.ok(landmarks.title.length > 0, `${url}: empty <title>`);

        // The skip link is the first thing a keyboard user reaches…
        await page.keyboard.press('Tab');
        const first = await focused(page);
        assert.equal(first.tag, 'a', `${url}: first Tab stop is <${first.tag}>, not the skip link`);
        assert.match(first.href ?? '', /#main$/, `${url}: first Tab stop links to "${first.href}", not #main`);
        const target = await page.evaluate(() => {
          const el = document.getElementById('main');
          if (!el) return null;
          return { isMain: el.matches('main, [role="main"]') || !!el.closest('main, [role="main"]') };
        });
        assert.ok(target, `${url}: the skip link's target #main does not exist`);
        assert.ok(target.isMain, `${url}: #main is not (inside) the main landmark`);

        // …and following it moves the keyboard past the header and navigation.
        await page.keyboard.press('Enter');
        const after = await page.evaluate(() => {
          const main = document.getElementById('main');
          const focusable = main.querySelector('a[href], button, input:not([type="hidden"]), select, textarea, [tabindex]:not([tabindex="-1"])');
          return {
            hash: location.hash,
            focusOnMain: document.activeElement === main || main.contains(document.activeElement),
            mainHasFocusable: !!focusable,
          };
        });
        assert.equal(after.hash, '#main', `${url}: Enter on the skip link did not go to #main`);
        if (!after.focusOnMain && after.mainHasFocusable) {
          await page.keyboard.press('Tab');
          const inMain = await page.evaluate(() => document.getElementById('main').contains(document.activeElement));
          assert.ok(inMain, `${url}: after the skip link, the next Tab stop is not inside #main`);
        }
      });
    });
  }
}
