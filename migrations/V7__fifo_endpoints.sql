-- Ordered (FIFO) endpoints. `ordering` is fixed when the endpoint is created:
-- its queue is declared with x-single-active-consumer, which a queue cannot
-- change afterwards.
ALTER TABLE endpoints ADD COLUMN ordering text NOT NULL DEFAULT 'parallel'
    CHECK (ordering IN ('parallel', 'fifo'));

-- The routing keys `hookfleet.router.ordered` is bound with, as the last
-- synchronisation left them (ordered_routes::sync keeps them equal to the event
-- types FIFO endpoints subscribe to). Read and written under an advisory lock.
CREATE TABLE ordered_bindings (
    routing_key  text PRIMARY KEY
);
