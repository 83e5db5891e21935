-- Issue #18 part 3: content filters on endpoints. `filter` is the endpoint's
-- filter expression as its owner wrote it (docs/ARCHITECTURE.md §22),
-- validated by the API, the portal and the CLI before it is stored, and
-- compiled by every router when the registry loads the row. NULL: every
-- event of the subscribed types. Changing it fires the existing
-- `endpoint:<id>` notification (V11), so running routers apply it at once.
ALTER TABLE endpoints ADD COLUMN filter jsonb;
