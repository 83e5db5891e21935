"""The SoundHash service's own `src.webhooks`, as the guide imports it: a thin
re-export of the SDK (a producer writes this file once)."""
from hookfleet_emit import *  # noqa: F401,F403
from hookfleet_emit import events  # noqa: F401 (the guide patches src.webhooks.events.emit_event_sync)
