// In-memory storage for oidc-provider in bench/oidc.sh: one Map, entries expire lazily on
// read (and in a sweep every 10 s), with O(1) secondary indexes (session uid, user code,
// grant members).
//
// Why not oidc-provider's bundled MemoryAdapter: it is meant for development; it keeps a
// 1000-entry LRU and, on every token write, rescans the whole member list of the token's
// grant (`setGrantMembers`: a loop over all members plus Math.max(...members)). A benchmark
// runs thousands of code flows for one user and one grant, so that list grows with every
// code, access and refresh token and each write gets slower: the throughput would fall during
// the run for a reason no deployment has (they use a database adapter). This adapter keeps
// the same semantics (find, upsert with expiry, consume, destroy, findByUid, findByUserCode,
// revokeByGrantId) without the rescans, so oidc-provider is measured at its best.

const store = new Map(); // "Model:id" -> { payload, expiresAt (ms, Infinity = never) }
const sessionUids = new Map(); // session uid -> session id
const userCodes = new Map(); // user code -> id
const grants = new Map(); // grant id -> Set of "Model:id"

const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

function live(key) {
  const entry = store.get(key);
  if (entry === undefined) return undefined;
  if (entry.expiresAt <= Date.now()) {
    drop(key, entry);
    return undefined;
  }
  return entry;
}

function drop(key, entry) {
  store.delete(key);
  const p = entry.payload;
  if (p.uid && sessionUids.get(p.uid) === key) sessionUids.delete(p.uid);
  if (p.userCode && userCodes.get(p.userCode) === key) userCodes.delete(p.userCode);
  if (p.grantId) {
    const members = grants.get(p.grantId);
    if (members) {
      members.delete(key);
      if (members.size === 0) grants.delete(p.grantId);
    }
  }
}

setInterval(() => {
  const now = Date.now();
  for (const [key, entry] of store) {
    if (entry.expiresAt <= now) drop(key, entry);
  }
}, 10_000).unref();

export default class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const previous = store.get(key);
    if (previous) drop(key, previous);
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(key, { payload, expiresAt });
    if (this.model === 'Session' && payload.uid) sessionUids.set(payload.uid, key);
    if (payload.userCode) userCodes.set(payload.userCode, key);
    if (GRANTABLE.has(this.model) && payload.grantId) {
      let members = grants.get(payload.grantId);
      if (!members) grants.set(payload.grantId, (members = new Set()));
      members.add(key);
    }
  }

  async find(id) {
    return live(this.key(id))?.payload;
  }

  async findByUid(uid) {
    const key = sessionUids.get(uid);
    return key === undefined ? undefined : live(key)?.payload;
  }

  async findByUserCode(userCode) {
    const key = userCodes.get(userCode);
    return key === undefined ? undefined : live(key)?.payload;
  }

  async consume(id) {
    const entry = live(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    const key = this.key(id);
    const entry = store.get(key);
    if (entry) drop(key, entry);
  }

  async revokeByGrantId(grantId) {
    const members = grants.get(grantId);
    if (!members) return;
    grants.delete(grantId);
    for (const key of members) {
      const entry = store.get(key);
      if (entry) drop(key, entry);
    }
  }
}

export function storedEntries() {
  return store.size;
}
