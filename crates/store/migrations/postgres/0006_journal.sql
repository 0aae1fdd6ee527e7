-- The tamper-evident journal (RFC 9162 Merkle tree; crate `journal`). Business transactions
-- put canonical entries into `journal_queue`, in the same transaction as their change; the
-- sequencer moves them in batches into `journal_leaves`, stores every subtree that became
-- complete in `journal_nodes` and a signed tree head for the new size. Entries hold
-- references and digests only, never personal data in clear.
-- Leaves, subjects, nodes and heads are never changed or removed: triggers refuse it.
-- Hashes are 32 raw bytes (BYTEA here, BLOB on SQLite).

-- `subject_key`: the first 8 bytes of SHA-256 of the entry's subject, big-endian signed.
CREATE TABLE journal_queue (
    id          BIGSERIAL PRIMARY KEY,
    subject_key BIGINT NOT NULL,
    entry       TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- `seq` is the leaf index, from 0; `entry` the canonical JSON the leaf hash covers. Level-0
-- nodes are not repeated in `journal_nodes`: the leaf hash here is node (0, seq).
CREATE TABLE journal_leaves (
    seq       BIGINT PRIMARY KEY,
    entry     TEXT NOT NULL,
    leaf_hash BYTEA NOT NULL
);

-- Finds a subject's leaves. Keyed by bucket (seq / 65536) first, so that a batch's inserts
-- land in the current bucket's few pages instead of at random places in one large index
-- (which made appends several times slower at a million entries); a lookup seeks once per
-- bucket (153 seeks at 10 million entries). `subject_key` as in the queue: hash collisions
-- are filtered by reading the entries.
CREATE TABLE journal_subjects (
    bucket      BIGINT NOT NULL,
    subject_key BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (bucket, subject_key, seq)
);

-- Complete subtrees of level >= 1: node (level, idx) covers leaves
-- [idx * 2^level, (idx + 1) * 2^level).
CREATE TABLE journal_nodes (
    level BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE journal_tree_heads (
    tree_size    BIGINT PRIMARY KEY,
    root         BYTEA NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    signature    BYTEA NOT NULL,
    key_id       TEXT NOT NULL
);

CREATE FUNCTION journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the journal is append-only (%)', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER journal_leaves_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON journal_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION journal_append_only();
CREATE TRIGGER journal_nodes_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON journal_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION journal_append_only();
CREATE TRIGGER journal_subjects_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON journal_subjects
    FOR EACH STATEMENT EXECUTE FUNCTION journal_append_only();
CREATE TRIGGER journal_tree_heads_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON journal_tree_heads
    FOR EACH STATEMENT EXECUTE FUNCTION journal_append_only();
