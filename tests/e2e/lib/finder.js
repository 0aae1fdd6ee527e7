// The Zuständigkeitsfinder flow (/zustaendigkeit), driven two ways: mouse-free form
// filling without JavaScript, and keyboard only. Both follow the server's candidate
// choice (radio groups `leistungsschluessel` / `ars`) when the text was ambiguous.

import assert from 'node:assert/strict';
import { pageUrl, gotoOk, navigateBy, tabUntil, focused, norm } from './harness.js';

export const FINDER_PATH = '/zustaendigkeit';

/**
 * Contract cases. `prefer` ranks the candidate labels a person would pick, most specific
 * first; if none matches, the first candidate is taken and the result check decides.
 */
export const FINDER_CASES = {
  nenndorf: {
    leistung: 'Wohnsitz Anmeldung',
    ort: 'Bad Nenndorf',
    expect: /Nenndorf/,
    prefer: {
      leistungsschluessel: [
        /anmeld\w*.*(wohnung|wohnsitz|hauptwohn)|(wohnung|wohnsitz|hauptwohn)\w*.*anmeld/i,
        /anmeld/i,
        /wohnsitz|wohnung/i,
      ],
      ars: [/Bad Nenndorf/i, /Nenndorf/i],
    },
  },
  hannover: {
    leistung: 'Hundesteuer',
    ort: 'Hannover',
    expect: /Hannover/,
    prefer: {
      leistungsschluessel: [/hundesteuer/i, /hund/i],
      // The city levies the dog tax, not the Region Hannover.
      ars: [/Landeshauptstadt Hannover|Hannover,\s*Landeshauptstadt|Stadt Hannover/i, /^(?!.*Region).*Hannover/i, /Hannover/i],
    },
  },
};

const CANDIDATE_GROUPS = ['leistungsschluessel', 'ars'];
const MAX_ROUNDS = 4;

function finderForm(page) {
  return page.locator('form').filter({ has: page.locator('input[name="leistung"]') }).first();
}

function submitButtonOf(form) {
  return form.locator('button:not([type]), button[type="submit"], input[type="submit"]').first();
}

/** The error summary's text, if the page shows one (for clearer failure messages). */
async function errorSummaryText(page) {
  const summary = page.locator('.error-summary');
  return (await summary.count()) > 0 ? norm(await summary.first().innerText()) : null;
}

/** Choose the radio a person would choose in `group`; returns the chosen label. */
async function chooseCandidateByLabel(page, group, prefer) {
  const radios = page.locator(`input[type="radio"][name="${group}"]`);
  for (const re of prefer ?? []) {
    const match = radios.and(page.getByRole('radio', { name: re }));
    if ((await match.count()) > 0) {
      await match.first().check();
      return re.toString();
    }
  }
  await radios.first().check();
  return '(first candidate)';
}

/**
 * Fill and submit the finder like a person with a mouse would, on whatever page is open
 * (works with JavaScript disabled: locators only, no page.evaluate). Returns a log of the
 * steps taken so failures say how far it got.
 */
export async function runFinderByForm(page, { leistung, ort, prefer }, lang = 'de') {
  const steps = [];
  await gotoOk(page, pageUrl(FINDER_PATH, lang));

  const form = finderForm(page);
  assert.equal(await form.count(), 1, 'finder: no form with an input named "leistung" on /zustaendigkeit');
  const method = ((await form.getAttribute('method')) ?? 'get').toLowerCase();
  assert.equal(method, 'get', 'finder: the search form must use GET (bookmarkable, works without JS)');

  await form.locator('input[name="leistung"]').fill(leistung);
  await form.locator('input[name="ort"]').fill(ort);
  await navigateBy(page, () => submitButtonOf(form).click(), { what: 'finder submit' });
  steps.push(`submitted leistung=${leistung} ort=${ort} → ${page.url()}`);

  for (let round = 0; round < MAX_ROUNDS; round++) {
    if (await page.locator('#ergebnis').isVisible().catch(() => false)) return steps;

    const pending = [];
    for (const group of CANDIDATE_GROUPS) {
      const radios = page.locator(`input[type="radio"][name="${group}"]`);
      if ((await radios.count()) > 0) pending.push(group);
    }
    if (pending.length === 0) {
      const errors = await errorSummaryText(page);
      assert.fail(
        `finder: neither #ergebnis nor candidate radios after: ${steps.join('; ')}` +
          (errors ? `\n  error summary: ${errors}` : `\n  page text: ${norm(await page.locator('body').innerText()).slice(0, 600)}`),
      );
    }
    let form2 = null;
    for (const group of pending) {
      const chosen = await chooseCandidateByLabel(page, group, prefer?.[group]);
      steps.push(`chose ${group} ${chosen}`);
      form2 ??= page.locator(`input[type="radio"][name="${group}"]`).first().locator('xpath=ancestor::form[1]');
    }
    assert.equal(await form2.count(), 1, 'finder: candidate radios must be inside a form');
    await navigateBy(page, () => submitButtonOf(form2).click(), { what: 'candidate submit' });
    steps.push(`submitted choice → ${page.url()}`);
  }
  assert.fail(`finder: no #ergebnis after ${MAX_ROUNDS} rounds of candidate choices: ${steps.join('; ')}`);
}

