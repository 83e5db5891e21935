-- Delivery control per endpoint (rate_limit exists since V1): at most
-- max_in_flight deliveries at once across all workers, and a retry schedule
-- of its own ("5s,1m,1h": the delays between attempts) overriding the default.
-- An event type may carry a schedule too; the endpoint's wins.
ALTER TABLE endpoints ADD COLUMN max_in_flight integer CHECK (max_in_flight BETWEEN 1 AND 1000);
ALTER TABLE endpoints ADD COLUMN retry_schedule text;
ALTER TABLE endpoints ADD CONSTRAINT endpoints_rate_limit_range CHECK (rate_limit BETWEEN 1 AND 100000);
ALTER TABLE event_types ADD COLUMN retry_schedule text;
