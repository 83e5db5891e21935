"""Shared fixtures. The integration tests need a running hookfleet (router, worker
and API) and RabbitMQ; tests/e2e/python_sdk.rs starts them on a fresh vhost and
database and passes them in:

- HOOKFLEET_TEST_AMQP_URL: the vhost's AMQP URL;
- HOOKFLEET_TEST_API, HOOKFLEET_TEST_ADMIN_KEY: the REST API and its admin key.

Without them, only the tests that need no broker run.
"""
from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pika
import pytest
from standardwebhooks import Webhook

import hookfleet_emit
from hookfleet_emit.pytest_plugin import hookfleet_recorder  # noqa: F401 (the fixture)

AMQP_URL = os.environ.get("HOOKFLEET_TEST_AMQP_URL")
API = os.environ.get("HOOKFLEET_TEST_API")
ADMIN_KEY = os.environ.get("HOOKFLEET_TEST_ADMIN_KEY", "")
LONG = 90.0

needs_stack = pytest.mark.skipif(
    not (AMQP_URL and API), reason="HOOKFLEET_TEST_AMQP_URL / HOOKFLEET_TEST_API not set"
)


def wait_for(what: str, cond: Any, timeout: float = LONG) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for: {what}")


def api(method: str, path: str, key: str, body: Optional[Dict[str, Any]] = None) -> Any:
    req = urllib.request.Request(
        f"{API}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


class Receiver:
    """A local HTTP endpoint that verifies each delivery with the Python
    `standardwebhooks` library (a bad signature is a 400 and is listed in `bad`)."""

    def __init__(self) -> None:
        self.secret = ""
        self.got: Dict[str, Dict[str, Any]] = {}
        self.deliveries = 0
        self.bad: List[str] = []
        self.lock = threading.Lock()
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    payload = Webhook(rx.secret).verify(body, dict(self.headers))
                except Exception as e:
                    with rx.lock:
                        rx.bad.append(f"{e!r}")
                    self.send_response(400)
                    self.end_headers()
                    return
                with rx.lock:
                    rx.deliveries += 1
                    rx.got[self.headers["webhook-id"]] = payload
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.got)


def consumers(queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL or ""))
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.consumer_count)
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        if conn.is_open:
            conn.close()


@pytest.fixture
def tenant() -> Iterator[Tuple[str, Receiver]]:
    """A new tenant with a webhook for every type, pointing at a verifying
    receiver; yields once the router has the webhook (a worker consumes its queue)."""
    name = "py-" + uuid.uuid4().hex[:12]
    rx = Receiver()
    api("POST", "/api/v1/tenants", ADMIN_KEY, {"id": name})
    key = api("POST", f"/api/v1/tenants/{name}/api-keys", ADMIN_KEY)["key"]
    hook = api("POST", "/api/v1/webhooks", key, {"url": rx.url, "events": ["*"]})
    rx.secret = hook["secret"]
    wait_for("the webhook in the registry", lambda: consumers(f"hookfleet.endpoint.{hook['id']}") > 0)
    yield name, rx
    rx.server.shutdown()


@pytest.fixture
def emitter(tmp_path: Any) -> Iterator[hookfleet_emit.Emitter]:
    """An emitter on the test vhost, also the default one for the block."""
    em = hookfleet_emit.Emitter(AMQP_URL or "", spill_dir=str(tmp_path / "spill"))
    previous = hookfleet_emit.set_default(em)
    yield em
    hookfleet_emit.set_default(previous)
    em.close(10)
