#!/usr/bin/env python3
"""Publish the six SoundHash webhook events to hookfleet, the way any AMQP producer can.

The wire contract (docs/PRODUCERS.md): exchange `hookfleet.events` (topic, durable),
routing key = event type, persistent messages, `message_id` = event id, publisher
confirms, and a JSON envelope {"id", "type", "tenant_id", "timestamp", "data"}.

    pip install pika
    HOOKFLEET_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f python3 soundhash_publisher.py [TENANT]

Prints one line of JSON per confirmed event: {"id": ..., "type": ...}.
"""
import datetime
import json
import os
import sys
import uuid

import pika

EXCHANGE = "hookfleet.events"


class HookfleetPublisher:
    """Publishes envelopes with publisher confirms; a nack or unroutable message raises."""

    def __init__(self, url):
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()
        # Idempotent: the exchange exists once hookfleet has started.
        self.channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)

    def emit(self, event_type, data, tenant_id=None):
        envelope = {
            "id": "evt_" + uuid.uuid4().hex,
            "type": event_type,
            "tenant_id": tenant_id,
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z"),
            "data": data,
        }
        self.channel.basic_publish(
            exchange=EXCHANGE,
            routing_key=event_type,
            # mandatory: if no queue is bound yet (hookfleet never started on this
            # vhost) pika raises UnroutableError instead of the event vanishing.
            mandatory=True,
            body=json.dumps(envelope),
            properties=pika.BasicProperties(
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=envelope["id"],
            ),
        )  # returns once the broker confirmed it (confirm_delivery)
        return envelope["id"]

    # The SoundHash guide's calls.
    def emit_match_found(self, match_id, query_video_id, matched_video_id, confidence,
                         segment_start=None, segment_end=None, tenant_id=None):
        return self.emit("match.found", {
            "match_id": match_id, "query_video_id": query_video_id, "matched_video_id": matched_video_id,
            "confidence": confidence, "segment_start": segment_start, "segment_end": segment_end,
        }, tenant_id)

    def emit_video_processed(self, video_id, video_url=None, title=None, duration=None,
                             fingerprint_count=None, processing_time_seconds=None, tenant_id=None):
        return self.emit("video.processed", {
            "video_id": video_id, "video_url": video_url, "title": title, "duration": duration,
            "fingerprint_count": fingerprint_count, "processing_time_seconds": processing_time_seconds,
        }, tenant_id)

    def emit_job_failed(self, job_id, job_type, target_id, error_message, attempt_count=None, tenant_id=None):
        return self.emit("job.failed", {
            "job_id": job_id, "job_type": job_type, "target_id": target_id,
            "error_message": error_message, "attempt_count": attempt_count,
        }, tenant_id)

    def emit_user_created(self, user_id, username, email=None, tenant_id=None):
        return self.emit("user.created", {"user_id": user_id, "username": username, "email": email}, tenant_id)

    def emit_subscription_updated(self, subscription_id, user_id, plan_tier, status, previous_plan=None, tenant_id=None):
        return self.emit("subscription.updated", {
            "subscription_id": subscription_id, "user_id": user_id, "plan_tier": plan_tier,
            "status": status, "previous_plan": previous_plan,
        }, tenant_id)

    def emit_api_limit_reached(self, user_id, limit_type, current_usage, limit_value, reset_at=None, tenant_id=None):
        return self.emit("api_limit.reached", {
            "user_id": user_id, "limit_type": limit_type, "current_usage": current_usage,
            "limit_value": limit_value, "reset_at": reset_at,
        }, tenant_id)

    def close(self):
        self.connection.close()


def main():
    tenant = sys.argv[1] if len(sys.argv) > 1 else None
    p = HookfleetPublisher(os.environ.get("HOOKFLEET_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"))
    reset = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)).isoformat().replace("+00:00", "Z")
    sent = [
        ("match.found", p.emit_match_found(42, "dQw4w9WgXcQ", "9bZkp7q19f0", 0.95, 30.5, 45.2, tenant_id=tenant)),
        ("video.processed", p.emit_video_processed(7, "https://example.com/v/7", "Demo", 212.4, 1337, 12.8, tenant_id=tenant)),
        ("job.failed", p.emit_job_failed(99, "fingerprint", "dQw4w9WgXcQ", "download timed out", 3, tenant_id=tenant)),
        ("user.created", p.emit_user_created(1001, "ada", "ada@example.com", tenant_id=tenant)),
        ("subscription.updated", p.emit_subscription_updated(5, 1001, "pro", "active", "free", tenant_id=tenant)),
        ("api_limit.reached", p.emit_api_limit_reached(1001, "api_calls", 9000, 10000, reset, tenant_id=tenant)),
    ]
    p.close()
    for event_type, event_id in sent:
        print(json.dumps({"id": event_id, "type": event_type}))


if __name__ == "__main__":
    main()
