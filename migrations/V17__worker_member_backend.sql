-- A killed worker is seen gone in about a heartbeat, not `member_timeout`
-- (issue #16, docs/ARCHITECTURE.md §21).
--
-- `backend_pid`: the PostgreSQL backend of the connection that renewed the row
-- last. When a worker's process dies, the kernel closes its connections and
-- their backends exit at once; a row whose backend is gone and that was not
-- renewed for 1.5 heartbeats is a worker that is gone. A live worker whose
-- connection was replaced renews with its new backend within a heartbeat. A
-- NULL (rows of older workers) or a reused pid only falls back to the timeout.
ALTER TABLE worker_members ADD COLUMN backend_pid integer;
