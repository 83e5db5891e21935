#!/usr/bin/env python3
"""Render every portal template from sample contexts, for a look in a browser.

    python3 crates/api/portal/preview.py            # render to target/portal-preview/
    python3 crates/api/portal/preview.py --shots    # also screenshot each page at 360 and 1280 px

Needs jinja2 (`pip install jinja2`). The production renderer is minijinja; this
script keeps to the subset both understand and checks it:

* when the `minijinja` Python package (the Rust engine's binding, `pip install
  minijinja`) is installed, every sample is rendered with it too and the two
  outputs are compared;

* only the filters and tests minijinja ships that the portal uses are allowed;
* undefined values behave like minijinja's default (lenient) mode: printing one
  gives "", iterating one gives nothing, but reading an attribute of an undefined
  value is an error, so templates guard optional objects (`errors or {}`).

Output: target/portal-preview/<page>.html (and <page>--<variant>.html), with the
assets copied next to them and the `/portal/static/` links rewritten to point at
the copies. Screenshots go to target/portal-preview/shots/. Chromium is run with
background networking off and every host name unresolvable, so nothing leaves
the machine (the pages load only local files anyway).
"""

import argparse
import difflib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import jinja2
    from jinja2 import nodes
except ImportError:  # pragma: no cover
    sys.exit("preview.py needs jinja2: pip install jinja2")

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "templates")
STATIC = os.path.join(HERE, "static")
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
OUT = os.path.join(ROOT, "target", "portal-preview")
BASE = "/portal"

ALLOWED_FILTERS = {
    "default", "d", "length", "tojson", "lower", "upper", "replace", "join",
    "first", "round", "int", "escape", "e", "safe", "trim",
}
ALLOWED_TESTS = {"defined", "undefined", "none"}


# --------------------------------------------------------------------------- lint

def lint(env):
    problems = []
    for name in sorted(os.listdir(TEMPLATES)):
        if not name.endswith(".html"):
            continue
        source = open(os.path.join(TEMPLATES, name), encoding="utf-8").read()
        ast = env.parse(source, name)
        for f in ast.find_all(nodes.Filter):
            if f.name not in ALLOWED_FILTERS:
                problems.append(f"{name}:{f.lineno}: filter '{f.name}' is not in the minijinja subset")
        for t in ast.find_all(nodes.Test):
            if t.name not in ALLOWED_TESTS:
                problems.append(f"{name}:{t.lineno}: test '{t.name}' is not in the minijinja subset")
        for _ in ast.find_all(nodes.FromImport):
            problems.append(f"{name}: use {{% import \"macros.html\" as m %}}, not from-import")
        for i, line in enumerate(source.splitlines(), 1):
            if re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", line, re.I):
                problems.append(f"{name}:{i}: external URL")
            # The portal's Content-Security-Policy allows only 'self' styles and scripts.
            if re.search(r"\sstyle=|<style|\son[a-z]+=|<script(?![^>]*\ssrc=)", line, re.I):
                problems.append(f"{name}:{i}: inline style, script or event handler (blocked by the CSP)")
    for name in os.listdir(STATIC):
        text = open(os.path.join(STATIC, name), encoding="utf-8").read()
        if re.search(r"https?://|url\(\s*['\"]?(?!data:)[a-z]", text):
            problems.append(f"static/{name}: external URL or url() reference")
    return problems


# ------------------------------------------------------------------ sample data

EVENT_TYPES = [
    {"name": "user.created", "description": "A user signed up.", "deprecated": False},
    {"name": "video.processed", "description": "A video finished fingerprinting and is searchable.", "deprecated": False},
    {"name": "match.found", "description": "A fingerprint matched a known recording.", "deprecated": False},
    {"name": "subscription.updated", "description": "A subscription changed plan or state.", "deprecated": False},
    {"name": "job.failed", "description": "A processing job failed for good.", "deprecated": False},
    {"name": "api_limit.reached", "description": "The account reached its API quota.", "deprecated": True},
    {"name": "endpoint.disabled", "description": "hookfleet disabled one of your webhooks (HTTP 410 or failing for days).", "deprecated": False},
]

