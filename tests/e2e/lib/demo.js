// demo.json of the server under test: what `serve --demo` seeded (demo citizens, the
// Postfach API client, …). tests/e2e/run exports its path as RATHAUS_E2E_DEMO_JSON; when
// testing an already running server (RATHAUS_E2E_BASE_URL), set it yourself, e.g.
// RATHAUS_E2E_DEMO_JSON=rathaus-data/demo.json.

import { readFileSync } from 'node:fs';

let cached;

/** The parsed demo.json. Throws with a hint if its path is unknown. */
export function demoData() {
  if (cached) return cached;
  const file = process.env.RATHAUS_E2E_DEMO_JSON;
  if (!file) {
    throw new Error(
      'RATHAUS_E2E_DEMO_JSON is not set. Run the browser tests through tests/e2e/run, or ' +
        'export the path of the running server\'s <data-dir>/demo.json.',
    );
  }
  cached = JSON.parse(readFileSync(file, 'utf8'));
  return cached;
}
