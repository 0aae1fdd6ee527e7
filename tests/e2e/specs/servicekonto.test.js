// Servicekonto and Postfach (issue 3) in headless Chromium.
//
// 1. A new account end to end: register (a too-short password first) → the verification
//    mail on /demo/mails (demo mode lists sent mails) → login → TOTP on /konto/zwei-faktor
//    (code computed here per RFC 6238) → recovery codes → logout → login with password and
//    code → /konto with the logins in "Kontoaktivität" → login with a recovery code.
// 2. The demo citizen's Postfach (demo.json `citizen`): list, the Hundesteuer message with
//    its delivery facts (OZG § 9), attachment download, reply with an uploaded file, the
//    level-3 message refused (403). The Postfach API (demo.json `postfach_api`): token by
//    client credentials, multipart delivery, status with firstOpenedAt and the hash-chained
//    log before and after the citizen opens the message.
// 3. axe on every Servicekonto/Postfach page (de; login and Postfach also en and Leichte
//    Sprache), keyboard order on the login page, no horizontal scrolling on a phone.
// 4. Without JavaScript: login and opening a Postfach message.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  launchBrowser,
  withPage,
  gotoOk,
  pageUrl,
  baseUrl,
  navigateBy,
  assertNoAxeViolations,
  focused,
  tabUntil,
  norm,
  VIEWPORTS,
} from '../lib/harness.js';
import { demoData } from '../lib/demo.js';

