// Shared helpers for the Rathaus browser tests (node --test + playwright-core + axe-core).
//
// The server under test is started by tests/e2e/run, which exports RATHAUS_E2E_BASE_URL.
// Chromium is Debian's /usr/bin/chromium: Playwright must never download a browser, and
// the machine has no network besides loopback, so every switch that makes Chromium phone
// home is turned off.

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** WCAG 2.0/2.1 A and AA: what BITV 2.0 / EN 301 549 require of German authorities. */
export const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

/** Authority used throughout the contract: Samtgemeinde Nenndorf. */
export const NENNDORF_ARS = '032575403000';

/** Languages the server offers. German is the default (no parameter). */
export const LANGS = {
  de: { param: null, htmlLang: /^de\b/i },
  en: { param: 'en', htmlLang: /^en\b/i },
  // Leichte Sprache is German, so the document language stays German.
  ls: { param: 'ls', htmlLang: /^de\b/i },
};

/** Viewports: a common desktop and a phone (390×844 CSS px, like current iPhones). */
export const VIEWPORTS = {
  desktop: { viewport: { width: 1280, height: 800 } },
  phone: { viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true },
};

const CHROMIUM = process.env.RATHAUS_E2E_CHROMIUM || '/usr/bin/chromium';

// --headless etc. are also what Playwright passes itself; we list them explicitly so the
// intent is visible. The network switches matter: without them Chromium keeps trying to
// reach Google services, which this machine refuses. A fresh --user-data-dir is created
// by Playwright for every launch() (a temp "playwright_chromiumdev_profile-*" dir that
// it deletes on close); Playwright forbids passing --user-data-dir to launch() itself.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const RESULTS_DIR = fileURLToPath(new URL('../test-results/', import.meta.url));

let axeSource;
function axeScript() {
  // Injected as a string through the DevTools protocol, so a strict Content-Security-Policy
  // on the page (script-src 'self') cannot block it and we need no bypassCSP.
  axeSource ??= readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  return axeSource;
}

/** Base URL of the server under test, without trailing slash. */
export function baseUrl() {
  const raw = process.env.RATHAUS_E2E_BASE_URL;
  if (!raw) {
    throw new Error(
      'RATHAUS_E2E_BASE_URL is not set. Run the browser tests through tests/e2e/run ' +
        '(it starts the server), or export the URL of a running server.',
    );
  }
  return raw.replace(/\/+$/, '');
}

/** Absolute URL for `pathname` in language `lang` (de = no parameter). */
export function pageUrl(pathname, lang = 'de', params = {}) {
  const u = new URL(pathname, baseUrl() + '/');
  const p = LANGS[lang]?.param;
  if (p) u.searchParams.set('lang', p);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
}

/**
 * Run `fn(page, context)` in a fresh browser context, so no cookie or state leaks between
 * tests. On failure a screenshot and the page's HTML go to tests/e2e/test-results/.
 */
export async function withPage(browser, t, contextOptions, fn) {
  const context = await browser.newContext({
    locale: 'de-DE',
    timezoneId: 'Europe/Berlin',
    ...contextOptions,
  });
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(30_000);
  const page = await context.newPage();
  try {
    return await fn(page, context);
  } catch (err) {
    await saveArtifacts(page, t?.name ?? 'test').catch(() => {});
    throw err;
  } finally {
    await context.close();
  }
}

async function saveArtifacts(page, name) {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const base = path.join(RESULTS_DIR, name.replace(/[^\w.-]+/g, '_').slice(0, 120));
  await page.screenshot({ path: `${base}.png`, fullPage: true, timeout: 5_000 });
  writeFileSync(`${base}.html`, `<!-- ${page.url()} -->\n${await page.content()}`);
  console.error(`  artifacts: ${base}.png / .html (page ${page.url()})`);
}

/** Navigate and insist on HTTP 200: an error page could otherwise pass axe. */
export async function gotoOk(page, url) {
  const response = await page.goto(url, { waitUntil: 'load' });
  assert.ok(response, `no response for ${url}`);
  assert.equal(response.status(), 200, `GET ${url} answered HTTP ${response.status()}`);
  return response;
}

