-- Issue #17: why a message became a dead letter (hookfleet_core::DeadReason),
-- from its `x-dead-reason` header, or set by the keeper of
-- `hookfleet.unroutable` (`endpoint_deleted`, `queue_missing`, `unroutable`).
-- Null for the rows kept before this column existed. No CHECK: the keeper
-- only writes the enum's spellings (an unknown header value is stored as
-- null), and a CHECK failing would hold the keeper's whole batch.
ALTER TABLE dead_letters ADD COLUMN reason text;
-- `?reason=` filters, and purging one reason (`endpoint_deleted` leftovers).
CREATE INDEX dead_letters_reason ON dead_letters (reason, id);
