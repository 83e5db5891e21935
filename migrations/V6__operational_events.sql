-- Operational events: published by hookfleet about a tenant's endpoints, to the
-- tenant's webhooks that subscribe to them (never to the endpoint concerned).
INSERT INTO event_types (name, description, schema, example) VALUES
('endpoint.disabled', 'hookfleet disabled one of your webhooks: it answered 410 Gone, or every attempt failed for circuit.auto_disable_after. Its deliveries wait in its queue until it is enabled again.',
 '{"type":"object","required":["endpoint_id","url","reason","disabled_at"],
   "properties":{"endpoint_id":{"type":"string"},"url":{"type":"string"},"reason":{"type":"string"},
   "disabled_at":{"type":"string"}}}',
 '{"endpoint_id":"ep_01JDX3MGVQ8K2Z7T4R6N1B9C5D","url":"https://example.com/webhooks","reason":"the endpoint answered 410 Gone","disabled_at":"2026-11-28T12:00:00.000Z"}'),
('endpoint.circuit_opened', 'One of your webhooks failed circuit.failure_threshold times in a row: its deliveries wait, spending no attempts, until a probe delivery at next_probe_at succeeds.',
 '{"type":"object","required":["endpoint_id","url","consecutive_failures","next_probe_at"],
   "properties":{"endpoint_id":{"type":"string"},"url":{"type":"string"},"consecutive_failures":{"type":"integer"},
   "next_probe_at":{"type":"string"},"last_error":{"type":["string","null"]}}}',
 '{"endpoint_id":"ep_01JDX3MGVQ8K2Z7T4R6N1B9C5D","url":"https://example.com/webhooks","consecutive_failures":10,"next_probe_at":"2026-11-28T12:00:30.000Z","last_error":"HTTP 500"}'),
('delivery.exhausted', 'A delivery to one of your webhooks failed every attempt of its retry schedule and went to the dead letters, where it can be replayed.',
 '{"type":"object","required":["delivery_id","event_id","event_type","endpoint_id","attempts"],
   "properties":{"delivery_id":{"type":"string"},"event_id":{"type":"string"},"event_type":{"type":"string"},
   "endpoint_id":{"type":"string"},"attempts":{"type":"integer"},"last_error":{"type":["string","null"]}}}',
 '{"delivery_id":"dlv_01JDX3MH0000000000000000000","event_id":"evt_01JDX3MGVQ8K2Z7T4R6N1B9C5D","event_type":"match.found","endpoint_id":"ep_01JDX3MGVQ8K2Z7T4R6N1B9C5D","attempts":8,"last_error":"HTTP 500"}')
ON CONFLICT (name) DO NOTHING;
