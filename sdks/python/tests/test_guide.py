"""The SoundHash guide's own snippets (../shared/seeds), run as written against
`src.webhooks` (tests/src/webhooks: the service's re-export of the SDK)."""
from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import hookfleet_emit
from hookfleet_emit import Emitter
from src.webhooks import (
    emit_api_limit_reached,
    emit_job_failed,
    emit_match_found,
    emit_subscription_updated,
    emit_user_created,
    emit_video_processed,
)

_ids = itertools.count(1)


class FakeDb:
    """Stands in for the service's SQLAlchemy session."""

    def add(self, obj: Any) -> None:
        if getattr(obj, "id", None) is None:
            obj.id = next(_ids)

    def commit(self) -> None:
        pass

    def refresh(self, obj: Any) -> None:
        pass


db = FakeDb()


def Match(**kw: Any) -> Any:  # noqa: N802 (the guide's model)
    kw.setdefault("id", None)
    return SimpleNamespace(**kw)


# The guide's "Migration Guide: After", as written.
def create_match() -> Any:
    match = Match(query_video_id="dQw4w9WgXcQ", matched_video_id="9bZkp7q19f0", confidence=0.95,
                  segment_start=30.5, segment_end=45.2, tenant_id="acme")
    db.add(match)
    db.commit()

    # Add this
    emit_match_found(
        match_id=match.id,
        query_video_id=match.query_video_id,
        matched_video_id=match.matched_video_id,
        confidence=match.confidence,
        segment_start=match.segment_start,
        segment_end=match.segment_end,
        tenant_id=match.tenant_id,
    )

    return match


# "Unit Testing: Mock webhook emission in tests", as written.
@patch('src.webhooks.events.emit_event_sync')
def test_match_creation(mock_emit: Any) -> None:
    match = create_match()
    assert match.id is not None

    # Verify webhook was emitted
    mock_emit.assert_called_once()
    call_args = mock_emit.call_args
    assert call_args[1]['event_type'] == 'match.found'


def create_user() -> Any:
    new_user = SimpleNamespace(id=None, username="ada", email="ada@example.com", tenant_id=None)
    db.add(new_user)
    db.commit()
    db.refresh(new_user)

    # Emit webhook event
    emit_user_created(
        user_id=new_user.id,
        username=new_user.username,
        email=new_user.email,
        tenant_id=new_user.tenant_id,
    )
    return new_user


# "In tests, webhooks will log warnings but won't fail tests", as written, with no
# broker configured.
def test_user_registration(monkeypatch: Any) -> None:
    monkeypatch.delenv("HOOKFLEET_AMQP_URL", raising=False)
    previous = hookfleet_emit.set_default(None)
    try:
        user = create_user()
        assert user.id is not None
        # webhook event emitted but doesn't affect test
    finally:
        hookfleet_emit.set_default(previous)


# The integration points of the guide, as written, checked in recording mode:
# every call passes its catalog schema.
def save_match_result(match_result: Any) -> None:
    db.add(match_result)
    db.commit()
    emit_match_found(
        match_id=match_result.id,
        query_video_id=match_result.query_video_id,
        matched_video_id=match_result.matched_video_id,
        confidence=match_result.confidence,
        segment_start=match_result.segment_start,
        segment_end=match_result.segment_end,
        tenant_id=match_result.tenant_id,
    )


def complete_video_processing(video: Any, fingerprints: Any) -> None:
    video.processed = True
    video.processing_completed = datetime.now(timezone.utc)
    db.commit()
    processing_time = None
    if video.processing_started:
        processing_time = (video.processing_completed - video.processing_started).total_seconds()
    emit_video_processed(
        video_id=video.id,
        video_url=video.url,
        title=video.title,
        duration=video.duration,
        fingerprint_count=len(fingerprints),
        processing_time_seconds=processing_time,
        tenant_id=video.tenant_id,
    )


def handle_job_failure(job: Any, error: Exception) -> None:
    job.status = "failed"
    job.error_message = str(error)
    db.commit()
    emit_job_failed(
        job_id=job.id,
        job_type=job.job_type,
        target_id=job.target_id,
        error_message=job.error_message,
        attempt_count=job.retry_count + 1,
        tenant_id=job.tenant_id,
    )


def update_subscription(subscription: Any, new_plan: str) -> None:
    old_plan = subscription.plan_tier
    subscription.plan_tier = new_plan
    db.commit()
    emit_subscription_updated(
        subscription_id=subscription.id,
        user_id=subscription.user_id,
        plan_tier=new_plan,
        status=subscription.status,
        previous_plan=old_plan,
        tenant_id=subscription.user.tenant_id,
    )


def check_usage_limits(user: Any, usage_record: Any) -> None:
    if usage_record.api_calls >= usage_record.api_limit * 0.9:  # 90% threshold
        reset_time = (datetime.now(timezone.utc) + timedelta(days=30)).isoformat() + "Z"

        emit_api_limit_reached(
            user_id=user.id,
            limit_type="api_calls",
            current_usage=usage_record.api_calls,
            limit_value=usage_record.api_limit,
            reset_at=reset_time,
            tenant_id=user.tenant_id,
        )


def test_the_integration_points_emit_valid_events(hookfleet_recorder: Emitter) -> None:
    ns = SimpleNamespace
    save_match_result(ns(id=None, query_video_id="q", matched_video_id="m", confidence=0.91,
                         segment_start=None, segment_end=None, tenant_id="acme"))
    started = datetime.now(timezone.utc) - timedelta(seconds=12)
    complete_video_processing(ns(id=7, url="https://example.com/v/7", title="Demo", duration=212.4,
                                 processing_started=started, tenant_id="acme"), [1, 2, 3])
    handle_job_failure(ns(id=99, job_type="fingerprint", target_id="dQw4w9WgXcQ", retry_count=2,
                          tenant_id=None), TimeoutError("download timed out"))
    update_subscription(ns(id=5, user_id=1001, plan_tier="free", status="active",
                           user=ns(tenant_id="acme")), "pro")
    check_usage_limits(ns(id=1001, tenant_id="acme"), ns(api_calls=9500, api_limit=10000))
    rec = hookfleet_recorder
    rec.assert_emitted("match.found", confidence=0.91)
    rec.assert_emitted("video.processed", fingerprint_count=3)
    rec.assert_emitted("job.failed", error_message="download timed out", attempt_count=3)
    rec.assert_emitted("subscription.updated", plan_tier="pro", previous_plan="free")
    rec.assert_emitted("api_limit.reached", current_usage=9500)
    assert len(rec.recorded()) == 5


# "Async vs Sync", as written.
def test_async_and_sync(hookfleet_recorder: Emitter) -> None:
    def process_video() -> None:
        emit_video_processed(video_id=1)

    async def process_video_async() -> None:
        emit_video_processed(video_id=2)  # Still works!

    process_video()
    asyncio.run(process_video_async())
    assert [e.data["video_id"] for e in hookfleet_recorder.recorded()] == [1, 2]
