-- Foundation: directory, catalogue, responsibility rules, destinations, legal pages, keys.
-- Times are RFC 3339 UTC text; flags are 0/1 integers; JSON documents are text.
-- The PostgreSQL migration of the same number has the same tables and columns.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE directory_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO directory_state (id, generation) VALUES (1, 0);

CREATE TABLE authorities (
    ars           TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    seat          TEXT,
    parent_ars    TEXT,
    active        INTEGER NOT NULL DEFAULT 1,
    successor_ars TEXT,
    details       TEXT NOT NULL DEFAULT '{}',
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE authority_history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ars        TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    source     TEXT NOT NULL,
    change     TEXT NOT NULL,
    before     TEXT,
    after      TEXT
);
CREATE INDEX authority_history_ars ON authority_history (ars, id);

CREATE TABLE imports (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    source_name TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    summary     TEXT NOT NULL
);

CREATE TABLE services (
    key         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    typisierung TEXT NOT NULL,
    details     TEXT NOT NULL DEFAULT '{}',
    updated_at  TEXT NOT NULL
);

CREATE TABLE rules (
    id           TEXT PRIMARY KEY,
    service_key  TEXT NOT NULL REFERENCES services (key),
    area_ars     TEXT NOT NULL,
    target_ars   TEXT REFERENCES authorities (ars),
    target_level TEXT,
    note         TEXT,
    created_at   TEXT NOT NULL,
    UNIQUE (service_key, area_ars),
    CHECK ((target_ars IS NULL) <> (target_level IS NULL))
);

CREATE TABLE rule_history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id    TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    actor      TEXT NOT NULL,
    change     TEXT NOT NULL,
    rule       TEXT NOT NULL
);

CREATE TABLE destinations (
    id                 TEXT PRIMARY KEY,
    authority_ars      TEXT NOT NULL UNIQUE REFERENCES authorities (ars),
    status             TEXT NOT NULL,
    created_at         TEXT NOT NULL
);

-- One destinationSignature per destination and Leistungsgruppe (the key's digits 3-5), so
-- that a Routing API answer carries a signature of a few kilobytes, not one naming every
-- service of the authority.
CREATE TABLE destination_signatures (
    authority_ars TEXT NOT NULL REFERENCES authorities (ars),
    scope         TEXT NOT NULL,
    signature     TEXT NOT NULL,
    claims_hash   TEXT NOT NULL,
    signed_at     TEXT NOT NULL,
    PRIMARY KEY (authority_ars, scope)
);

CREATE TABLE legal_pages (
    authority_ars TEXT NOT NULL REFERENCES authorities (ars),
    kind          TEXT NOT NULL,
    lang          TEXT NOT NULL,
    content       TEXT NOT NULL,
    demo          INTEGER NOT NULL DEFAULT 0,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (authority_ars, kind, lang)
);

CREATE TABLE accessibility_feedback (
    id            TEXT PRIMARY KEY,
    authority_ars TEXT NOT NULL REFERENCES authorities (ars),
    name          TEXT,
    email         TEXT,
    message       TEXT NOT NULL,
    page          TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX accessibility_feedback_authority ON accessibility_feedback (authority_ars, created_at);

CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    purpose       TEXT NOT NULL,
    wrapped_pkcs8 BLOB NOT NULL,
    cert_der      BLOB NOT NULL,
    active        INTEGER NOT NULL,
    created_at    TEXT NOT NULL
);