LONG_URL = ("https://hooks.internal-integration-gateway.eu-west-3.example.com/api/v2/tenants/"
            "acme-production-workspace/incoming/webhooks/hookfleet?token=8f1d2c3b4a5e6f7081928374655647382910abcdef")


def schema_for(name):
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"}},
        "additionalProperties": True,
    }


def example_for(name):
    return {"id": "usr_01JDX3Q8M6", "email": "ada@example.com", "plan": "pro",
            "created_at": "2026-11-28T21:57:19Z", "type": name}


def health(rate, total, err=None, at=None):
    return {"success_rate": rate, "total": total, "last_error": err, "last_error_at": at}


WEBHOOKS = [
    {
        "id": "ep_01JDX3A1", "url": "https://api.acme.example.com/hooks/hookfleet",
        "description": "Production receiver", "events": ["user.created", "video.processed", "match.found"],
        "is_active": True, "circuit": "closed", "next_probe_at": None, "disabled_reason": None,
        "created_at": "2026-10-02T08:00:00Z", "updated_at": "2026-11-20T10:00:00Z",
        "rate_limit": 50, "max_in_flight": None, "ordering": "parallel",
        "health": health(0.9987, 1204, "HTTP 503", "2026-11-28T19:02:11Z"),
    },
    {
        "id": "ep_01JDX3B2", "url": LONG_URL, "description": "Integration gateway; owned by the data team, "
        "paged through #integrations. Keep the token in the query string in sync with the gateway's config.",
        "events": ["*"], "is_active": True, "circuit": "open", "next_probe_at": "2026-11-28T22:05:00Z",
        "disabled_reason": None, "created_at": "2026-10-02T08:00:00Z", "updated_at": "2026-11-20T10:00:00Z",
        "rate_limit": None, "max_in_flight": 4, "ordering": "fifo",
        "health": health(0.41, 88, "connect: connection refused (os error 111) while sending to 10.2.0.14:443", "2026-11-28T21:50:00Z"),
    },
    {
        "id": "ep_01JDX3C3", "url": "http://localhost:9000/webhook", "description": "",
        "events": ["job.failed"], "is_active": False, "circuit": "half_open", "next_probe_at": None,
        "disabled_reason": "Disabled automatically: the endpoint answered 410 Gone",
        "created_at": "2026-10-02T08:00:00Z", "updated_at": "2026-11-20T10:00:00Z",
        "rate_limit": None, "max_in_flight": None, "ordering": "parallel",
        "health": health(None, 0),
    },
]


def charts(empty=False):
    import math
    w, h = 600, 160
    n = 24
    counts = [0 if empty else int(40 + 30 * math.sin(i / 3) + (i % 5) * 7) for i in range(n)]
    top = max(counts) or 1
    step = w / n
    bars = [] if empty else [
        {"x": round(i * step + 2, 1), "y": round(h - c / top * (h - 4), 1), "w": round(step - 4, 1),
         "h": round(c / top * (h - 4), 1), "title": f"{i:02d}:00 — {c} deliveries"}
        for i, c in enumerate(counts)
    ]
    rates = [1.0, 1.0, .99, .98, 1.0, .97, .9, .85, .95, 1.0, 1.0, .99] * 2
    pts = [(round(i * (w / (n - 1)), 1), round(h - ((r - .8) / .2) * (h - 6) - 3, 1)) for i, r in enumerate(rates)]
    lat = [120 + 60 * math.sin(i / 2) + (i % 4) * 15 for i in range(n)]
    lpts = [(round(i * (w / (n - 1)), 1), round(h - l / 260 * (h - 6) - 3, 1)) for i, l in enumerate(lat)]

    def line(p):
        return "" if empty else " ".join(f"{x},{y}" for x, y in p)

    return [
        {"id": "deliveries", "title": "Deliveries", "summary": "0 deliveries" if empty else "1,204 deliveries",
         "y_max_label": "0" if empty else str(top), "x_start_label": "Nov 27, 22:00", "x_end_label": "Nov 28, 22:00",
         "width": w, "height": h, "bars": bars, "line": "", "dots": []},
        {"id": "success", "title": "Success rate", "summary": "—" if empty else "97.4%",
         "y_max_label": "100%", "x_start_label": "Nov 27, 22:00", "x_end_label": "Nov 28, 22:00",
         "width": w, "height": h, "bars": [], "line": line(pts),
         "dots": [] if empty else [{"x": x, "y": y, "title": f"{i:02d}:00 — {rates[i] * 100:.0f}%"} for i, (x, y) in enumerate(pts)]},
        {"id": "latency", "title": "p95 latency", "summary": "—" if empty else "182 ms",
         "y_max_label": "260 ms", "x_start_label": "Nov 27, 22:00", "x_end_label": "Nov 28, 22:00",
         "width": w, "height": h, "bars": [], "line": line(lpts),
         "dots": [] if empty else [{"x": x, "y": y, "title": f"{i:02d}:00 — {lat[i]:.0f} ms"} for i, (x, y) in enumerate(lpts)]},
    ]


