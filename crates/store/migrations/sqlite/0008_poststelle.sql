-- The ePoststelle (an authority's own mail room on a destination the platform holds):
-- the work queue with leases (several nodes, each submission processed once; waiting
-- submissions, e.g. while no virus scanner answers, with their reason), the signed
-- Eingangsbestätigung per decided submission (with the destination's signed decision, so a
-- crash between filing and recording the decision is finished on retry), and the cases
-- filed for the clerks: metadata in clear, data and attachment contents wrapped under the
-- authority's team data key (AES-256-GCM, derived from the KEK), with the check report.

CREATE TABLE ps_work (
    submission_id   TEXT PRIMARY KEY,
    lease_until     TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    pending_reason  TEXT,
    updated_at      TEXT NOT NULL
);

CREATE TABLE ps_receipts (
    submission_id    TEXT PRIMARY KEY,
    case_id          TEXT NOT NULL,
    destination_id   TEXT NOT NULL,
    sender_client_id TEXT NOT NULL,
    decision         TEXT NOT NULL,
    claims           TEXT NOT NULL,
    jws              TEXT NOT NULL,
    -- The destination's accept/reject SET, recorded through the Zustelldienst's decision.
    set_jti          TEXT NOT NULL,
    set_iat          BIGINT NOT NULL,
    set_claims       TEXT NOT NULL,
    set_token        TEXT NOT NULL,
    check_report     TEXT NOT NULL,
    -- Hook for the receipt journal's inclusion proof (JSON), filled once sequenced.
    journal_proof    TEXT,
    created_at       TEXT NOT NULL
);
CREATE INDEX ps_receipts_case ON ps_receipts (case_id);

CREATE TABLE ps_cases (
    submission_id      TEXT PRIMARY KEY REFERENCES ps_receipts (submission_id) ON DELETE CASCADE,
    authority_ars      TEXT,
    destination_id     TEXT NOT NULL,
    case_id            TEXT NOT NULL,
    service_identifier TEXT NOT NULL,
    service_name       TEXT NOT NULL,
    received_at        TEXT NOT NULL,
    decided_at         TEXT NOT NULL,
    metadata           TEXT NOT NULL,
    data_wrapped       BLOB,
    data_sha512        TEXT,
    check_report       TEXT NOT NULL,
    created_at         TEXT NOT NULL
);
CREATE INDEX ps_cases_authority ON ps_cases (authority_ars, received_at);
CREATE INDEX ps_cases_case ON ps_cases (case_id);

CREATE TABLE ps_case_attachments (
    submission_id TEXT NOT NULL REFERENCES ps_cases (submission_id) ON DELETE CASCADE,
    attachment_id TEXT NOT NULL,
    filename      TEXT,
    mime_type     TEXT NOT NULL,
    size          BIGINT NOT NULL,
    sha512        TEXT NOT NULL,
    content_wrapped BLOB NOT NULL,
    PRIMARY KEY (submission_id, attachment_id)
);
