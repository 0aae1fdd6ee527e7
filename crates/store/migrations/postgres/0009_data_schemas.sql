-- The data schemas the platform knows (JSON Schema for Fachdaten, keyed by the URI that
-- FIT-Connect metadata names in contentStructure.data.submissionSchema.schemaUri). The
-- ePoststelle validates data against a known schema; receipts cite the URI and the body's
-- SHA-512, so a registered URI never changes its body (a new version gets a new URI).
CREATE TABLE data_schemas (
    uri           TEXT PRIMARY KEY,
    mime_type     TEXT NOT NULL,
    body          TEXT NOT NULL,
    sha512        TEXT NOT NULL,
    registered_at TEXT NOT NULL
);