def delivery(i, status, wh=WEBHOOKS[0], attempts=1):
    return {
        "id": f"dlv_01JDY{i:04d}", "event_id": f"evt_01JDY{i:04d}", "event_type": EVENT_TYPES[i % 5]["name"],
        "status": status, "attempt_count": attempts, "created_at": f"2026-11-28T21:{59 - i:02d}:19Z",
        "last_attempt_at": None if status == "pending" and attempts == 0 else f"2026-11-28T21:{59 - i:02d}:20Z",
        "next_attempt_at": "2026-11-28T22:10:00Z" if status in ("pending", "failed") else None,
        "webhook_id": wh["id"], "webhook_url": wh["url"],
    }


DELIVERIES = [
    delivery(0, "pending", attempts=0), delivery(1, "succeeded"), delivery(2, "failed", WEBHOOKS[1], 3),
    delivery(3, "succeeded"), delivery(4, "dead", WEBHOOKS[1], 30), delivery(5, "succeeded", WEBHOOKS[2]),
    delivery(6, "succeeded"), delivery(7, "failed", WEBHOOKS[2], 2),
]

STATS = {"window": "24h", "total": 1204, "by_status": {"succeeded": 1180, "failed": 12, "pending": 9, "dead": 3},
         "success_rate": 0.9802, "attempts": 1262, "latency_ms_p50": 84.2, "latency_ms_p95": 412.9}

GRACE = [{"value": "0s", "label": "none"}, {"value": "1h", "label": "1 hour"},
         {"value": "24h", "label": "24 hours"}, {"value": "168h", "label": "7 days"}]

ATTEMPTS = [
    {"attempt": 1, "status": "failed", "response_status_code": 503, "latency_ms": 1204,
     "error": "HTTP 503", "attempted_at": "2026-11-28T21:57:20Z",
     "response": "<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1>"
                 "<p>The server is temporarily unable to service your request due to maintenance downtime "
                 "or capacity problems. Please try again later.</p></body></html>"},
    {"attempt": 2, "status": "failed", "response_status_code": None, "latency_ms": 10000,
     "error": "timed out after 10 s waiting for the response headers from api.acme.example.com",
     "attempted_at": "2026-11-28T21:57:50Z", "response": None},
    {"attempt": 3, "status": "succeeded", "response_status_code": 200, "latency_ms": 84,
     "error": None, "attempted_at": "2026-11-28T21:58:55Z", "response": '{"ok":true}'},
]

PAYLOAD = {"id": "evt_01JDY0002", "type": "video.processed", "created_at": "2026-11-28T21:57:19Z",
           "data": {"video_id": "vid_8812", "duration_s": 312.5, "fingerprints": 1840,
                    "title": "A title with <angle brackets> & ampersands"}}

