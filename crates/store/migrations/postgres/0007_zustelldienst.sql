-- The Zustelldienst (FIT-Connect Submission API): destinations with their public keys (and,
-- for destinations the platform holds for an authority's ePoststelle, the private keys
-- wrapped under the KEK), which API clients subscribe to which destination, submissions
-- with their encrypted parts (the service never sees plaintext), the event log of Security
-- Event Tokens (claims written with the change; the PS512 signature may follow later), and
-- the durable outbox of callbacks.

CREATE TABLE zd_destinations (
    id              TEXT PRIMARY KEY,
    held_by_platform BIGINT NOT NULL DEFAULT 0,
    authority_ars   TEXT,
    status          TEXT NOT NULL,
    doc             TEXT NOT NULL,
    callback_secret BYTEA,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX zd_destinations_authority ON zd_destinations (authority_ars);

CREATE TABLE zd_destination_keys (
    destination_id  TEXT NOT NULL REFERENCES zd_destinations (id) ON DELETE CASCADE,
    kid             TEXT NOT NULL,
    key_use         TEXT NOT NULL,
    public_jwk      TEXT NOT NULL,
    wrapped_private BYTEA,
    created_at      TEXT NOT NULL,
    retired_at      TEXT,
    PRIMARY KEY (destination_id, kid)
);

CREATE TABLE zd_destination_clients (
    destination_id TEXT NOT NULL REFERENCES zd_destinations (id) ON DELETE CASCADE,
    client_id      TEXT NOT NULL,
    PRIMARY KEY (destination_id, client_id)
);
CREATE INDEX zd_destination_clients_client ON zd_destination_clients (client_id);

CREATE TABLE zd_submissions (
    id                  TEXT PRIMARY KEY,
    case_id             TEXT NOT NULL,
    destination_id      TEXT NOT NULL REFERENCES zd_destinations (id),
    sender_client_id    TEXT NOT NULL,
    api_version         TEXT NOT NULL,
    service_identifier  TEXT NOT NULL,
    service_name        TEXT NOT NULL,
    region              TEXT,
    status              TEXT NOT NULL,
    announced           TEXT NOT NULL,
    callback_url        TEXT,
    callback_secret     BYTEA,
    encrypted_metadata  TEXT,
    encrypted_data      TEXT,
    tags                TEXT,
    created_at          TEXT NOT NULL,
    submitted_at        TEXT,
    fetched_at          TEXT,
    decided_at          TEXT,
    contact_notified_at TEXT,
    content_deleted_at  TEXT
);
CREATE INDEX zd_submissions_pickup ON zd_submissions (destination_id, status, submitted_at);
CREATE INDEX zd_submissions_case ON zd_submissions (case_id);
CREATE INDEX zd_submissions_status ON zd_submissions (status, submitted_at);

CREATE TABLE zd_attachments (
    submission_id TEXT NOT NULL REFERENCES zd_submissions (id) ON DELETE CASCADE,
    attachment_id TEXT NOT NULL,
    size          BIGINT NOT NULL,
    auth_tag      TEXT NOT NULL,
    body          TEXT,
    blob_key      TEXT,
    uploaded_at   TEXT NOT NULL,
    PRIMARY KEY (submission_id, attachment_id)
);

CREATE TABLE zd_events (
    id            BIGSERIAL PRIMARY KEY,
    case_id       TEXT NOT NULL,
    submission_id TEXT NOT NULL,
    event         TEXT NOT NULL,
    issuer        TEXT NOT NULL,
    jti           TEXT NOT NULL UNIQUE,
    iat           BIGINT NOT NULL,
    claims        TEXT NOT NULL,
    token         TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX zd_events_case ON zd_events (case_id, id);
CREATE INDEX zd_events_submission ON zd_events (submission_id, id);
CREATE INDEX zd_events_unsigned ON zd_events (id) WHERE token IS NULL;

CREATE TABLE zd_callbacks (
    id              BIGSERIAL PRIMARY KEY,
    url             TEXT NOT NULL,
    secret          BYTEA NOT NULL,
    body            TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_until     TEXT,
    delivered_at    TEXT,
    failed_at       TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX zd_callbacks_due ON zd_callbacks (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
