"""Never blocks, never raises: the spill survives a SIGKILL and is replayed in
order; past every bound events are dropped and counted; the broker is restarted
under 10,000 events and none is lost."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any, List, Tuple

import pika
import pytest

from hookfleet_emit import Emitter
from conftest import AMQP_URL, LONG, Receiver, needs_stack, wait_for

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
UNREACHABLE = "amqp://guest:guest@127.0.0.1:1/%2f"

CHILD = """
import sys, time
from hookfleet_emit import Emitter
em = Emitter(sys.argv[1], spill_dir=sys.argv[2], buffer=64)
for i in range(int(sys.argv[3])):
    em.emit_user_created(i, "spilled", tenant_id=sys.argv[4])
while em.metrics().spilled < int(sys.argv[3]):
    time.sleep(0.01)
print("SPILLED", flush=True)
time.sleep(600)
"""


def spill_files(d: str) -> List[str]:
    return [n for n in os.listdir(d) if n.endswith(".jsonl")]


@needs_stack
def test_spilled_events_survive_a_killed_producer(tenant: Tuple[str, Receiver], tmp_path: Any) -> None:
    name, rx = tenant
    spill = str(tmp_path / "spill")
    # The probe sees the order in which events reach the exchange.
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL or ""))
    ch = conn.channel()
    probe = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(probe, "hookfleet.events", routing_key="user.created")
    # A real producer process, with the broker out of reach: everything spills;
    # then SIGKILL, no flush and no atexit.
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, UNREACHABLE, spill, "500", name],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])},
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == b"SPILLED"
    child.kill()
    child.wait()
    assert spill_files(spill)

    second = Emitter(AMQP_URL or "", spill_dir=spill)
    second.emit_user_created(500, "after", tenant_id=name)  # starts its thread
    wait_for("501 delivered", lambda: rx.count() == 501)
    assert rx.bad == []
    wait_for("the spill replayed and removed", lambda: not spill_files(spill))
    m = second.metrics()
    assert (m.replayed, m.dropped) == (500, 0)
    order = []
    while True:
        _, _, body = ch.basic_get(probe, auto_ack=True)
        if body is None:
            break
        order.append(json.loads(body)["data"]["user_id"])
    assert order == list(range(501)), "spilled events are published first, in emit order"
    conn.close()
    second.close(10)


def test_nothing_raises_and_every_bound_counts(tmp_path: Any, caplog: Any) -> None:
    """No broker: 50 events fill a buffer of 10, spill up to max_spill_bytes, and
    the rest are dropped with an error log. Bad data is dropped too. No raise."""
    em = Emitter(UNREACHABLE, spill_dir=str(tmp_path / "s"), buffer=10, max_spill_bytes=4000)
    for i in range(50):
        em.emit_user_created(i, "x" * 50)
    assert em.emit("user.created", {"user_id": object()}) is None
    assert em.emit("user.created", {"user_id": float("nan")}) is None
    assert em.emit("user.created", {"user_id": 1}, tenant_id=7) is None  # type: ignore[arg-type]
    assert em.emit(b"user.created", {"user_id": 1}) is None  # type: ignore[arg-type]
    wait_for("all accounted for", lambda: em.metrics().spilled + em.metrics().dropped == 54, 30)
    m = em.metrics()
    assert 0 < m.spilled < 50 and m.dropped == 54 - m.spilled and m.confirmed == 0
    total = sum(os.path.getsize(os.path.join(tmp_path / "s", f)) for f in spill_files(str(tmp_path / "s")))
    assert total <= 4000
    assert m.spill_bytes == total, "the spill gauge is what is on disk"
    assert "dropped" in caplog.text
    assert not em.flush(0.2), "spilled events are outstanding"
    assert not em.close(0.2)


def test_default_emitter_without_a_broker_logs_and_never_fails(
    monkeypatch: Any, caplog: Any
) -> None:
    import hookfleet_emit

    monkeypatch.delenv("HOOKFLEET_AMQP_URL", raising=False)
    previous = hookfleet_emit.set_default(None)
    try:
        event_id = hookfleet_emit.emit_user_created(user_id=1, username="ada")
        assert event_id is not None and event_id.startswith("evt_")
        assert "HOOKFLEET_AMQP_URL is not set" in caplog.text
        assert hookfleet_emit.get_default().metrics().dropped == 1
    finally:
        hookfleet_emit.set_default(previous)


def test_prometheus_counters_have_the_rust_names(tmp_path: Any) -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    em = Emitter.recording()
    em.emit_user_created(1, "ada")
    text = prometheus_client.generate_latest().decode()
    for name in ("confirmed", "spilled", "dropped", "emitted", "replayed"):
        assert f"hookfleet_emit_{name}_total " in text, name
    assert "hookfleet_emit_spill_bytes " in text


@pytest.mark.skipif(
    os.environ.get("HOOKFLEET_TEST_BROKER_RESTART") != "1",
    reason="restarts RabbitMQ: run alone by python_sdk_broker_restart_loses_nothing",
)
@needs_stack
def test_broker_restart_under_10000_events(tenant: Tuple[str, Receiver], emitter: Emitter) -> None:
    name, rx = tenant
    errors: List[BaseException] = []
    ids: List[Any] = []

    def produce(lo: int, hi: int) -> None:
        try:
            for i in range(lo, hi):
                ids.append(emitter.emit_user_created(i, "restart", tenant_id=name))
                if i % 50 == 0:
                    time.sleep(0.05)  # spread over ~10 s, across the restart
        except BaseException as e:
            errors.append(e)

    producer = threading.Thread(target=produce, args=(0, 10_000))
    producer.start()
    time.sleep(0.5)
    try:
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True)
        time.sleep(1.0)
    finally:
        subprocess.run(["rabbitmqctl", "start_app"], capture_output=True)
        subprocess.run(["rabbitmqctl", "await_startup", "--timeout", "60"], capture_output=True)
    producer.join()
    assert errors == [], "no emit call raised"
    assert emitter.flush(120), f"all confirmed after the restart: {emitter.metrics()}"
    wait_for("10,000 delivered", lambda: rx.count() == 10_000, 120)
    assert set(rx.got) == set(ids)
    assert rx.bad == []
    assert emitter.metrics().dropped == 0


def test_close_spills_what_is_left_and_later_emits_go_to_disk(tmp_path: Any) -> None:
    em = Emitter(UNREACHABLE, spill_dir=str(tmp_path / "s"))
    for i in range(20):
        em.emit_user_created(i, "before-close")
    assert not em.close(0.2)
    em.emit_user_created(20, "after-close")
    lines = [
        json.loads(line.split(b"\t", 2)[2])["data"]["user_id"]
        for f in sorted(spill_files(str(tmp_path / "s")))
        for line in open(tmp_path / "s" / f, "rb").read().splitlines()
    ]
    assert lines == list(range(21)), "everything on disk, in emit order"


def emitter_connections(vhost: str) -> List[str]:
    """The pids of the emitter connections on `vhost` (hookfleet's own are not
    named hookfleet-emit)."""
    out = subprocess.run(
        ["rabbitmqctl", "list_connections", "-q", "--no-table-headers", "pid", "vhost", "client_properties"],
        check=True, capture_output=True, text=True,
    ).stdout
    return [
        line.split("\t")[0]
        for line in out.splitlines()
        if line.split("\t")[1:2] == [vhost] and "hookfleet-emit" in line
    ]


@needs_stack
def test_a_connection_closed_under_load_loses_nothing(
    tenant: Tuple[str, Receiver], emitter: Emitter
) -> None:
    """The broker closes the emitter's connection while events are in flight:
    those are spilled, the thread reconnects and publishes them again (once
    more at worst: the router dedupes on the id), and none is lost. Only this
    test's connection is closed; the broker keeps running."""
    name, rx = tenant
    vhost = (AMQP_URL or "").rsplit("/", 1)[1]
    ids = [emitter.emit_user_created(i, "closed", tenant_id=name) for i in range(200)]
    wait_for("the emitter's connection", lambda: emitter_connections(vhost) != [])
    first = emitter_connections(vhost)
    closer = threading.Thread(
        target=lambda: [
            subprocess.run(["rabbitmqctl", "close_connection", pid, "test"], check=True, capture_output=True)
            for pid in first
        ]
    )
    closer.start()
    i = 200
    while closer.is_alive() or i < 2000:  # before, during and after the close
        ids.append(emitter.emit_user_created(i, "closed", tenant_id=name))
        i += 1
        if i % 10 == 0:
            time.sleep(0.01)  # ~1,000 a second, which hookfleet delivers as they come
    closer.join()
    wait_for("a new connection", lambda: emitter_connections(vhost) not in ([], first))
    assert emitter.flush(LONG), f"all confirmed after the reconnect: {emitter.metrics()}"
    wait_for(f"{len(ids)} delivered", lambda: rx.count() == len(ids), 2 * LONG)
    assert set(rx.got) == set(ids) and rx.bad == []
    m = emitter.metrics()
    assert (m.emitted, m.dropped, m.outstanding) == (len(ids), 0, 0)