HEADERS = [
    {"name": "content-type", "value": "application/json"},
    {"name": "webhook-id", "value": "evt_01JDY0002"},
    {"name": "webhook-timestamp", "value": "1764367135"},
    {"name": "webhook-signature", "value": "v1,… (computed at each attempt)"},
    {"name": "x-acme-team", "value": "integrations"},
]

DEAD_LETTERS = [
    {"delivery_id": "dlv_01JDY0004", "event_id": "evt_01JDY0004", "endpoint_id": WEBHOOKS[1]["id"],
     "tenant_id": "acme", "event_type": "match.found", "attempts": 30, "last_error": "HTTP 500",
     "dead_at": "2026-11-28T20:00:00Z", "payload_bytes": 512, "webhook_url": WEBHOOKS[1]["url"]},
    {"delivery_id": "dlv_01JDY0009", "event_id": "evt_01JDY0009", "endpoint_id": WEBHOOKS[0]["id"],
     "tenant_id": "acme", "event_type": "user.created", "attempts": 12,
     "last_error": "connect: connection refused (os error 111)", "dead_at": "2026-11-27T03:10:00Z",
     "payload_bytes": 240, "webhook_url": WEBHOOKS[0]["url"]},
    {"delivery_id": "dlv_01JDY0010", "event_id": "evt_01JDY0010", "endpoint_id": WEBHOOKS[2]["id"],
     "tenant_id": "acme", "event_type": "job.failed", "attempts": 1, "last_error": None,
     "dead_at": None, "payload_bytes": 90, "webhook_url": WEBHOOKS[2]["url"]},
]


def common(nav, title, tenant="acme-production", **extra):
    ctx = {"base": BASE, "csrf": "csrf-token-123", "nav": nav, "title": title}
    if tenant is not None:
        ctx["tenant_id"] = tenant
    ctx.update(extra)
    return ctx


def webhooks_min():
    return [{"id": w["id"], "url": w["url"]} for w in WEBHOOKS]


def catalog_full():
    return [dict(t, schema_pretty=json.dumps(schema_for(t["name"]), indent=2),
                 example_pretty=json.dumps(example_for(t["name"]), indent=2)) for t in EVENT_TYPES]


