"""The SoundHash guide's calls, one per catalog type (migrations/V2), written once
for both the `Emitter` methods and the module-level functions."""
from __future__ import annotations

from typing import Any, Dict, Optional, Union

Id = Union[int, str]


class Helpers:
    """Typed helpers; a subclass says where the event goes (`_send`)."""

    def _send(
        self, event_type: str, data: Dict[str, Any], tenant_id: Optional[str]
    ) -> Optional[str]:
        raise NotImplementedError

    def emit_match_found(
        self,
        match_id: Id,
        query_video_id: Id,
        matched_video_id: Id,
        confidence: float,
        segment_start: Optional[float] = None,
        segment_end: Optional[float] = None,
        tenant_id: Optional[str] = None,
    ) -> Optional[str]:
        """`match.found`: a query video matched a segment of another video."""
        return self._send(
            "match.found",
            {
                "match_id": match_id,
                "query_video_id": query_video_id,
                "matched_video_id": matched_video_id,
                "confidence": confidence,
                "segment_start": segment_start,
                "segment_end": segment_end,
            },
            tenant_id,
        )

    def emit_video_processed(
        self,
        video_id: Id,
        video_url: Optional[str] = None,
        title: Optional[str] = None,
        duration: Optional[float] = None,
        fingerprint_count: Optional[int] = None,
        processing_time_seconds: Optional[float] = None,
        tenant_id: Optional[str] = None,
    ) -> Optional[str]:
        """`video.processed`: a video finished processing."""
        return self._send(
            "video.processed",
            {
                "video_id": video_id,
                "video_url": video_url,
                "title": title,
                "duration": duration,
                "fingerprint_count": fingerprint_count,
                "processing_time_seconds": processing_time_seconds,
            },
            tenant_id,
        )

    def emit_job_failed(
        self,
        job_id: Id,
        job_type: str,
        target_id: Optional[Id],
        error_message: str,
        attempt_count: Optional[int] = None,
        tenant_id: Optional[str] = None,
    ) -> Optional[str]:
        """`job.failed`: a background job failed."""
        return self._send(
            "job.failed",
            {
                "job_id": job_id,
                "job_type": job_type,
                "target_id": target_id,
                "error_message": error_message,
                "attempt_count": attempt_count,
            },
            tenant_id,
        )

    def emit_user_created(
        self,
        user_id: Id,
        username: str,
        email: Optional[str] = None,
        tenant_id: Optional[str] = None,
    ) -> Optional[str]:
        """`user.created`: a user account was created."""
        return self._send(
            "user.created", {"user_id": user_id, "username": username, "email": email}, tenant_id
        )

    def emit_subscription_updated(
        self,
        subscription_id: Id,
        user_id: Id,
        plan_tier: str,
        status: str,
        previous_plan: Optional[str] = None,
        tenant_id: Optional[str] = None,
    ) -> Optional[str]:
        """`subscription.updated`: a subscription changed plan or status."""
        return self._send(
            "subscription.updated",
            {
                "subscription_id": subscription_id,
                "user_id": user_id,
                "plan_tier": plan_tier,
                "status": status,
                "previous_plan": previous_plan,
            },
            tenant_id,
        )

    def emit_api_limit_reached(
        self,
        user_id: Id,
        limit_type: str,
        current_usage: int,
        limit_value: int,
        reset_at: Optional[str] = None,
        tenant_id: Optional[str] = None,
    ) -> Optional[str]:
        """`api_limit.reached`: usage approached or exceeded a limit."""
        return self._send(
            "api_limit.reached",
            {
                "user_id": user_id,
                "limit_type": limit_type,
                "current_usage": current_usage,
                "limit_value": limit_value,
                "reset_at": reset_at,
            },
            tenant_id,
        )