const NO_JS = { ...VIEWPORTS.desktop, javaScriptEnabled: false };
const PHONE_375 = { viewport: { width: 375, height: 667 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

// Long, not common, without the address in it (the server's NIST policy checks all three).
const PASSWORD = 'Wolkige Teekanne über der Brücke 42';
const HUNDESTEUER = /Hundesteuer/;
const GERMAN_DATE = /^\d{2}\.\d{2}\.\d{4}$/;
const GERMAN_TIME = /^\d{2}\.\d{2}\.\d{4} \d{2}:\d{2} UTC$/;

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/**
 * URL of `pathname` in `lang`, German included explicitly: the server remembers the last
 * language chosen by ?lang= in a cookie, so a URL without the parameter may not be German.
 */
function at(pathname, lang = 'de') {
  return pageUrl(pathname, lang, lang === 'de' ? { lang: 'de' } : {});
}

/** The page is in `lang`: the language switch marks it as current. */
async function assertLanguage(page, lang) {
  const current = await page.locator('.lang-switch a[aria-current="true"]').getAttribute('href');
  assert.match(current ?? '', new RegExp(`[?&]lang=${lang}\\b`), `${page.url()} is not in lang=${lang}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// RFC 6238 (TOTP: HMAC-SHA1, 30 s steps, 6 digits) and RFC 4648 base32
// ---------------------------------------------------------------------------------------

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** Base32 (RFC 4648) to bytes; white space and padding are ignored. */
function base32Decode(text) {
  const clean = text.replace(/[\s=]/g, '').toUpperCase();
  const out = [];
  let value = 0;
  let bits = 0;
  for (const ch of clean) {
    const idx = BASE32.indexOf(ch);
    if (idx < 0) throw new Error(`not base32: ${JSON.stringify(ch)} in ${JSON.stringify(text)}`);
    value = ((value << 5) | idx) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

const STEP_SECS = 30;
const currentStep = () => Math.floor(Date.now() / 1000 / STEP_SECS);

/** The 6-digit code of time step `step` (RFC 4226 dynamic truncation). */
function totpCode(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', secret).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const binary =
    ((mac[offset] & 0x7f) << 24) | (mac[offset + 1] << 16) | (mac[offset + 2] << 8) | mac[offset + 3];
  return String(binary % 1_000_000).padStart(6, '0');
}

/** Wait until the time step is past `step` (a code works only once per step). */
async function waitForStepAfter(step) {
  while (currentStep() <= step) {
    const msToNext = STEP_SECS * 1000 - (Date.now() % (STEP_SECS * 1000));
    await sleep(msToNext + 250);
  }
}

// ---------------------------------------------------------------------------------------
// Page helpers
// ---------------------------------------------------------------------------------------

function formFor(page, actionPrefix) {
  return page.locator(`main form[method="post"][action^="${actionPrefix}"]`).first();
}

function submitOf(form) {
  return form.locator('button[type="submit"], button:not([type])').first();
}

async function h1(page) {
  return norm(await page.locator('h1').first().innerText());
}

/** The text of the <dd> after the <dt> reading `label` in the message's facts list. */
async function fact(page, label) {
  return page.evaluate((label) => {
    for (const dt of document.querySelectorAll('dl.facts dt')) {
      if (dt.textContent.replace(/\s+/g, ' ').trim() === label) {
        const dd = dt.nextElementSibling;
        return dd ? dd.textContent.replace(/\s+/g, ' ').trim() : null;
      }
    }
    return null;
  }, label);
}

/** Log in with address and password on /konto/anmelden; returns the final response. */
async function passwordLogin(page, email, password, { lang = 'de' } = {}) {
  await gotoOk(page, at('/konto/anmelden', lang));
  const form = formFor(page, '/konto/anmelden');
  await form.locator('#email').fill(email);
  await form.locator('#password').fill(password);
  const res = await navigateBy(page, () => submitOf(form).click(), { what: `login of ${email}` });
  assert.ok(!res || res.status() < 400, `login of ${email} answered HTTP ${res?.status()} (${page.url()})`);
  return res;
}

/** Log in as the demo citizen; lands on /konto (the demo citizen has no second factor). */
async function citizenLogin(page, opts) {
  const { username, password } = demoData().citizen;
  await passwordLogin(page, username, password, opts);
  assert.equal(new URL(page.url()).pathname, '/konto', `demo citizen login ended on ${page.url()}`);
}

async function submitCode(page, code) {
  const form = formFor(page, '/konto/anmelden/code');
  await form.locator('#code').fill(code);
  return navigateBy(page, () => submitOf(form).click(), { what: 'second factor' });
}

async function logout(page) {
  await gotoOk(page, at('/konto'));
  const res = await navigateBy(page, () => submitOf(formFor(page, '/konto/abmelden')).click(), { what: 'logout' });
  assert.equal(res?.status(), 200, `logout answered HTTP ${res?.status()}`);
  assert.equal(await h1(page), 'Sie sind abgemeldet');
}

/** The "Was" column of the Kontoaktivität table on /konto. */
async function activity(page) {
  const rows = page.locator('section[aria-labelledby="aktivitaet"] tbody tr');
  return (await rows.evaluateAll((trs) => trs.map((tr) => tr.cells[1]?.textContent ?? ''))).map(norm);
}

/** Row link of a Postfach message whose text matches `re`. */
function messageLink(page, re) {
  return page.locator('table.postfach tbody a').filter({ hasText: re }).first();
}

/**
 * Click a message link in the middle of its text. (An unread message's link starts with a
 * visually hidden "Ungelesen:"; Playwright would aim at that 1×1 px box, which the clip
 * makes untargetable, and retry until its timeout. A mouse user clicks the text.)
 */
async function openMessage(page, re, what = 'open a Postfach message') {
  const link = messageLink(page, re);
  assert.equal(await link.count(), 1, `no Postfach message matching ${re} in the list`);
  const box = await link.boundingBox();
  return navigateBy(page, () => link.click({ position: { x: box.width / 2, y: box.height / 2 } }), { what });
}

async function assertNoHorizontalScroll(page, label) {
  const { scrollWidth, innerWidth } = await page.evaluate(() => ({
    scrollWidth: document.scrollingElement.scrollWidth,
    innerWidth: window.innerWidth,
  }));
  assert.ok(
    scrollWidth <= innerWidth,
    `${label}: page is ${scrollWidth}px wide at a ${innerWidth}px phone viewport (horizontal scrolling)`,
  );
}

// ---------------------------------------------------------------------------------------
// Postfach API (client credentials)
// ---------------------------------------------------------------------------------------

async function apiToken() {
  const api = demoData().postfach_api;
  const basic = Buffer.from(
    `${encodeURIComponent(api.client_id)}:${encodeURIComponent(api.client_secret)}`,
  ).toString('base64');
  const res = await fetch(api.token_url, {
    method: 'POST',
    headers: { Authorization: `Basic ${basic}`, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'postfach:deliver' }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, `token endpoint answered HTTP ${res.status}: ${JSON.stringify(body)}`);
  assert.match(body.token_type ?? '', /^bearer$/i, 'token_type is not Bearer');
  assert.ok(typeof body.access_token === 'string' && body.access_token.length >= 20, 'no access_token');
  return body.access_token;
}

async function apiStatus(token, id) {
  const res = await fetch(`${baseUrl()}/api/postfach/v1/messages/${encodeURIComponent(id)}`, {
    headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
  });
  const body = await res.json();
  assert.equal(res.status, 200, `GET message ${id} answered HTTP ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

/** A small valid PDF. */
function tinyPdf(text) {
  const stream = `BT /F1 12 Tf 72 720 Td (${text}) Tj ET`;
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let out = '%PDF-1.4\n';
  const offsets = [];
  objects.forEach((o, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) out += `${String(o).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

/** Date (YYYY-MM-DD) of an instant in German local time, as § 9 OZG counts days. */
function germanDate(iso) {
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Berlin' }).format(new Date(iso));
}

const toGerman = (ymd) => ymd.split('-').reverse().join('.');

/** Check the fields of every log entry and the hash of each one (format rathaus-postfach-log/1). */
// The delivery steps come from the journal: each entry's leaf hash is recomputed here
// (RFC 9162: SHA-256 over 0x00 and the entry's bytes), its subject and kind checked, and
// no entry may hold the message's text in clear.
function checkLog(log, id, subject) {
  assert.ok(Array.isArray(log) && log.length > 0, `message ${id}: empty delivery log`);
  const kinds = { placed: 'postfach_placed', replied: 'postfach_placed', notified: 'postfach_notified', opened: 'postfach_opened' };
  for (const [i, e] of log.entries()) {
    for (const key of ['event', 'at', 'journalIndex', 'leafHash', 'entry']) {
      assert.ok(key in e, `log entry ${i} of ${id} has no ${key}: ${JSON.stringify(e)}`);
    }
    const recomputed = createHash('sha256').update(Buffer.concat([Buffer.from([0]), Buffer.from(e.entry, 'utf8')])).digest('hex');
    assert.equal(e.leafHash, recomputed, `log entry ${i} (${e.event}): leafHash does not cover its entry`);
    const entry = JSON.parse(e.entry);
    assert.equal(entry.subject, `postfach:${id}`, `log entry ${i} belongs to another message`);
    assert.equal(entry.kind, kinds[e.event], `log entry ${i}: kind ${entry.kind} for event ${e.event}`);
    assert.ok(!e.entry.includes(subject), `log entry ${i} holds the message subject in clear`);
    if (e.event === 'placed') {
      assert.match(entry.digests?.content ?? '', /^[0-9a-f]{64}$/, 'the placed entry has no content digest');
    }
    assert.ok(e.journalIndex === null || Number.isInteger(e.journalIndex), `log entry ${i}: journalIndex ${e.journalIndex}`);
  }
}

// What stays of a step when the sequencer takes it: everything but the index.
const stable = (log) => log.map(({ event, at, leafHash, entry }) => ({ event, at, leafHash, entry }));

// ---------------------------------------------------------------------------------------
// 0. The test's own TOTP arithmetic
// ---------------------------------------------------------------------------------------

test('TOTP helper: RFC 4648 base32 and the RFC 6238 SHA-1 test vectors', () => {
  const secret = base32Decode('GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ');
  assert.equal(secret.toString('ascii'), '12345678901234567890');
  // RFC 6238 appendix B (8 digits there; the last 6 are the 6-digit code).
  assert.equal(totpCode(secret, Math.floor(59 / 30)), '287082');
  assert.equal(totpCode(secret, Math.floor(1111111109 / 30)), '081804');
  assert.equal(totpCode(secret, Math.floor(2000000000 / 30)), '279037');
});

// ---------------------------------------------------------------------------------------
// 1. Register → verify → login → TOTP → logout → login with code → Kontoaktivität
// ---------------------------------------------------------------------------------------

test('Servicekonto: register, verify by mail link, TOTP, second-factor login, Kontoaktivität (with axe)', { timeout: 240_000 }, async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    const email = `e2e-${Date.now()}-${randomBytes(3).toString('hex')}@example.org`;

    // Registration form, then a too-short password: error summary, input kept.
    await gotoOk(page, at('/konto/registrieren'));
    assert.equal(await page.locator('#email').getAttribute('autocomplete'), 'username');
    assert.equal(await page.locator('#password').getAttribute('autocomplete'), 'new-password');
    await assertNoAxeViolations(page, '/konto/registrieren');
    let form = formFor(page, '/konto/registrieren');
    await form.locator('#email').fill(email);
    await form.locator('#password').fill('kurz');
    let res = await navigateBy(page, () => submitOf(form).click(), { what: 'registration with short password' });
    assert.equal(res?.status(), 422, `short password answered HTTP ${res?.status()}`);
    const summary = page.locator('.error-summary');
    assert.ok(await summary.isVisible(), 'no error summary for a too-short password');
    assert.equal(await summary.getAttribute('role'), 'alert');
    assert.equal(await summary.locator('a[href="#password"]').count(), 1, 'the error summary does not link to #password');
    assert.match(norm(await summary.innerText()), /mindestens 12 Zeichen/);
    assert.equal(await page.locator('#password').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.locator('#email').inputValue(), email, 'the address was lost');
    await assertNoAxeViolations(page, '/konto/registrieren with a validation error');

    // Now a good password: "check your mail".
    form = formFor(page, '/konto/registrieren');
    await form.locator('#password').fill(PASSWORD);
    res = await navigateBy(page, () => submitOf(form).click(), { what: 'registration' });
    assert.equal(res?.status(), 200, `registration answered HTTP ${res?.status()}`);
    assert.equal(await h1(page), 'Bitte prüfen Sie Ihr E-Mail-Postfach');
    await assertNoAxeViolations(page, 'registration done');

    // Login before verification is refused (and sends a new link).
    await passwordLogin(page, email, PASSWORD);
    assert.equal(await h1(page), 'Bitte bestätigen Sie zuerst Ihre E-Mail-Adresse');

    // The verification mail in the demo's mail list; follow its link.
    let link;
    for (let i = 0; i < 20 && !link; i++) {
      await gotoOk(page, at('/demo/mails'));
      const mail = page.locator('article.mail').filter({ hasText: email }).first();
      if ((await mail.count()) > 0) link = mail.locator('a[href*="/konto/bestaetigen"]').first();
      else await sleep(250);
    }
    assert.ok(link && (await link.count()) === 1, `no verification mail with a link to ${email} on /demo/mails`);
    await assertNoAxeViolations(page, '/demo/mails');
    const href = await link.getAttribute('href');
    assert.ok(href.startsWith(`${baseUrl()}/konto/bestaetigen?`), `verification link ${href} is not on ${baseUrl()}`);
    res = await navigateBy(page, () => link.click(), { what: 'verification link' });
    assert.equal(res?.status(), 200, `verification link answered HTTP ${res?.status()}`);
    assert.equal(await h1(page), 'E-Mail-Adresse bestätigt');
    await assertNoAxeViolations(page, 'verification done');

    // Login with password alone: /konto.
    await passwordLogin(page, email, PASSWORD);
    assert.equal(new URL(page.url()).pathname, '/konto', `login ended on ${page.url()}`);
    assert.equal(await h1(page), 'Ihr Servicekonto');

    // TOTP setup: the secret in groups of four, the code computed here.
    await gotoOk(page, at('/konto/zwei-faktor'));
    await assertNoAxeViolations(page, '/konto/zwei-faktor');
    const shown = norm(await page.locator('#totp-secret').innerText());
    assert.match(shown, /^[A-Z2-7]{4}( [A-Z2-7]{1,4})+$/, `#totp-secret is not grouped base32: ${shown}`);
    const secret = base32Decode(shown);
    assert.ok(secret.length >= 16, `TOTP secret has only ${secret.length} bytes`);
    const otpauth = await page.locator('a[href^="otpauth://totp/"]').getAttribute('href');
    assert.equal(new URL(otpauth).searchParams.get('secret'), shown.replace(/ /g, ''), 'otpauth URI and shown secret differ');
    assert.equal(await page.locator('#code').getAttribute('autocomplete'), 'one-time-code');
    const setupStep = currentStep();
    form = formFor(page, '/konto/zwei-faktor');
    await form.locator('#code').fill(totpCode(secret, setupStep));
    res = await navigateBy(page, () => submitOf(form).click(), { what: 'TOTP confirmation' });
    assert.equal(res?.status(), 200, `TOTP confirmation answered HTTP ${res?.status()}`);
    assert.equal(await h1(page), 'Ihre Wiederherstellungscodes');
    const recoveryCodes = (await page.locator('ul.codes code').allInnerTexts()).map(norm);
    assert.ok(recoveryCodes.length >= 5, `only ${recoveryCodes.length} recovery codes shown`);
    await assertNoAxeViolations(page, 'recovery codes');

    await gotoOk(page, at('/konto'));
    assert.match(norm(await page.locator('main').innerText()), /Zweiter Faktor \(Authenticator-App\) ist eingeschaltet/);
    await assertNoAxeViolations(page, '/konto (TOTP on)');
    await logout(page);

    // Password, then the second factor is asked for.
    await passwordLogin(page, email, PASSWORD);
    assert.equal(new URL(page.url()).pathname, '/konto/anmelden/code', `after the password: ${page.url()}, not the code page`);
    assert.equal(await h1(page), 'Sicherheitscode eingeben');
    assert.equal(await page.locator('#code').getAttribute('autocomplete'), 'one-time-code');
    await assertNoAxeViolations(page, 'second-factor page');

    // A wrong code: error, still on the code page.
    const valid = new Set([-1, 0, 1, 2].map((d) => totpCode(secret, currentStep() + d)));
    const wrong = ['000000', '111111', '222222'].find((c) => !valid.has(c));
    res = await submitCode(page, wrong);
    assert.equal(res?.status(), 422, `a wrong code answered HTTP ${res?.status()}`);
    assert.ok(await page.locator('.error-summary a[href="#code"]').isVisible(), 'no error summary for a wrong code');
    await assertNoAxeViolations(page, 'second-factor page with an error');

    // The setup used this step's code; a code works once, so take the next step's.
    await waitForStepAfter(setupStep);
    res = await submitCode(page, totpCode(secret, currentStep()));
    assert.equal(res?.status(), 200, `the code answered HTTP ${res?.status()}`);
    assert.equal(new URL(page.url()).pathname, '/konto', `after the code: ${page.url()}`);
    const methods = await fact(page, 'Angemeldet mit');
    assert.match(methods ?? '', /Passwort/, `"Angemeldet mit" is ${methods}`);
    assert.match(methods ?? '', /Authenticator-App/, `"Angemeldet mit" is ${methods}`);
    let events = await activity(page);
    const logins = events.filter((e) => e === 'Anmeldung').length;
    assert.ok(logins >= 2, `Kontoaktivität shows ${logins} login(s), expected both: ${events.join(' | ')}`);
    for (const what of ['Konto angelegt', 'E-Mail-Adresse bestätigt', 'Zweiter Faktor eingeschaltet', 'Abmeldung', 'Falscher Sicherheitscode']) {
      assert.ok(events.includes(what), `Kontoaktivität lacks "${what}": ${events.join(' | ')}`);
    }

    // A recovery code works once instead of the app's code.
    await logout(page);
    await passwordLogin(page, email, PASSWORD);
    assert.equal(new URL(page.url()).pathname, '/konto/anmelden/code');
    res = await submitCode(page, recoveryCodes[0]);
    assert.equal(new URL(page.url()).pathname, '/konto', `the recovery code did not log in (${page.url()})`);
    events = await activity(page);
    assert.ok(events.filter((e) => e === 'Anmeldung').length >= 3, `logins missing: ${events.join(' | ')}`);
    assert.ok(events.includes('Wiederherstellungscode benutzt'), `recovery code use not shown: ${events.join(' | ')}`);
  });
});

// ---------------------------------------------------------------------------------------
// 2. Postfach of the demo citizen, and the Postfach API
// ---------------------------------------------------------------------------------------

test('Postfach: list, Hundesteuer message with delivery facts, attachment download, reply with a file', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    await citizenLogin(page);
    await gotoOk(page, at('/postfach'));
    assert.equal(await h1(page), 'Postfach');
    const rows = (await page.locator('table.postfach tbody tr').allInnerTexts()).map(norm);
    assert.ok(rows.some((r) => HUNDESTEUER.test(r)), `no Hundesteuer message in the list: ${rows.join(' | ')}`);
    assert.ok(
      rows.some((r) => /Vertrauensniveau 3.*stärkerer Anmeldung/.test(r)),
      `the level-3 message is not listed as locked: ${rows.join(' | ')}`,
    );
    assert.ok(!/Melderegister/.test(rows.join(' ')), 'the level-3 message shows its subject in the list');

    // The message: delivery facts (placed, first opened, deemed delivered).
    const res = await openMessage(page, HUNDESTEUER, 'open Hundesteuer');
    assert.equal(res?.status(), 200);
    const messageUrl = page.url().split('#')[0];
    const messageId = new URL(messageUrl).pathname.split('/').pop();
    assert.match(await h1(page), HUNDESTEUER);
    assert.match((await fact(page, 'Eingestellt am')) ?? '', GERMAN_TIME);
    const opened = await fact(page, 'Zuerst geöffnet am');
    assert.match(opened ?? '', GERMAN_TIME, `"Zuerst geöffnet am" is ${JSON.stringify(opened)}`);
    const deemed = await fact(page, 'Gilt als zugestellt am');
    assert.match(deemed ?? '', GERMAN_DATE, `"Gilt als zugestellt am" is ${JSON.stringify(deemed)}`);

    // Attachment: a download (Content-Disposition attachment), the bytes a PDF.
    const pdfLink = page.locator('ul.attachments a').filter({ hasText: /\.pdf$/ }).first();
    assert.equal(await pdfLink.count(), 1, 'no PDF attachment listed');
    const pdfName = norm(await pdfLink.innerText());
    const pdfUrl = new URL(await pdfLink.getAttribute('href'), page.url()).toString();
    const [download] = await Promise.all([page.waitForEvent('download'), pdfLink.click()]);
    assert.equal(download.suggestedFilename(), pdfName);
    const saved = await readFile(await download.path());
    assert.equal(saved.subarray(0, 4).toString('latin1'), '%PDF', 'the downloaded file is no PDF');
    const direct = await page.request.get(pdfUrl);
    assert.equal(direct.status(), 200);
    const headers = direct.headers();
    assert.match(headers['content-disposition'] ?? '', /^attachment;/, `Content-Disposition: ${headers['content-disposition']}`);
    assert.ok((headers['content-disposition'] ?? '').includes(pdfName), 'Content-Disposition lacks the file name');
    assert.match(headers['content-type'] ?? '', /^application\/pdf/);
    assert.equal((await direct.body()).subarray(0, 4).toString('latin1'), '%PDF');

    // An empty reply: error beside the field.
    await gotoOk(page, messageUrl);
    let form = formFor(page, `/postfach/${messageId}/antwort`);
    let r = await navigateBy(page, () => submitOf(form).click(), { what: 'empty reply' });
    assert.equal(r?.status(), 422, `an empty reply answered HTTP ${r?.status()}`);
    assert.ok(await page.locator('.error-summary a[href="#antwort"]').isVisible(), 'no error summary for an empty reply');
    await assertNoAxeViolations(page, 'Postfach message with a reply error');

    // A reply with text and a small file.
    const stamp = `E2E-Antwort ${Date.now()}`;
    form = formFor(page, `/postfach/${messageId}/antwort`);
    await form.locator('#antwort').fill(`Bitte buchen Sie die Hundesteuer per Lastschrift ab. (${stamp})`);
    await form.locator('#anhang').setInputFiles({
      name: 'Lastschriftmandat.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from(`SEPA-Lastschriftmandat (Test ${stamp})\n`),
    });
    r = await navigateBy(page, () => submitOf(form).click(), { what: 'reply' });
    assert.equal(r?.status(), 200, `the reply answered HTTP ${r?.status()}`);
    assert.equal(new URL(page.url()).pathname, `/postfach/${messageId}`);
    assert.equal(norm(await page.locator('#antworten').innerText()), 'Ihre Antworten');
    const mine = page.locator('main section.panel').filter({ hasText: stamp });
    assert.equal(await mine.count(), 1, `the reply "${stamp}" is not under "Ihre Antworten"`);
    assert.match(norm(await mine.innerText()), /1 Anh/, 'the reply does not show its attachment');
    await assertNoAxeViolations(page, 'Postfach message with a reply');

    // The sending authority sees the reply through the API.
    const status = await apiStatus(await apiToken(), messageId);
    const reply = status.replies.find((x) => x.body.includes(stamp));
    assert.ok(reply, `the reply is not in the API status: ${JSON.stringify(status.replies)}`);
    assert.equal(reply.attachmentCount, 1);
    assert.ok(status.firstOpenedAt, 'firstOpenedAt is not set for an opened message');
  });
});

