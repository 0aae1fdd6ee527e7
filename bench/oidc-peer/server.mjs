// The peer of bench/oidc.sh: node's oidc-provider (OpenID certified), configured like
// Rathaus's OpenID provider so that both do the same work per request.
//
//   NODE_ENV=production node server.mjs --port PORT --out FILE [--storage map|bundled]
//
// Listens on 127.0.0.1:PORT (issuer http://127.0.0.1:PORT) and writes FILE (JSON, like
// Rathaus's demo.json) with the issuer, the endpoint paths and the two clients:
//   web_client: client_secret_basic, code flow, PKCE S256 required, refresh tokens issued in
//               the code flow (as Rathaus does for web clients), ID tokens ES256
//   api_client: client_credentials with scope postfach:deliver
// Storage is in memory (one process, one core: node runs JavaScript on one thread); see
// memory-adapter.mjs for why not the bundled development adapter (--storage bundled uses it).
//
// Interactions (login, consent) are the two POST routes below, for bench/oidc-peer/login.mjs
// only: POST /interaction/UID/login signs the bench user in (no password: this benchmark
// measures the flows of a user who is already signed in, not the login), POST
// /interaction/UID/consent grants what the client asked for (remembered in the grant, so the
// next authorization answers 303 with a code at once).

import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

import MapAdapter from './memory-adapter.mjs';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string' },
    out: { type: 'string' },
    storage: { type: 'string', default: 'map' },
  },
});
if (!opts.port || !opts.out) {
  console.error('usage: node server.mjs --port PORT --out FILE [--storage map|bundled]');
  process.exit(2);
}
if (!['map', 'bundled'].includes(opts.storage)) {
  console.error('--storage must be map or bundled');
  process.exit(2);
}

const providerVersion = JSON.parse(
  readFileSync(new URL('./node_modules/oidc-provider/package.json', import.meta.url), 'utf8'),
).version;
const port = Number(opts.port);
const issuer = `http://127.0.0.1:${port}`;
const secret = () => randomBytes(32).toString('base64url'); // 43 characters, as Rathaus's

// Signing keys as Rathaus has them: ES256 (P-256, the default) and RS256 (2048 bits).
function jwk(type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  const key = privateKey.export({ format: 'jwk' });
  return { ...key, alg, use: 'sig', kid: `${alg.toLowerCase()}-${randomBytes(6).toString('hex')}` };
}
const es256 = jwk('ec', { namedCurve: 'P-256' }, 'ES256');
const rs256 = jwk('rsa', { modulusLength: 2048 }, 'RS256');

const webClient = {
  client_id: 'bench-web',
  client_secret: secret(),
  redirect_uris: ['http://127.0.0.1:8765/callback'],
  post_logout_redirect_uris: ['http://127.0.0.1:8765/logged-out'],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  id_token_signed_response_alg: 'ES256',
};
const apiClient = {
  client_id: 'bench-api',
  client_secret: secret(),
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  scope: 'postfach:deliver',
  token_endpoint_auth_method: 'client_secret_basic',
};

const ACCOUNT_ID = 'bench-citizen';
const ACR = 'STORK-QAA-Level-1';

const configuration = {
  clients: [webClient, apiClient],
  jwks: { keys: [es256, rs256] },
  cookies: { keys: [secret()] },
  ...(opts.storage === 'map' ? { adapter: MapAdapter } : {}),
  scopes: ['openid', 'offline_access', 'profile', 'email', 'address', 'phone', 'postfach:deliver'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name', 'birthdate', 'locale', 'updated_at'],
    email: ['email', 'email_verified'],
    address: ['address'],
    phone: ['phone_number', 'phone_number_verified'],
  },
  acrValues: ['STORK-QAA-Level-1', 'STORK-QAA-Level-2', 'STORK-QAA-Level-3', 'STORK-QAA-Level-4'],
  enabledJWA: {
    idTokenSigningAlgValues: ['ES256', 'RS256'],
    userinfoSigningAlgValues: ['ES256', 'RS256'],
  },
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    userinfo: { enabled: true },
  },
  // PKCE required for every client (S256 only: oidc-provider 9 has no "plain")
  pkce: { required: () => true },
  // Rathaus issues a refresh token to web clients in the code flow (with or without
  // offline_access) and rotates it on each use
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  ttl: {
    AccessToken: 600, // ten minutes, as Rathaus's access tokens
    ClientCredentials: 600,
    AuthorizationCode: 60,
    IdToken: 600,
    Interaction: 600,
    Session: 8 * 3600,
    Grant: 8 * 3600,
    RefreshToken: 30 * 24 * 3600,
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(_ctx, sub) {
    if (sub !== ACCOUNT_ID) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          name: 'Anna Schmidt',
          given_name: 'Anna',
          family_name: 'Schmidt',
          email: 'anna.schmidt@demo.rathaus.invalid',
          email_verified: true,
          locale: 'de-DE',
        };
      },
    };
  },
  renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
};

const provider = new Provider(issuer, configuration);
provider.on('server_error', (_ctx, err) => console.error('server_error', err));

async function interaction(req, res) {
  const m = /^\/interaction\/([^/?]+)\/(login|consent)$/.exec(req.url.split('?')[0]);
  if (req.method !== 'POST' || !m) {
    res.statusCode = 404;
    res.end();
    return;
  }
  for await (const _ of req); // no body expected: drain whatever came
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== m[1]) throw new Error('interaction uid mismatch');
  if (m[2] === 'login') {
    if (details.prompt.name !== 'login') throw new Error(`prompt is ${details.prompt.name}, not login`);
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: ACCOUNT_ID, acr: ACR, amr: ['pwd'] } },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  if (details.prompt.name !== 'consent') throw new Error(`prompt is ${details.prompt.name}, not consent`);
  const { params, session, prompt } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

const handler = provider.callback();
const server = createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => {
      console.error('interaction failed:', err);
      if (!res.headersSent) {
        res.statusCode = 500;
        res.setHeader('Content-Type', 'text/plain');
      }
      res.end(String(err?.message ?? err));
    });
    return;
  }
  handler(req, res);
});
// node's default keep-alive timeout is 5 s; wrk keeps its connections for the whole run
server.keepAliveTimeout = 65_000;

server.listen(port, '127.0.0.1', () => {
  const doc = {
    issuer,
    server: `oidc-provider ${providerVersion}`,
    node: process.version,
    storage: opts.storage === 'map' ? 'in memory (Map adapter, memory-adapter.mjs)' : 'in memory (bundled MemoryAdapter)',
    authorization_path: '/auth',
    token_path: '/token',
    userinfo_path: '/me',
    web_client: {
      client_id: webClient.client_id,
      client_secret: webClient.client_secret,
      redirect_uri: webClient.redirect_uris[0],
    },
    api_client: {
      client_id: apiClient.client_id,
      client_secret: apiClient.client_secret,
      scope: apiClient.scope,
    },
  };
  writeFileSync(opts.out, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 });
  console.log(`oidc-provider listens on ${issuer} (pid ${process.pid}); clients in ${opts.out}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections?.();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
