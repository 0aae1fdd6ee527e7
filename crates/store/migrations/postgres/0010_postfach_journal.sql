-- The Postfach's delivery steps move onto the journal (issue 5): every step (placed,
-- replied, notified, opened) is a journal entry queued in the same transaction as the
-- change; `placed`/`replied` entries carry a salted digest of the message's content.
-- The older hash chain `postfach_log` is frozen: kept unchanged for the steps recorded
-- before this migration (each of which the journal also holds since 0006), never written
-- again. A trigger makes the freeze explicit.
ALTER TABLE postfach_messages ADD COLUMN content_salt TEXT;

CREATE FUNCTION postfach_log_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'postfach_log is frozen: Postfach steps are in the journal';
END;
$$;
CREATE TRIGGER postfach_log_frozen BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON postfach_log
    FOR EACH STATEMENT EXECUTE FUNCTION postfach_log_frozen();

-- The Eingangsbestätigung into the citizen's Postfach (issue 5, item 3): when the sender is
-- the platform's portal (scope `postfach:receipts`) and the metadata names a FINK reply
-- channel of this Servicekonto, the ePoststelle files the receipt with the Postfach
-- reference; a worker places it once the decision is recorded and notes the outcome
-- (the message id, or `undeliverable: …`). Placing uses a message id derived from the
-- submission id, so a retry after a crash can never place it twice.
ALTER TABLE ps_receipts ADD COLUMN postfach_ref TEXT;
ALTER TABLE ps_receipts ADD COLUMN postfach_outcome TEXT;
CREATE INDEX ps_receipts_postfach_due ON ps_receipts (created_at)
    WHERE postfach_ref IS NOT NULL AND postfach_outcome IS NULL;
