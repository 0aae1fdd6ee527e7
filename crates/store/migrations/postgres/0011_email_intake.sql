-- The ePoststelle's e-mail channel: one row per submission made from a received message,
-- for the answer to its sender (Eingangsbestätigung or rejection notice) and for
-- recognising a message a client sent again because it did not see our 250.
CREATE TABLE email_messages (
    submission_id   TEXT PRIMARY KEY,
    destination_id  TEXT NOT NULL,
    -- SHA-256 of the message as the client sent it (without our trace header).
    content_sha256  TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    -- JSON {answerTo, suppressed, subject, messageId, attachments, auth, signature},
    -- wrapped under the KEK (it names the sender); dropped once the answer is queued.
    answer_wrapped  BYTEA,
    -- 'pending' until the ePoststelle decided, then 'answered' or 'suppressed'.
    answer_state    TEXT NOT NULL,
    answered_at     TEXT,
    answer_note     TEXT
);
CREATE INDEX email_messages_dedupe ON email_messages (destination_id, content_sha256);
CREATE INDEX email_messages_pending ON email_messages (received_at) WHERE answer_state = 'pending';
