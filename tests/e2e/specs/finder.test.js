// The Zuständigkeitsfinder: without JavaScript, by keyboard only, and its error handling.

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
} from '../lib/harness.js';
import {
  FINDER_PATH,
  FINDER_CASES,
  runFinderByForm,
  runFinderByKeyboard,
  assertFinderResult,
  finderForm,
  submitButtonOf,
} from '../lib/finder.js';

// E-government must work without JavaScript (old devices, strict settings, screen readers
// with scripting off): the whole flow is server-rendered forms and links.
const NO_JS = { ...VIEWPORTS.desktop, javaScriptEnabled: false };

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

test('home page links to the Zuständigkeitsfinder (no JavaScript)', async (t) => {
  await withPage(browser, t, NO_JS, async (page) => {
    await gotoOk(page, pageUrl('/'));
    const link = page.locator(`main a[href*="${FINDER_PATH}"]`).first();
    assert.ok((await link.count()) > 0, '/ has no link to /zustaendigkeit inside <main>');
    await navigateBy(page, () => link.click(), { what: 'finder link' });
    assert.equal(new URL(page.url()).pathname, FINDER_PATH);
    assert.equal(await finderForm(page).count(), 1, 'finder form missing after following the home page link');
  });
});

test('finder fields carry the visible labels "Leistung" and "Ort"', async (t) => {
  await withPage(browser, t, NO_JS, async (page) => {
    await gotoOk(page, pageUrl(FINDER_PATH));
    for (const [label, name] of [[/^\s*Leistung\b/, 'leistung'], [/^\s*Ort\b/, 'ort']]) {
      const byLabel = page.getByLabel(label);
      assert.equal(await byLabel.count(), 1, `exactly one field labelled ${label} expected`);
      assert.equal(await byLabel.getAttribute('name'), name, `the field labelled ${label} is not named "${name}"`);
    }
  });
});

for (const [key, c] of Object.entries(FINDER_CASES)) {
  test(`finder without JavaScript: ${c.leistung} in ${c.ort} → ${c.expect}`, async (t) => {
    await withPage(browser, t, NO_JS, async (page) => {
      const steps = await runFinderByForm(page, c, 'de');
      t.diagnostic(steps.join(' | '));
      await assertFinderResult(page, c.expect, { lang: 'de', steps });
    });
  });

  test(`finder by keyboard only: ${c.leistung} in ${c.ort} → ${c.expect}`, async (t) => {
    await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
      const steps = await runFinderByKeyboard(page, c, 'de');
      t.diagnostic(steps.join(' | '));
      await assertFinderResult(page, c.expect, { lang: 'de', steps });
      // The result page is a page too.
      await assertNoAxeViolations(page, `finder result ${key} (${page.url()})`);
    });
  });
}

test('finder in English without JavaScript: Hundesteuer in Hannover', async (t) => {
  await withPage(browser, t, NO_JS, async (page) => {
    const c = FINDER_CASES.hannover;
    const steps = await runFinderByForm(page, c, 'en');
    await assertFinderResult(page, c.expect, { lang: 'en', steps });
    const htmlLang = (await page.locator('html').getAttribute('lang')) ?? '';
    assert.match(htmlLang, /^en\b/i, `the English flow ended on a page with <html lang="${htmlLang}">`);
  });
});

test('finder result page passes axe at phone size', async (t) => {
  await withPage(browser, t, VIEWPORTS.phone, async (page) => {
    const c = FINDER_CASES.nenndorf;
    const steps = await runFinderByForm(page, c, 'de');
    await assertFinderResult(page, c.expect, { lang: 'de', steps });
    await assertNoAxeViolations(page, `finder result [phone] (${page.url()})`);
  });
});

/** Links in the error summary, each with the name of the form field it points at. */
async function errorLinks(page) {
  return page.locator('.error-summary').first().evaluate((el) =>
    [...el.querySelectorAll('a[href^="#"]')].map((a) => {
      const target = document.getElementById(decodeURIComponent(a.getAttribute('href').slice(1)));
      const field = target?.matches('input, select, textarea') ? target : target?.querySelector('input, select, textarea');
      return { text: a.innerText, href: a.getAttribute('href'), field: field?.getAttribute('name') ?? null };
    }),
  );
}

/**
 * Error summary contract: `.error-summary` with role=alert, one link per faulty field
 * pointing at that field, and the same message next to the field.
 */
