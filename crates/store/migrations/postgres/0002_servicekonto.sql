-- Servicekonto: accounts, e-mail tokens, sessions, second factors, security events, login
-- throttling, and the outbox of e-mails to send.
-- Times in these tables are fixed-width RFC 3339 UTC text (microseconds), so text order is
-- time order and SQL can compare them. Secrets are stored only as hashes or wrapped under
-- the key-encryption key.

CREATE TABLE accounts (
    id                TEXT PRIMARY KEY,
    email             TEXT NOT NULL UNIQUE,
    email_verified_at TEXT,
    password_hash     TEXT,
    lang              TEXT NOT NULL,
    postfach_ref      TEXT NOT NULL UNIQUE,
    totp_secret       BYTEA,
    totp_last_step    BIGINT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE account_tokens (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    new_email  TEXT,
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX account_tokens_account ON account_tokens (account_id, purpose);

CREATE TABLE sessions (
    token_hash       TEXT PRIMARY KEY,
    public_id        TEXT NOT NULL UNIQUE,
    account_id       TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    stage            TEXT NOT NULL,
    trust_level      BIGINT NOT NULL,
    auth_methods     TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    authenticated_at TEXT NOT NULL,
    last_seen_at     TEXT NOT NULL,
    idle_expires_at  TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    ip               TEXT,
    user_agent       TEXT,
    revoked_at       TEXT
);
CREATE INDEX sessions_account ON sessions (account_id);

CREATE TABLE recovery_codes (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    used_at    TEXT,
    PRIMARY KEY (account_id, code_hash)
);

CREATE TABLE security_events (
    id         TEXT PRIMARY KEY,
    account_id TEXT REFERENCES accounts (id) ON DELETE CASCADE,
    at         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    ip         TEXT,
    user_agent TEXT,
    detail     TEXT
);
CREATE INDEX security_events_account ON security_events (account_id, at);

CREATE TABLE login_throttle (
    key             TEXT PRIMARY KEY,
    failures        BIGINT NOT NULL,
    last_failure_at TEXT NOT NULL,
    blocked_until   TEXT NOT NULL
);

CREATE TABLE mail_outbox (
    id              TEXT PRIMARY KEY,
    created_at      TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    locked_until    TEXT,
    last_error      TEXT,
    sent_at         TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);
CREATE INDEX mail_outbox_recipient ON mail_outbox (recipient, created_at);
