"""The Python SDK's benchmark (issue #19), run by `make bench`: one process emits
20,000 events through `Emitter`; prints and writes `emit()` p50 and p99 per call,
confirmed events per second (first emit to last confirm) and how many spilled.

It uses a vhost of its own (created and deleted with rabbitmqctl) holding the
exchange and a durable `hookfleet.router` queue bound to it, declared as hookfleet
declares them, so the broker's confirms cost what they cost in production; no
hookfleet process is needed. Targets: p99 <= 50 us, >= 5,000 confirmed/s.

`--spans each` emits each event inside a span of its own (the OpenTelemetry SDK's
TracerProvider, no exporter; the span is started outside the timed call), so each
call reads a new trace context: the worst case. `--spans one` emits all inside one
span (each call after the first reuses its fields). The default, `none`, is the
path of every producer without tracing.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any, ContextManager, Dict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import pika  # noqa: E402

from hookfleet_emit import Emitter  # noqa: E402


def ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True)


def declare(url: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.exchange_declare("hookfleet.events", exchange_type="topic", durable=True)
    ch.queue_declare("hookfleet.router", durable=True, arguments={"x-queue-version": 2})
    ch.queue_bind("hookfleet.router", "hookfleet.events", routing_key="#")
    conn.close()


def tracer(spans: str) -> Any:
    if spans == "none":
        return None
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider().get_tracer("bench_emit")


def span(tr: Any, spans: str, which: str) -> ContextManager[Any]:
    """A current span when `spans` is `which`."""
    if spans != which:
        return contextlib.nullcontext()
    return tr.start_as_current_span("bench")  # type: ignore[no-any-return]


def run(url: str, events: int, spans: str = "none") -> Dict[str, Any]:
    from hookfleet_emit import _trace

    spill = tempfile.mkdtemp(prefix="hookfleet-emit-bench-")
    em = Emitter(url, spill_dir=spill)
    em.emit_user_created(0, "warm-up")  # starts the thread and the connection
    assert em.flush(30), "the warm-up event was not confirmed"
    lat = [0] * events
    clock = time.perf_counter_ns
    tr = tracer(spans)
    start = time.perf_counter()
    if spans == "each":
        for i in range(events):
            with tr.start_as_current_span("bench"):
                t0 = clock()
                em.emit_match_found(i, "dQw4w9WgXcQ", "9bZkp7q19f0", 0.95, 30.5, 45.2, tenant_id="acme")
                lat[i] = clock() - t0
    else:
        with span(tr, spans, "one"):
            for i in range(events):
                t0 = clock()
                em.emit_match_found(i, "dQw4w9WgXcQ", "9bZkp7q19f0", 0.95, 30.5, 45.2, tenant_id="acme")
                lat[i] = clock() - t0
    emitted = time.perf_counter() - start
    flushed = em.flush(120)
    total = time.perf_counter() - start
    m = em.metrics()
    em.close(10)
    shutil.rmtree(spill, ignore_errors=True)
    lat.sort()
    return {
        "events": events,
        "emit_p50_us": round(lat[events // 2] / 1000, 2),
        "emit_p99_us": round(lat[int(events * 0.99)] / 1000, 2),
        "emit_max_us": round(lat[-1] / 1000, 2),
        "emit_loop_s": round(emitted, 3),
        "confirmed_per_s": round((m.confirmed - 1) / total) if flushed else 0,
        "all_confirmed": flushed,
        "spilled": m.spilled,
        "dropped": m.dropped,
        "load_average_1m": os.getloadavg()[0],
        "opentelemetry": _trace.current is not None,
        "spans": spans,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672")
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--out", help="also write the JSON result here")
    ap.add_argument("--spans", choices=["none", "one", "each"], default="none",
                    help="emit outside any span, all in one span, or each in a span of its own")
    args = ap.parse_args()
    vhost = f"hfpy_bench_{uuid.uuid4().hex[:8]}"
    ctl("add_vhost", vhost)
    try:
        ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        url = f"{args.amqp}/{vhost}"
        declare(url)
        result = run(url, args.events, args.spans)
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)
    text = json.dumps(result, indent=2)
    print("python emit SDK:", text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    ok = result["all_confirmed"] and result["dropped"] == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