def samples():
    """(output name, template, context). The first of each template is the plain <page>.html."""
    w0, w1 = WEBHOOKS[0], WEBHOOKS[1]
    return [
        ("login", "login.html", common("", "Sign in", tenant=None)),
        ("login--error", "login.html", common("", "Sign in", tenant=None, error="That API key is not valid, or it was revoked.",
                                              form={"api_key": "hfk_wrong"}, errors={"api_key": "Unknown API key"})),
        ("message", "message.html", common("", "Link expired", tenant=None, heading="This portal link has expired",
                                           message="Portal links are valid for a short time. Ask for a new one, or sign in with an API key.",
                                           link={"href": BASE + "/login", "text": "Sign in"})),
        ("message--forbidden", "message.html", common("", "Not found", heading="Not found",
                                                      message="There is no webhook ep_01JDX3ZZ in this tenant.")),
        ("webhooks", "webhooks.html", common("webhooks", "Webhooks", webhooks=WEBHOOKS, range="day", charts=charts(),
                                             flash={"kind": "ok", "text": "Webhook created."})),
        ("webhooks--empty", "webhooks.html", common("webhooks", "Webhooks", webhooks=[], range="hour", charts=charts(empty=True))),
        ("webhook_form", "webhook_form.html", common("webhooks", "New webhook", event_types=EVENT_TYPES,
                                                     form={"url": None, "description": None, "events": [], "rate_limit": None,
                                                           "max_in_flight": None, "ordering": None}, errors={})),
        ("webhook_form--errors", "webhook_form.html", common(
            "webhooks", "New webhook", event_types=EVENT_TYPES,
            form={"url": "ftp://nope", "description": "x" * 40, "events": [], "rate_limit": "0",
                  "max_in_flight": "5000", "ordering": "fifo"},
            errors={"url": "must be an http or https URL", "events": "choose at least one event type",
                    "rate_limit": "must be between 1 and 100000", "max_in_flight": "must be between 1 and 1000"})),
        ("webhook_form--edit", "webhook_form.html", common(
            "webhooks", "Edit webhook", event_types=EVENT_TYPES, webhook=w1,
            form={"url": w1["url"], "description": w1["description"], "events": ["*"], "rate_limit": None,
                  "max_in_flight": "4", "ordering": "fifo"})),
        ("webhook", "webhook.html", common(
            "webhooks", w0["url"], webhook=w0, stats=STATS,
            secret={"key": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw0123456789ab",
                    "previous": [{"key": "whsec_oldOldOLD9r8GKYqrTwjUPD8ILPZIo2LaL", "expires_at": "2026-11-29T21:57:19Z"}]},
            deliveries=[d for d in DELIVERIES if d["webhook_id"] == w0["id"]] + DELIVERIES[:4],
            event_types=EVENT_TYPES, grace_options=GRACE, recover_default="2026-11-27T21:57",
            flash={"kind": "ok", "text": "Secret rotated. The old secret keeps signing until 2026-11-29 21:57 UTC."})),
        ("webhook--plain", "webhook.html", common(
            "webhooks", w1["url"], webhook=dict(w1, is_active=False, disabled_reason="Paused by you"),
            stats={"window": "24h", "total": 0, "by_status": {}, "success_rate": None, "attempts": 0,
                   "latency_ms_p50": None, "latency_ms_p95": None},
            deliveries=[], event_types=EVENT_TYPES, grace_options=GRACE, recover_default="2026-11-27T21:57",
            flash={"kind": "error", "text": "The test event could not be published: the broker is unavailable."})),
        ("delete", "delete.html", common("webhooks", "Delete webhook", webhook=w0)),
        ("delete--error", "delete.html", common("webhooks", "Delete webhook", webhook=w1,
                                                errors={"confirm": "Tick the box to confirm."})),
        ("deliveries", "deliveries.html", common(
            "deliveries", "Deliveries", deliveries=DELIVERIES, webhooks=webhooks_min(), event_types=EVENT_TYPES,
            statuses=["pending", "succeeded", "failed", "dead"],
            filters={"webhook": "", "status": "", "event_type": "", "since": "", "until": ""}, errors={},
            next=BASE + "/deliveries?before=dlv_01JDY0007")),
        ("deliveries--empty", "deliveries.html", common(
            "deliveries", "Deliveries", deliveries=[], webhooks=webhooks_min(), event_types=EVENT_TYPES,
            statuses=["pending", "succeeded", "failed", "dead"],
            filters={"webhook": w0["id"], "status": "bogus", "event_type": "", "since": "2026-11-29T10:00", "until": "2026-11-28T10:00"},
            errors={"status": "unknown status 'bogus'", "until": "must be after since"})),
        ("delivery", "delivery.html", common(
            "deliveries", "Delivery dlv_01JDY0002",
            delivery=dict(DELIVERIES[2], status="pending", attempt_count=3, attempts=ATTEMPTS, payload=PAYLOAD),
            webhook=w1, payload_pretty=json.dumps(PAYLOAD, indent=2), headers_sent=HEADERS)),
        ("delivery--new", "delivery.html", common(
            "deliveries", "Delivery dlv_01JDY0000",
            delivery=dict(DELIVERIES[0], attempts=[], payload=PAYLOAD), webhook=w0,
            payload_pretty=json.dumps(PAYLOAD, indent=2),
            headers_sent=[dict(h, value="set at each attempt") if h["name"] == "webhook-timestamp" else h for h in HEADERS],
            flash={"kind": "ok", "text": "Delivery queued again."})),
        ("dead_letters", "dead_letters.html", common(
            "dead_letters", "Dead letters", dead_letters=DEAD_LETTERS, webhooks=webhooks_min(), event_types=EVENT_TYPES,
            filters={"webhook": "", "event_type": ""},
            report={"replayed": 2, "skipped": 1, "message": "Replayed 2 dead letters; 1 was already replayed."})),
        ("dead_letters--empty", "dead_letters.html", common(
            "dead_letters", "Dead letters", dead_letters=[], webhooks=webhooks_min(), event_types=EVENT_TYPES,
            filters={"webhook": w0["id"], "event_type": "user.created"})),
        ("events", "events.html", common("events", "Event catalog", event_types=catalog_full())),
        ("events--empty", "events.html", common("events", "Event catalog", event_types=[])),
        # "--bare": every optional key left out, to prove the templates guard them.
        ("login--bare", "login.html", {"base": BASE, "csrf": "c"}),
        ("message--bare", "message.html", {"base": BASE, "heading": "Forbidden"}),
        ("webhooks--bare", "webhooks.html", common("webhooks", "Webhooks",
                                                   webhooks=[{k: v for k, v in w.items() if k != "health"} for w in WEBHOOKS])),
        ("webhook_form--bare", "webhook_form.html", common("webhooks", "New webhook", event_types=EVENT_TYPES)),
        ("webhook--bare", "webhook.html", common("webhooks", "Webhook",
                                                 webhook={k: v for k, v in w0.items() if k not in ("health", "ordering")})),
        ("delete--bare", "delete.html", common("webhooks", "Delete webhook", webhook=w0)),
        ("deliveries--bare", "deliveries.html", common("deliveries", "Deliveries", deliveries=DELIVERIES[:2])),
        ("delivery--bare", "delivery.html", common("deliveries", "Delivery",
                                                   delivery={k: v for k, v in DELIVERIES[1].items()}, webhook=w0)),
        ("dead_letters--bare", "dead_letters.html", common("dead_letters", "Dead letters", dead_letters=DEAD_LETTERS[:1])),
        ("events--bare", "events.html", common("events", "Event catalog",
                                               event_types=[{"name": t["name"]} for t in EVENT_TYPES[:2]])),
    ]


