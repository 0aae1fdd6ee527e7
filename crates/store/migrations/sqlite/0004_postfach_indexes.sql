-- The Postfach list reads one page of a mailbox with thousands of messages: an index that
-- matches its filter and order (so neither counting nor paging touches the table), and one
-- for counting the unread.
CREATE INDEX postfach_messages_inbox ON postfach_messages (postfach_ref, direction, placed_at, id);
CREATE INDEX postfach_messages_unread ON postfach_messages (postfach_ref, direction, first_opened_at);
DROP INDEX postfach_messages_ref;
