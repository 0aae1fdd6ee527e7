-- Servicekonto, part two: the Postfach (with its tamper-evident delivery log), OAuth2
-- clients for authorities, organisations, the profile with consents, and passkeys.
-- Same conventions as 0002: fixed-width RFC 3339 times, secrets only hashed or wrapped.

-- The mail that notifies of a Postfach message points back to it, so that "notified" is
-- recorded when the mail has actually left.
ALTER TABLE mail_outbox ADD COLUMN ref_id TEXT;

CREATE TABLE oauth_clients (
    client_id     TEXT PRIMARY KEY,
    secret_hash   TEXT NOT NULL,
    name          TEXT NOT NULL,
    authority_ars TEXT,
    scopes        TEXT NOT NULL,
    active        BIGINT NOT NULL DEFAULT 1,
    created_at    TEXT NOT NULL
);

CREATE TABLE oauth_access_tokens (
    token_hash TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX oauth_access_tokens_expiry ON oauth_access_tokens (expires_at);

CREATE TABLE organisations (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    postfach_ref TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL
);

CREATE TABLE organisation_members (
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role            TEXT NOT NULL,
    postfach_access BIGINT NOT NULL DEFAULT 0,
    joined_at       TEXT NOT NULL,
    PRIMARY KEY (organisation_id, account_id)
);
CREATE INDEX organisation_members_account ON organisation_members (account_id);

CREATE TABLE organisation_invitations (
    token_hash      TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    email           TEXT NOT NULL,
    role            TEXT NOT NULL,
    postfach_access BIGINT NOT NULL DEFAULT 0,
    invited_by      TEXT,
    expires_at      TEXT NOT NULL,
    accepted_at     TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX organisation_invitations_org ON organisation_invitations (organisation_id);

-- The profile is personal data: stored as one JSON document wrapped under the KEK.
CREATE TABLE profiles (
    account_id TEXT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    wrapped    BYTEA NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE consents (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    client_name TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    PRIMARY KEY (account_id, client_id)
);

CREATE TABLE passkeys (
    credential_id TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    passkey_json  TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT
);
CREATE INDEX passkeys_account ON passkeys (account_id);

CREATE TABLE postfach_messages (
    id              TEXT PRIMARY KEY,
    postfach_ref    TEXT NOT NULL,
    direction       TEXT NOT NULL,
    in_reply_to     TEXT REFERENCES postfach_messages (id) ON DELETE CASCADE,
    sender_client_id TEXT,
    sender_name     TEXT NOT NULL,
    sender_ars      TEXT,
    author_account_id TEXT,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    min_trust_level BIGINT NOT NULL DEFAULT 1,
    reply_allowed   BIGINT NOT NULL DEFAULT 0,
    placed_at       TEXT NOT NULL,
    notified_at     TEXT,
    first_opened_at TEXT
);
CREATE INDEX postfach_messages_ref ON postfach_messages (postfach_ref, placed_at);
CREATE INDEX postfach_messages_reply ON postfach_messages (in_reply_to);

CREATE TABLE postfach_attachments (
    id         TEXT PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES postfach_messages (id) ON DELETE CASCADE,
    position   BIGINT NOT NULL,
    filename   TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size       BIGINT NOT NULL,
    sha256     TEXT NOT NULL,
    blob_key   TEXT NOT NULL
);
CREATE INDEX postfach_attachments_message ON postfach_attachments (message_id, position);

-- Append-only and hash-chained: each entry's hash covers the previous entry's hash, so a
-- changed or removed entry breaks every hash after it. Deleting an account does not
-- delete these entries (they name message ids, not people).
CREATE TABLE postfach_log (
    seq        BIGINT PRIMARY KEY,
    message_id TEXT NOT NULL,
    event      TEXT NOT NULL,
    at         TEXT NOT NULL,
    detail     TEXT,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX postfach_log_message ON postfach_log (message_id, seq);