test('Postfach: the level-3 message is refused (403, "stärkere Anmeldung") and not readable', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    await citizenLogin(page);
    await gotoOk(page, at('/postfach'));
    const locked = messageLink(page, /Vertrauensniveau 3/);
    assert.equal(await locked.count(), 1, 'no locked level-3 message in the list');
    const href = new URL(await locked.getAttribute('href'), page.url()).toString();
    const res = await page.goto(href);
    assert.equal(res.status(), 403, `the level-3 message answered HTTP ${res.status()}`);
    assert.equal(await h1(page), 'Diese Nachricht braucht eine stärkere Anmeldung');
    const text = norm(await page.locator('main').innerText());
    assert.match(text, /Vertrauensniveau 3/);
    assert.ok(!/Meldedaten|Melderegister/.test(text), 'the locked page shows the message');
    assert.equal(await page.locator('form[action*="/antwort"]').count(), 0, 'the locked page has a reply form');
    await assertNoAxeViolations(page, 'locked Postfach message');
    // Its (non-existent) attachments are refused as well, never 5xx.
    const att = await page.request.get(`${href.split('?')[0]}/anhang/0`, { failOnStatusCode: false });
    assert.ok([403, 404].includes(att.status()), `attachment of the locked message answered HTTP ${att.status()}`);
  });
});