async function assertErrorsFor(page, fieldNames) {
  const summary = page.locator('.error-summary');
  assert.ok(await summary.first().isVisible().catch(() => false), `no visible .error-summary on ${page.url()}`);
  assert.equal(await summary.first().getAttribute('role'), 'alert', '.error-summary must have role="alert"');

  const links = await errorLinks(page);
  for (const name of fieldNames) {
    const link = links.find((l) => l.field === name);
    assert.ok(link, `.error-summary has no link to the field "${name}"; links: ${JSON.stringify(links)}`);

    // "Next to the field": the message is part of the field's description (aria-describedby)
    // or of the smallest element that groups the field with its label.
    const inline = await page.locator(`[name="${name}"]`).first().evaluate((input) => {
      const described = (input.getAttribute('aria-describedby') ?? '')
        .split(/\s+/)
        .filter(Boolean)
        .map((id) => document.getElementById(id)?.innerText ?? '')
        .join(' ');
      // Climb while the parent still holds no other form control: that is the field's group.
      const controls = 'input:not([type="hidden"]), select, textarea';
      let group = input;
      while (group.parentElement && group.parentElement.tagName !== 'FORM' && group.parentElement.querySelectorAll(controls).length === 1) {
        group = group.parentElement;
      }
      return { described, group: group === input ? '' : group.innerText };
    });
    const msg = norm(link.text).toLowerCase();
    const near = norm(`${inline.described} ${inline.group}`).toLowerCase();
    assert.ok(
      msg.length > 0 && near.includes(msg),
      `the error "${norm(link.text)}" for "${name}" is not shown next to the field (found: "${norm(near).slice(0, 300)}")`,
    );
  }
}

for (const [vpName, vp] of Object.entries(VIEWPORTS)) {
  test(`finder empty submit shows the error summary and passes axe (${vpName})`, async (t) => {
    await withPage(browser, t, vp, async (page) => {
      await gotoOk(page, pageUrl(FINDER_PATH));
      const form = finderForm(page);
      await navigateBy(page, () => submitButtonOf(form).click(), { what: 'empty finder submit' });
      await assertErrorsFor(page, ['leistung', 'ort']);
      await assertNoAxeViolations(page, `finder errors [${vpName}] (${page.url()})`);
    });
  });
}

test('finder error keeps what was typed and names only the missing field (no JavaScript)', async (t) => {
  await withPage(browser, t, NO_JS, async (page) => {
    await gotoOk(page, pageUrl(FINDER_PATH));
    const form = finderForm(page);
    await form.locator('input[name="leistung"]').fill('Hundesteuer');
    await navigateBy(page, () => submitButtonOf(form).click(), { what: 'finder submit without ort' });
    const summary = page.locator('.error-summary');
    assert.ok(await summary.first().isVisible().catch(() => false), 'no .error-summary when "ort" is empty');
    const fields = (await errorLinks(page)).map((l) => l.field);
    assert.ok(fields.includes('ort'), `the error summary does not link to the "ort" field: ${JSON.stringify(fields)}`);
    assert.ok(!fields.includes('leistung'), 'the error summary blames "leistung", which was filled in');
    assert.equal(await page.locator('input[name="leistung"]').first().inputValue(), 'Hundesteuer', 'the entered "leistung" was lost');
  });
});

test('finder error summary links move focus to the field', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    // What the empty GET form submits. An error page may answer 200 or 4xx; not 5xx.
    const response = await page.goto(pageUrl(FINDER_PATH, 'de', { leistung: '', ort: '' }));
    assert.ok(response && response.status() < 500, `empty search answered HTTP ${response?.status()}`);
    const link = page.locator('.error-summary a[href^="#"]').first();
    assert.ok((await link.count()) > 0, `GET ${page.url()} with empty fields shows no error summary link`);
    const href = await link.getAttribute('href');
    await link.click();
    // Either the field itself gets focus, or the next Tab reaches it.
    let ok = await page.evaluate((id) => {
      const target = document.getElementById(id);
      return !!target && (document.activeElement === target || target.contains(document.activeElement));
    }, decodeURIComponent(href.slice(1)));
    if (!ok) {
      await page.keyboard.press('Tab');
      ok = await page.evaluate((id) => {
        const target = document.getElementById(id);
        return !!target && (document.activeElement === target || target.contains(document.activeElement));
      }, decodeURIComponent(href.slice(1)));
    }
    assert.ok(ok, `following the error link ${href} does not bring keyboard focus to the field`);
  });
});