/**
 * Perform `action` (a click, a key press) that submits a form or follows a link, and wait
 * until the next document has loaded. Returns that document's main response (or null).
 * If nothing navigates, explain the likely cause instead of a bare timeout.
 */
export async function navigateBy(page, action, { timeout = 30_000, what = 'navigation' } = {}) {
  const startUrl = page.url();
  let mainResponse = null;
  const onResponse = (r) => {
    if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) mainResponse = r;
  };
  page.on('response', onResponse);
  try {
    const navigated = page.waitForEvent('framenavigated', {
      predicate: (f) => f === page.mainFrame(),
      timeout,
    });
    // If the action fails, its error is the one to report, not this wait's.
    navigated.catch(() => {});
    await action();
    try {
      await navigated;
    } catch (err) {
      throw new Error(
        `${what}: no page load after the action on ${startUrl} within ${timeout} ms. ` +
          'If this was a form submit: did browser-side validation (a `required` field ' +
          'without `novalidate` on the form) block it?',
        { cause: err },
      );
    }
    await page.waitForLoadState('load');
    return mainResponse;
  } finally {
    page.off('response', onResponse);
  }
}

/** Run axe with the WCAG 2.1 A/AA tags and return the violations (plain data). */
export async function axeViolations(page) {
  const hasAxe = await page.evaluate(() => typeof window.axe !== 'undefined');
  if (!hasAxe) await page.evaluate(axeScript());
  return page.evaluate(async (tags) => {
    const result = await window.axe.run(document, {
      runOnly: { type: 'tag', values: tags },
      resultTypes: ['violations'],
    });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({ target: n.target, summary: n.failureSummary })),
    }));
  }, AXE_TAGS);
}

export function formatViolations(violations) {
  return violations
    .map((v) => {
      const targets = v.nodes
        .map((n) => `      target: ${JSON.stringify(n.target)}${n.summary ? `\n        ${n.summary.replace(/\n/g, '\n        ')}` : ''}`)
        .join('\n');
      return `  - ${v.id} (${v.impact ?? 'n/a'}): ${v.help}\n    ${v.helpUrl}\n${targets}`;
    })
    .join('\n');
}

/** Fail with every violation's id, help text and target selectors. */
export async function assertNoAxeViolations(page, label = page.url()) {
  const violations = await axeViolations(page);
  if (violations.length > 0) {
    assert.fail(
      `axe found ${violations.length} WCAG 2.1 A/AA violation(s) on ${label}:\n${formatViolations(violations)}`,
    );
  }
}

/** Describe document.activeElement (JS-enabled pages only). */
export async function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return { tag: 'body' };
    const labelText = (el.labels ? [...el.labels] : [])
      .map((l) => l.innerText)
      .concat(el.closest('label') ? [el.closest('label').innerText] : [])
      .join(' ')
      .trim();
    return {
      tag: el.tagName.toLowerCase(),
      type: el.getAttribute('type'),
      name: el.getAttribute('name'),
      id: el.id || null,
      href: el.getAttribute('href'),
      checked: el.checked ?? null,
      inForm: !!el.form,
      isSubmit:
        (el.tagName === 'BUTTON' && (el.getAttribute('type') ?? 'submit').toLowerCase() === 'submit') ||
        (el.tagName === 'INPUT' && ['submit', 'image'].includes((el.getAttribute('type') ?? '').toLowerCase())),
      label: labelText || el.getAttribute('aria-label') || el.innerText?.trim() || '',
    };
  });
}

/** Press Tab until `predicate(focused)` holds; fail after `max` presses. */
export async function tabUntil(page, predicate, { max = 60, what = 'target' } = {}) {
  const seen = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const f = await focused(page);
    if (predicate(f)) return f;
    seen.push(`${f.tag}${f.name ? `[name=${f.name}]` : ''}${f.href ? `[href=${f.href}]` : ''}`);
  }
  assert.fail(`keyboard: ${what} not reached after ${max} Tab presses on ${page.url()}; focus went: ${seen.join(' → ')}`);
}

/** Collapse whitespace for text comparisons. */
export function norm(s) {
  return (s ?? '').replace(/\s+/g, ' ').trim();
}