# ------------------------------------------------------------------ rendering

def render_all(env):
    if os.path.isdir(OUT):
        for name in os.listdir(OUT):
            if name.endswith(".html"):
                os.remove(os.path.join(OUT, name))
    os.makedirs(os.path.join(OUT, "static"), exist_ok=True)
    for name in os.listdir(STATIC):
        shutil.copy(os.path.join(STATIC, name), os.path.join(OUT, "static", name))

    seen = set()
    pages = []
    for out_name, template, ctx in samples():
        html = env.get_template(template).render(**ctx)
        html = html.replace(f'"{BASE}/static/', '"static/')
        path = os.path.join(OUT, out_name + ".html")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(html)
        seen.add(template)
        pages.append(path)
    missing = [t for t in os.listdir(TEMPLATES)
               if t.endswith(".html") and t not in seen and t not in ("base.html", "macros.html")]
    if missing:
        sys.exit(f"templates without a sample context: {missing}")
    index = "".join(f'<li><a href="{os.path.basename(p)}">{os.path.basename(p)}</a></li>' for p in pages)
    with open(os.path.join(OUT, "index.html"), "w", encoding="utf-8") as fh:
        fh.write(f"<!doctype html><meta charset=utf-8><title>portal preview</title><ul>{index}</ul>")
    return pages


# ----------------------------------------------------- minijinja cross-check

def _normalized(text):
    """Markup-insensitive lines: minijinja escapes "/" as &#x2f;, jinja2 does not."""
    text = re.sub(r">\s+<", ">\n<", text)
    return [html.unescape(line.strip()) for line in text.splitlines() if line.strip()]


