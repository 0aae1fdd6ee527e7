-- OpenID Connect provider: client registrations, signing keys (wrapped under the KEK),
-- authorization codes, refresh tokens (rotated; a reused one revokes its family), revoked
-- access tokens, which services a session signed in to (for logout), and the outbox of
-- back-channel logout notifications.
-- Access tokens are self-contained (sealed under a key derived from the KEK), so issuing
-- one writes nothing; only revocations are stored.

ALTER TABLE oauth_clients ADD COLUMN config TEXT NOT NULL DEFAULT '{}';
DROP TABLE oauth_access_tokens;

CREATE TABLE oidc_keys (
    kid        TEXT PRIMARY KEY,
    alg        TEXT NOT NULL,
    wrapped    BYTEA NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at TEXT NOT NULL,
    retired_at TEXT,
    expires_at TEXT
);

CREATE TABLE oidc_codes (
    code_hash   TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    grant_data  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    issued_family TEXT,
    issued_jti  TEXT,
    issued_exp  TEXT
);
CREATE INDEX oidc_codes_expiry ON oidc_codes (expires_at);

CREATE TABLE oidc_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    session_id TEXT,
    grant_data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    revoked_at TEXT
);
CREATE INDEX oidc_refresh_family ON oidc_refresh_tokens (family_id);
CREATE INDEX oidc_refresh_account ON oidc_refresh_tokens (account_id, client_id);
CREATE INDEX oidc_refresh_session ON oidc_refresh_tokens (session_id);
CREATE INDEX oidc_refresh_expiry ON oidc_refresh_tokens (expires_at);

CREATE TABLE oauth_revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);

CREATE TABLE oauth_assertions (
    jti        TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);

CREATE TABLE oidc_session_clients (
    session_id TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    sub        TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (session_id, client_id)
);

CREATE TABLE oidc_logout_outbox (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    uri             TEXT NOT NULL,
    logout_token    TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    done_at         TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX oidc_logout_due ON oidc_logout_outbox (done_at, next_attempt_at);
