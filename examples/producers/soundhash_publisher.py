#!/usr/bin/env python3
"""Publishes one event of each SoundHash type with the Python SDK (sdks/python):
the guide's own calls, which never block and never raise.

    pip install ./sdks/python
    HOOKFLEET_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f python3 examples/producers/soundhash_publisher.py acme

Prints one JSON line per event once all are confirmed: {"id": "evt_…", "type": "…"}.
docs/PRODUCERS.md §5 explains it; tests/e2e/producers.rs runs it.
"""
import datetime
import json
import os
import sys
import tempfile

try:
    import hookfleet_emit
except ImportError:  # run from a checkout, without `pip install ./sdks/python`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sdks", "python", "src"))
    import hookfleet_emit

from hookfleet_emit import (
    emit_api_limit_reached,
    emit_job_failed,
    emit_match_found,
    emit_subscription_updated,
    emit_user_created,
    emit_video_processed,
)


def main():
    tenant = sys.argv[1] if len(sys.argv) > 1 else None
    # A service keeps its spill directory on persistent storage, so that events
    # spilled while the broker was away are sent by its next start.
    os.environ.setdefault("HOOKFLEET_SPILL_DIR", tempfile.mkdtemp(prefix="soundhash-spill-"))
    reset = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sent = [
        ("match.found", emit_match_found(
            match_id=42, query_video_id="dQw4w9WgXcQ", matched_video_id="9bZkp7q19f0", confidence=0.95,
            segment_start=30.5, segment_end=45.2, tenant_id=tenant)),
        ("video.processed", emit_video_processed(
            video_id=7, video_url="https://example.com/v/7", title="Demo", duration=212.4,
            fingerprint_count=1337, processing_time_seconds=12.8, tenant_id=tenant)),
        ("job.failed", emit_job_failed(
            job_id=99, job_type="fingerprint", target_id="dQw4w9WgXcQ", error_message="download timed out",
            attempt_count=3, tenant_id=tenant)),
        ("user.created", emit_user_created(user_id=1001, username="ada", email="ada@example.com", tenant_id=tenant)),
        ("subscription.updated", emit_subscription_updated(
            subscription_id=5, user_id=1001, plan_tier="pro", status="active", previous_plan="free",
            tenant_id=tenant)),
        ("api_limit.reached", emit_api_limit_reached(
            user_id=1001, limit_type="api_calls", current_usage=9000, limit_value=10000, reset_at=reset,
            tenant_id=tenant)),
    ]
    # The calls returned at once; wait (bounded) for the broker's confirms.
    confirmed = hookfleet_emit.flush(30)
    metrics = hookfleet_emit.get_default().metrics()
    if not confirmed or metrics.dropped:  # e.g. HOOKFLEET_AMQP_URL is not set
        print(f"not all confirmed within 30 s: {metrics}", file=sys.stderr)
        sys.exit(1)
    for event_type, event_id in sent:
        print(json.dumps({"id": event_id, "type": event_type}))


if __name__ == "__main__":
    main()