def cross_check():
    """Render every sample with the real MiniJinja engine too (its Python binding,
    `pip install minijinja`), in its default lenient mode, and compare."""
    try:
        import minijinja
    except ImportError:
        print("minijinja (pip install minijinja) not installed: skipped the cross-check with the Rust engine")
        return True
    env = minijinja.Environment(
        loader=minijinja.load_from_path(TEMPLATES),
        auto_escape_callback=lambda name: name.endswith(".html"),
    )
    ok = True
    for out_name, template, ctx in samples():
        try:
            theirs = env.render_template(template, **ctx)
        except Exception as exc:  # noqa: BLE001
            print(f"minijinja: {out_name}: {exc}")
            ok = False
            continue
        ours = open(os.path.join(OUT, out_name + ".html"), encoding="utf-8").read()
        ours = ours.replace('"static/', f'"{BASE}/static/')
        diff = [line for line in difflib.unified_diff(_normalized(ours), _normalized(theirs), lineterm="", n=0)
                if not line.startswith(("---", "+++", "@@"))]
        if diff:
            ok = False
            print(f"minijinja: {out_name}: output differs from jinja2:")
            print("\n".join("    " + line[:200] for line in diff[:20]))
    if ok:
        print(f"minijinja {getattr(minijinja, '__version__', '')}".rstrip() + ": every sample renders the same")
    return ok


# ---------------------------------------------------------------- screenshots

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
    "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-default-apps", "--disable-extensions", "--disable-breakpad",
    "--disable-domain-reliability", "--metrics-recording-only", "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


def chromium(args, profile):
    cmd = [os.environ.get("CHROMIUM", "/usr/bin/chromium")] + CHROMIUM_FLAGS + [f"--user-data-dir={profile}"] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def page_height(path, width, profile):
    """Lay the page out in an iframe of the given width and read its full height.

    (A headless window narrower than 500 px is widened for --dump-dom, so the
    probe cannot measure the page in its own window.)"""
    probe = os.path.join(os.path.dirname(path), "_probe.html")
    with open(probe, "w", encoding="utf-8") as fh:
        fh.write(
            "<!doctype html><body style='margin:0'>"
            f"<iframe id=f src='{os.path.basename(path)}' style='border:0;width:{width}px;height:200px'></iframe>"
            "<script>document.getElementById('f').onload=function(){var f=this;setTimeout(function(){"
            "var d=f.contentDocument;document.body.setAttribute('data-height',"
            "Math.ceil(Math.max(d.documentElement.scrollHeight,d.body.scrollHeight)))},100)}</script></body>")
    try:
        res = chromium(["--window-size=1400,800", "--allow-file-access-from-files", "--virtual-time-budget=1500",
                        "--dump-dom", "file://" + probe], profile)
    finally:
        os.remove(probe)
    m = re.search(r'data-height="(\d+)"', res.stdout)
    return max(300, min(int(m.group(1)), 8000)) if m else 2000


def screenshots(pages, widths):
    shots = os.path.join(OUT, "shots")
    os.makedirs(shots, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="portal-preview-chromium-")
    try:
        for path in pages:
            for width in widths:
                height = page_height(path, width, profile)
                png = os.path.join(shots, f"{os.path.basename(path)[:-5]}@{width}.png")
                res = chromium([f"--window-size={width},{height}", "--virtual-time-budget=1000",
                                f"--screenshot={png}", "file://" + path], profile)
                status = "ok" if os.path.exists(png) and res.returncode == 0 else f"FAILED ({res.stderr.strip()[-200:]})"
                print(f"  {os.path.relpath(png, ROOT)} {width}x{height} {status}")
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shots", action="store_true", help="screenshot every page with headless Chromium")
    ap.add_argument("--widths", default="360,1280", help="screenshot widths (default 360,1280)")
    ap.add_argument("--only", default="", help="screenshot only pages whose name contains this")
    args = ap.parse_args()

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.Undefined,  # like minijinja's lenient default
        keep_trailing_newline=True,
    )
    problems = lint(env)
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    pages = render_all(env)
    print(f"rendered {len(pages)} pages into {os.path.relpath(OUT, ROOT)}/")
    if not cross_check():
        sys.exit(1)
    if args.shots:
        chosen = [p for p in pages if args.only in os.path.basename(p)]
        screenshots(chosen, [int(w) for w in args.widths.split(",")])


if __name__ == "__main__":
    main()
