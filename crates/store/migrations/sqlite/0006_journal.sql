-- The tamper-evident journal (RFC 9162 Merkle tree; crate `journal`). Business transactions
-- put canonical entries into `journal_queue`, in the same transaction as their change; the
-- sequencer moves them in batches into `journal_leaves`, stores every subtree that became
-- complete in `journal_nodes` and a signed tree head for the new size. Entries hold
-- references and digests only, never personal data in clear.
-- Leaves, subjects, nodes and heads are never changed or removed: triggers refuse it.
-- Hashes are 32 raw bytes (BLOB here, BYTEA on PostgreSQL).

-- `subject_key`: the first 8 bytes of SHA-256 of the entry's subject, big-endian signed.
CREATE TABLE journal_queue (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_key INTEGER NOT NULL,
    entry       TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- `seq` is the leaf index, from 0; `entry` the canonical JSON the leaf hash covers. Level-0
-- nodes are not repeated in `journal_nodes`: the leaf hash here is node (0, seq).
CREATE TABLE journal_leaves (
    seq       INTEGER PRIMARY KEY,
    entry     TEXT NOT NULL,
    leaf_hash BLOB NOT NULL
);

-- Finds a subject's leaves. Keyed by bucket (seq / 65536) first, so that a batch's inserts
-- land in the current bucket's few pages instead of at random places in one large index
-- (which made appends several times slower at a million entries); a lookup seeks once per
-- bucket (153 seeks at 10 million entries). `subject_key` as in the queue: hash collisions
-- are filtered by reading the entries.
CREATE TABLE journal_subjects (
    bucket      INTEGER NOT NULL,
    subject_key INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (bucket, subject_key, seq)
) WITHOUT ROWID;

-- Complete subtrees of level >= 1: node (level, idx) covers leaves
-- [idx * 2^level, (idx + 1) * 2^level).
CREATE TABLE journal_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE journal_tree_heads (
    tree_size    INTEGER PRIMARY KEY,
    root         BLOB NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    signature    BLOB NOT NULL,
    key_id       TEXT NOT NULL
);

CREATE TRIGGER journal_leaves_no_update BEFORE UPDATE ON journal_leaves
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_leaves_no_delete BEFORE DELETE ON journal_leaves
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_nodes_no_update BEFORE UPDATE ON journal_nodes
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_nodes_no_delete BEFORE DELETE ON journal_nodes
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_subjects_no_update BEFORE UPDATE ON journal_subjects
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_subjects_no_delete BEFORE DELETE ON journal_subjects
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_tree_heads_no_update BEFORE UPDATE ON journal_tree_heads
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_tree_heads_no_delete BEFORE DELETE ON journal_tree_heads
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