test('Postfach API: token, multipart delivery, firstOpenedAt and hash-chained log before/after opening', async (t) => {
  const api = demoData().postfach_api;
  const token = await apiToken();

  // Without a token: 401.
  const anon = await fetch(api.messages_url, { method: 'POST', body: new FormData() });
  assert.equal(anon.status, 401, `delivery without a token answered HTTP ${anon.status}`);

  const subject = `E2E-Bescheid ${Date.now()}-${randomBytes(2).toString('hex')}`;
  const pdf = tinyPdf('E2E test PDF');
  const fd = new FormData();
  fd.append(
    'message',
    JSON.stringify({
      recipient: api.citizen_postfach_ref,
      subject,
      body: 'Sehr geehrte Frau Schmidt,\n\nanbei ein Bescheid aus dem Browsertest.',
      replyAllowed: true,
    }),
  );
  fd.append('attachment', new Blob([pdf], { type: 'application/pdf' }), 'E2E-Bescheid.pdf');
  const res = await fetch(api.messages_url, { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: fd });
  const placed = await res.json();
  assert.equal(res.status, 201, `delivery answered HTTP ${res.status}: ${JSON.stringify(placed)}`);
  assert.ok(placed.id, 'no message id');
  assert.equal(placed.recipient, api.citizen_postfach_ref);
  assert.equal(placed.attachments?.length, 1);
  assert.equal(placed.attachments[0].size, pdf.length);
  assert.ok((res.headers.get('location') ?? '').endsWith(`/api/postfach/v1/messages/${placed.id}`), 'no Location header');

  const before = await apiStatus(token, placed.id);
  assert.equal(before.firstOpenedAt, null, 'firstOpenedAt is set before the citizen opened the message');
  assert.equal(before.attachmentCount, 1);
  checkLog(before.log, placed.id, subject);
  assert.ok(before.log.some((e) => e.event === 'placed'), `no "placed" entry: ${JSON.stringify(before.log)}`);
  assert.ok(!before.log.some((e) => e.event === 'opened'), 'an "opened" entry before opening');

  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    await citizenLogin(page);
    await gotoOk(page, at('/postfach'));
    const link = messageLink(page, subject);
    assert.equal(await link.count(), 1, `the delivered message "${subject}" is not in the citizen's list`);
    assert.match(
      norm(await link.innerText()),
      /^Ungelesen:/,
      'a new message is not marked unread for screen readers',
    );
    await openMessage(page, subject, 'open the delivered message');
    assert.equal(new URL(page.url()).pathname, `/postfach/${placed.id}`);
    assert.equal(await h1(page), subject);
    assert.equal(await page.locator('ul.attachments a').filter({ hasText: 'E2E-Bescheid.pdf' }).count(), 1);
    const opened = await fact(page, 'Zuerst geöffnet am');
    assert.match(opened ?? '', GERMAN_TIME, `"Zuerst geöffnet am" is ${JSON.stringify(opened)}`);

    const afterOpen = await apiStatus(token, placed.id);
    assert.ok(afterOpen.firstOpenedAt, 'firstOpenedAt is still null after the citizen opened the message');
    // Opened before the third day: deemed delivered on the day of opening (German time).
    assert.equal(afterOpen.deemedDeliveryDate, germanDate(afterOpen.firstOpenedAt));
    assert.equal(await fact(page, 'Gilt als zugestellt am'), toGerman(afterOpen.deemedDeliveryDate));
    checkLog(afterOpen.log, placed.id, subject);
    assert.equal(afterOpen.log.filter((e) => e.event === 'opened').length, 1, `expected one "opened" entry: ${JSON.stringify(afterOpen.log)}`);
    assert.ok(afterOpen.log.length > before.log.length, 'the log did not grow');
    assert.deepEqual(stable(afterOpen.log).slice(0, before.log.length), stable(before.log), 'earlier log entries changed');

    // Opening again changes nothing.
    await page.reload();
    const again = await apiStatus(token, placed.id);
    assert.equal(again.firstOpenedAt, afterOpen.firstOpenedAt);
    assert.equal(again.log.filter((e) => e.event === 'opened').length, 1);
  });
});