/**
 * The same flow with the keyboard only: Tab to each field, type, Enter. Candidate radios
 * are chosen with the arrow keys and Space, the choice is sent with Enter on its submit
 * button. Needs JavaScript enabled in the *test* (to read the focused element); the page
 * itself must not depend on it.
 */
export async function runFinderByKeyboard(page, { leistung, ort, prefer }, lang = 'de') {
  const steps = [];
  // A fresh load: nothing focused, so the first Tab starts at the top of the document.
  await gotoOk(page, pageUrl(FINDER_PATH, lang));

  await tabUntil(page, (f) => f.name === 'leistung', { what: 'input "leistung"' });
  await page.keyboard.type(leistung);
  await tabUntil(page, (f) => f.name === 'ort', { max: 10, what: 'input "ort" (after "leistung")' });
  await page.keyboard.type(ort);
  await navigateBy(page, () => page.keyboard.press('Enter'), { what: 'Enter in "ort"' });
  steps.push(`typed and pressed Enter → ${page.url()}`);

  for (let round = 0; round < MAX_ROUNDS; round++) {
    if (await page.locator('#ergebnis').isVisible().catch(() => false)) return steps;

    const groups = [];
    for (const group of CANDIDATE_GROUPS) {
      if ((await page.locator(`input[type="radio"][name="${group}"]`).count()) > 0) groups.push(group);
    }
    if (groups.length === 0) {
      const errors = await errorSummaryText(page);
      assert.fail(`keyboard finder: neither #ergebnis nor candidates after: ${steps.join('; ')}${errors ? `\n  error summary: ${errors}` : ''}`);
    }

    // Walk the page from the top with Tab. In each radio group pick the preferred label
    // with the arrow keys (which move focus and select), confirm with Space, and finally
    // press Enter on the submit button of the form holding the radios. The page was just
    // loaded, so the first Tab starts at the top.
    for (const group of groups) {
      await tabUntil(page, (f) => f.type === 'radio' && f.name === group, { what: `radio group "${group}"` });
      const count = await page.locator(`input[type="radio"][name="${group}"]`).count();
      let picked = null;
      for (const re of prefer?.[group] ?? []) {
        for (let i = 0; i < count; i++) {
          const f = await focused(page);
          if (re.test(f.label)) {
            picked = f.label;
            break;
          }
          await page.keyboard.press('ArrowDown');
        }
        if (picked) break;
      }
      await page.keyboard.press('Space');
      const f = await focused(page);
      assert.equal(f.checked, true, `keyboard: Space did not select the focused radio in "${group}"`);
      steps.push(`chose ${group} "${norm(picked ?? f.label)}"`);
    }
    await tabUntil(page, (f) => f.isSubmit, { what: 'submit button of the candidate form' });
    await navigateBy(page, () => page.keyboard.press('Enter'), { what: 'Enter on candidate submit' });
    steps.push(`Enter on submit → ${page.url()}`);
  }
  assert.fail(`keyboard finder: no #ergebnis after ${MAX_ROUNDS} rounds: ${steps.join('; ')}`);
}

/** The result names the authority and gives address, contacts and opening hours. */
export async function assertFinderResult(page, expect, { lang = 'de', steps = [] } = {}) {
  const ergebnis = page.locator('#ergebnis');
  assert.ok(await ergebnis.isVisible(), `finder: #ergebnis not visible (${steps.join('; ')})`);
  const text = norm(await ergebnis.innerText());
  assert.match(text, expect, `finder: #ergebnis does not name ${expect}: "${text.slice(0, 400)}"`);
  // Address: a German postcode (5 digits).
  assert.match(text, /\b\d{5}\b/, `finder: #ergebnis shows no postal address (no PLZ): "${text.slice(0, 400)}"`);
  // Contacts: a phone or e-mail link, or at least labelled contact text.
  const contactLinks = await ergebnis.locator('a[href^="tel:"], a[href^="mailto:"]').count();
  assert.ok(
    contactLinks > 0 || /telefon|phone|e-?mail/i.test(text),
    `finder: #ergebnis shows no contact (tel:/mailto: link or Telefon/E-Mail): "${text.slice(0, 400)}"`,
  );
  const hours = lang === 'en' ? /opening hours|office hours|hours/i : /öffnungszeiten|sprechzeiten/i;
  assert.match(text, hours, `finder: #ergebnis shows no opening hours: "${text.slice(0, 400)}"`);
}

export { finderForm, submitButtonOf };
