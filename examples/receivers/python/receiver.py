#!/usr/bin/env python3
"""A hookfleet webhook receiver: Python standard library + `standardwebhooks`.

    pip install standardwebhooks
    PORT=9000 WEBHOOK_SECRET=whsec_... python3 receiver.py

It verifies each delivery, ignores duplicates (same webhook-id), answers at
once and does the work afterwards, on a background thread.
"""
import os
import queue
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

PORT = int(os.environ.get("PORT", "9000"))
WEBHOOK = Webhook(os.environ["WEBHOOK_SECRET"])

seen = set()  # webhook-ids already accepted. In production: a table with a unique key.
seen_lock = threading.Lock()
work = queue.Queue()  # verified events, handled after the answer


def say(line):
    print(line, flush=True)


def handle(event):
    """The slow part runs here, after hookfleet has its answer."""
    if event["type"] == "match.found":
        pass  # e.g. store event["data"]["match_id"] and event["data"]["confidence"]


def worker():
    while True:
        event = work.get()
        try:
            handle(event)
        except Exception as e:  # a failure here is yours to retry: hookfleet got its 204
            print(f"could not handle {event['id']}: {e}", file=sys.stderr, flush=True)


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: hookfleet reuses connections

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        msg_id = self.headers.get("webhook-id") or "-"
        try:
            # Checks the signature and the timestamp (5 minutes), returns the parsed body.
            event = WEBHOOK.verify(body, dict(self.headers))
            event_type = event["type"]
        except Exception as e:
            return self.answer(400, f"rejected {msg_id} {e}")
        with seen_lock:
            duplicate = msg_id in seen
            seen.add(msg_id)
        if duplicate:
            return self.answer(204, f"duplicate {msg_id}")
        self.answer(204, f"verified {msg_id} {event_type}")
        work.put(event)

    def answer(self, status, line):
        say(line)
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass  # one line per request on stdout, nothing else


if __name__ == "__main__":
    threading.Thread(target=worker, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Receiver)
    say(f"listening on 127.0.0.1:{PORT}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
