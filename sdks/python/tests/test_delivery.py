"""Events from each helper reach a receiver, signed (verified with the Python
standardwebhooks library), through a real hookfleet; and the calls work the same
from plain code, a running asyncio loop, threads and a forked child."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from typing import Any, List, Optional, Tuple

import hookfleet_emit
from hookfleet_emit import Emitter
from conftest import AMQP_URL, LONG, Receiver, needs_stack, wait_for

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def emit_the_six(tenant: str) -> List[Tuple[str, Optional[str]]]:
    """The guide's calls, module-level, keyword arguments as in the guide."""
    return [
        ("match.found", hookfleet_emit.emit_match_found(
            match_id=42, query_video_id="dQw4w9WgXcQ", matched_video_id="9bZkp7q19f0",
            confidence=0.95, segment_start=30.5, segment_end=45.2, tenant_id=tenant)),
        ("video.processed", hookfleet_emit.emit_video_processed(
            video_id=7, video_url="https://example.com/v/7", title="Demo", duration=212.4,
            fingerprint_count=1337, processing_time_seconds=12.8, tenant_id=tenant)),
        ("job.failed", hookfleet_emit.emit_job_failed(
            job_id=99, job_type="fingerprint", target_id="dQw4w9WgXcQ",
            error_message="download timed out", attempt_count=3, tenant_id=tenant)),
        ("user.created", hookfleet_emit.emit_user_created(
            user_id=1001, username="ada", email="ada@example.com", tenant_id=tenant)),
        ("subscription.updated", hookfleet_emit.emit_subscription_updated(
            subscription_id=5, user_id=1001, plan_tier="pro", status="active",
            previous_plan="free", tenant_id=tenant)),
        ("api_limit.reached", hookfleet_emit.emit_api_limit_reached(
            user_id=1001, limit_type="api_calls", current_usage=9000, limit_value=10000,
            reset_at="2026-12-28T00:00:00Z", tenant_id=tenant)),
    ]


@needs_stack
def test_each_helper_is_delivered_signed(tenant: Tuple[str, Receiver], emitter: Emitter) -> None:
    name, rx = tenant
    sent = emit_the_six(name)
    assert emitter.flush(30)
    wait_for("the six events delivered", lambda: rx.count() == 6)
    assert rx.bad == [], "every signature verifies"
    for event_type, event_id in sent:
        assert event_id is not None
        got = rx.got[event_id]
        assert (got["type"], got["tenant_id"]) == (event_type, name)
    assert rx.got[sent[0][1] or ""]["data"]["confidence"] == 0.95
    m = emitter.metrics()
    assert (m.confirmed, m.dropped, m.outstanding) == (6, 0, 0)


@needs_stack
def test_emit_with_an_id_and_from_a_running_event_loop(
    tenant: Tuple[str, Receiver], emitter: Emitter
) -> None:
    name, rx = tenant

    async def handler() -> List[Optional[str]]:
        # The guide: "Also works in async context" - the plain call, and await.
        ids = [emitter.emit_user_created(1, "async", tenant_id=name)]
        ids.append(await hookfleet_emit.emit_event(
            event_type="user.created", data={"user_id": 2, "username": "awaited"}, tenant_id=name))
        ids.append(hookfleet_emit.emit("user.created", {"user_id": 3, "username": "own-id"},
                                       tenant_id=name, id="user-3-created"))
        assert await emitter.aflush(30)
        return ids

    ids = asyncio.run(handler())
    assert ids[2] == "user-3-created"
    wait_for("three delivered", lambda: rx.count() == 3)
    assert set(rx.got) == set(ids)


@needs_stack
def test_emit_from_many_threads(tenant: Tuple[str, Receiver], emitter: Emitter) -> None:
    name, rx = tenant
    errors: List[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(100):
                emitter.emit_user_created(t * 1000 + i, f"t{t}", tenant_id=name)
        except BaseException as e:  # a raise would be a bug
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert emitter.flush(60)
    wait_for("800 delivered", lambda: rx.count() == 800)
    assert {p["data"]["user_id"] for p in rx.got.values()} == {
        t * 1000 + i for t in range(8) for i in range(100)
    }


@needs_stack
def test_emit_after_fork(tenant: Tuple[str, Receiver], emitter: Emitter) -> None:
    """A gunicorn or celery worker: the parent emitted (its thread and connection
    run), then forks; the child's events go through its own thread, and the
    parent's buffer is not published twice."""
    name, rx = tenant
    emitter.emit_user_created(1, "parent-before", tenant_id=name)
    assert emitter.flush(30)
    pid = os.fork()
    if pid == 0:  # the child: exits with 0 only if its events were confirmed
        ok = False
        try:
            for i in range(50):
                hookfleet_emit.emit_user_created(100 + i, "child", tenant_id=name)
            ok = hookfleet_emit.flush(30) and emitter.metrics().confirmed == 50
        finally:
            os._exit(0 if ok else 1)
    emitter.emit_user_created(2, "parent-after", tenant_id=name)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's 50 events were confirmed"
    assert emitter.flush(30)
    wait_for("52 delivered", lambda: rx.count() == 52, LONG)
    names = sorted(p["data"]["username"] for p in rx.got.values())
    assert names.count("child") == 50 and "parent-after" in names


@needs_stack
def test_pending_events_are_sent_at_a_normal_exit(tenant: Tuple[str, Receiver], tmp_path: Any) -> None:
    """A script that emits and ends without calling flush: the atexit flush sends
    its events (the default emitter, from HOOKFLEET_AMQP_URL)."""
    name, rx = tenant
    script = (
        "import sys, hookfleet_emit\n"
        "for i in range(20):\n"
        "    hookfleet_emit.emit_user_created(user_id=i, username='exit', tenant_id=sys.argv[1])\n"
    )
    env = {**os.environ, "HOOKFLEET_AMQP_URL": AMQP_URL or "", "HOOKFLEET_SPILL_DIR": str(tmp_path / "s"),
           "PYTHONPATH": SRC}
    subprocess.run([sys.executable, "-c", script, name], env=env, check=True, timeout=60)
    wait_for("20 delivered", lambda: rx.count() == 20)
    assert not [f for f in os.listdir(tmp_path / "s") if f.endswith(".jsonl")], "nothing left spilled"
