"""The SoundHash service's own `src.webhooks`, as the guide imports it: a thin
re-export of the SDK (a producer writes this file once). docs/PRODUCERS.md shows
these lines; tests/e2e/receivers.rs checks that they stay the same."""
# src/webhooks/__init__.py
from hookfleet_emit import *          # emit_match_found, …, emit, flush, Emitter, recording
from hookfleet_emit import events     # so that tests can patch src.webhooks.events.emit_event_sync
