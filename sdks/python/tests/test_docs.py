"""The Python blocks of docs/PRODUCERS.md, run as written (tests/e2e/receivers.rs
checks that each block of the doc is in this file or another tested one).

The explicit emitter's block names a broker host (`rabbitmq`) and a spill path of
a production machine: here `Emitter` is the real class, pointed at this test's
vhost and a temporary directory, so that nothing leaves loopback."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

import hookfleet_emit
from hookfleet_emit import recording
from conftest import AMQP_URL, needs_stack


def test_usage_with_the_default_emitter() -> None:
    with recording() as rec:
        # --- docs/PRODUCERS.md, "Usage, with the default emitter"
        from src.webhooks import emit_match_found, emit_job_failed, emit
        import hookfleet_emit

        # The SoundHash guide's calls, one per catalog type. Each returns the event id at once.
        emit_match_found(
            match_id=42, query_video_id="dQw4w9WgXcQ", matched_video_id="9bZkp7q19f0",
            confidence=0.95, segment_start=30.5, segment_end=45.2, tenant_id="acme",
        )
        emit_job_failed(job_id=99, job_type="fingerprint", target_id="dQw4w9WgXcQ",
                        error_message="download timed out", attempt_count=3, tenant_id="acme")
        # Any catalog type, with its data; `id` derived from your own data makes a retry a duplicate.
        emit("video.processed", {"video_id": "dQw4w9WgXcQ", "duration": 212.0}, tenant_id="acme", id="video-7-done")

        # Optional: at exit, pending events are flushed anyway (atexit, HOOKFLEET_EXIT_FLUSH_TIMEOUT, 5 s).
        hookfleet_emit.flush(10)
        # --- end of the block
    types = [e.event_type for e in rec.recorded()]
    assert types == ["match.found", "job.failed", "video.processed"]
    assert rec.recorded()[2].id == "video-7-done"


@pytest.fixture
def local_emitter_class(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    real = hookfleet_emit.Emitter

    class Local(real):  # type: ignore[misc, valid-type]
        def __init__(self, url: str, **kw: Any) -> None:
            assert url.startswith("amqp://")
            kw["spill_dir"] = str(tmp_path / "spill")
            super().__init__(AMQP_URL, **kw)

    monkeypatch.setattr(hookfleet_emit, "Emitter", Local)
    yield


@needs_stack
def test_an_explicit_emitter(local_emitter_class: None) -> None:
    # --- docs/PRODUCERS.md, "Or with an explicit emitter"
    from hookfleet_emit import Emitter

    emitter = Emitter(
        "amqp://guest:guest@rabbitmq:5672/%2f",
        spill_dir="/var/lib/myservice/hookfleet-spill",   # must survive restarts
        buffer=32_768,                                    # events held in memory before they spill
        batch=2000,                                       # events published per burst of confirms
        max_spill_bytes=1 << 30,                          # the spill directory's bound
    )
    emitter.emit_user_created(user_id=1001, username="ada", email="ada@example.com", tenant_id="acme")
    emitter.close(10)   # flushes (bounded), then stops its thread
    # --- end of the block
    assert emitter.metrics().confirmed == 1
    assert not os.path.exists("/var/lib/myservice/hookfleet-spill")


# --- docs/PRODUCERS.md, "Testing your producer: recording mode"
from hookfleet_emit import Emitter
from src.webhooks import emit_match_found


def save_match(match_id: int, confidence: float) -> None:
    # ... the producer's own database commit goes here ...
    if confidence >= 0.9:
        emit_match_found(match_id=match_id, query_video_id="q", matched_video_id="m",
                         confidence=confidence, tenant_id="acme")


def test_a_confident_match_is_announced(hookfleet_recorder: Emitter) -> None:
    save_match(42, 0.95)
    event = hookfleet_recorder.assert_emitted("match.found", match_id=42)
    assert event.tenant_id == "acme"
# --- end of the block


def test_a_weak_match_is_not_announced(hookfleet_recorder: Emitter) -> None:
    save_match(43, 0.5)
    hookfleet_recorder.assert_not_emitted("match.found")