// ---------------------------------------------------------------------------------------
// 3. Accessibility: axe, keyboard, phone
// ---------------------------------------------------------------------------------------

const PUBLIC_PAGES = [
  { path: '/konto/registrieren', langs: ['de'] },
  { path: '/konto/anmelden', langs: ['de', 'en', 'ls'] },
  { path: '/konto/passwort-vergessen', langs: ['de'] },
];

for (const { path, langs } of PUBLIC_PAGES) {
  for (const lang of langs) {
    test(`axe ${path} lang=${lang}`, async (t) => {
      await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
        const url = at(path, lang);
        await gotoOk(page, url);
        await assertLanguage(page, lang);
        await assertNoAxeViolations(page, url);
      });
    });
  }
}

test('axe on the demo citizen\'s pages: /postfach (de, en, ls), a message with the reply form, /konto, /konto/zwei-faktor', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    await citizenLogin(page);
    for (const lang of ['de', 'en', 'ls']) {
      const url = at('/postfach', lang);
      await gotoOk(page, url);
      await assertLanguage(page, lang);
      await assertNoAxeViolations(page, url);
    }
    await gotoOk(page, at('/postfach'));
    const href = new URL(await messageLink(page, HUNDESTEUER).getAttribute('href'), page.url()).pathname;
    for (const lang of ['de', 'en']) {
      const url = at(href, lang);
      await gotoOk(page, url);
      await assertLanguage(page, lang);
      assert.equal(await page.locator('form[action*="/antwort"] textarea#antwort').count(), 1, `${url}: no reply form`);
      await assertNoAxeViolations(page, url);
    }
    for (const path of ['/konto', '/konto/zwei-faktor']) {
      await gotoOk(page, at(path));
      await assertLanguage(page, 'de');
      await assertNoAxeViolations(page, path);
    }
  });
});

test('keyboard: on /konto/anmelden the skip link, then e-mail, password and the submit button, in order', async (t) => {
  await withPage(browser, t, VIEWPORTS.desktop, async (page) => {
    await gotoOk(page, at('/konto/anmelden'));
    await page.keyboard.press('Tab');
    const skip = await focused(page);
    assert.equal(skip.tag, 'a', `first Tab stop is <${skip.tag}>, not the skip link`);
    assert.match(skip.href ?? '', /#main$/);
    await page.keyboard.press('Enter');

    const email = await tabUntil(page, (f) => f.name === 'email', { what: 'the e-mail field' });
    assert.equal(email.id, 'email');
    assert.equal(email.label, 'E-Mail-Adresse');
    await page.keyboard.press('Tab');
    const password = await focused(page);
    assert.equal(password.name, 'password', `after the e-mail field focus went to ${JSON.stringify(password)}`);
    assert.equal(password.type, 'password');
    await page.keyboard.press('Tab');
    const submit = await focused(page);
    assert.ok(submit.isSubmit && submit.inForm, `after the password field focus went to ${JSON.stringify(submit)}`);
    assert.equal(submit.label, 'Anmelden');

    // Log in by keyboard alone.
    const { username, password: pw } = demoData().citizen;
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.type(username);
    await page.keyboard.press('Tab');
    await page.keyboard.type(pw);
    await page.keyboard.press('Tab');
    await navigateBy(page, () => page.keyboard.press('Enter'), { what: 'keyboard login' });
    assert.equal(new URL(page.url()).pathname, '/konto', `keyboard login ended on ${page.url()}`);
  });
});

test('phone 375×667: /postfach and a message page have no horizontal scrolling', async (t) => {
  await withPage(browser, t, PHONE_375, async (page) => {
    await citizenLogin(page);
    await gotoOk(page, at('/postfach'));
    await assertNoHorizontalScroll(page, '/postfach');
    await assertNoAxeViolations(page, '/postfach [phone]');
    const href = await messageLink(page, HUNDESTEUER).getAttribute('href');
    await gotoOk(page, new URL(href, page.url()).toString());
    await assertNoHorizontalScroll(page, href);
  });
});

// ---------------------------------------------------------------------------------------
// 4. Without JavaScript
// ---------------------------------------------------------------------------------------

test('without JavaScript: login and opening a Postfach message', async (t) => {
  await withPage(browser, t, NO_JS, async (page) => {
    await citizenLogin(page);
    assert.equal(await h1(page), 'Ihr Servicekonto');
    await gotoOk(page, at('/postfach'));
    const res = await openMessage(page, HUNDESTEUER, 'open a message (no JS)');
    assert.equal(res?.status(), 200);
    assert.match(await h1(page), HUNDESTEUER);
    assert.match((await fact(page, 'Zuerst geöffnet am')) ?? '', GERMAN_TIME);
    assert.match((await fact(page, 'Gilt als zugestellt am')) ?? '', GERMAN_DATE);
    assert.ok(await page.locator('textarea#antwort').isVisible(), 'no reply form without JavaScript');
  });
});
