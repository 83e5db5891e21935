"""The platform's flow through a Python client generated from the served OpenAPI
document by openapi-python-client (issue #18): create a tenant and two webhooks
for it, publish an event, list its deliveries, replay the dead letter that one
webhook's receiver caused, and check the outcome.

Run by tests/e2e/openapi_client.rs, which starts the API, router, worker and two
receivers, fetches the document, generates the client and sets:

  HOOKFLEET_TEST_API         the API's base URL
  HOOKFLEET_TEST_ADMIN_KEY   the admin key
  HOOKFLEET_CLIENT_PATH      the folder that holds the generated package
  HOOKFLEET_CLIENT_PACKAGE   the generated package's name
  HOOKFLEET_DOCUMENT         the document the client was generated from (a file)
  RECEIVER_OK                a receiver that answers 200
  RECEIVER_FLAKY             a receiver that answers 500 to the first request of
                             each webhook-id, then 200

Every call goes through the generated functions and models: nothing here speaks
raw HTTP. The script finds each operation in the generated package by its
method and path, not by the operationId or tag the document happens to use, so
it works with any document that describes the same API. The tenant is
addressed with the admin key and the `Hookfleet-Tenant` header when the
document declares that header, else through an API key minted for the tenant.

Prints one JSON line on stdout for the Rust test: the ids and secrets it needs
to check what the receivers got.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import json
import os
import pkgutil
import re
import sys
import time
import typing
import uuid
from typing import Any, Callable

API = os.environ["HOOKFLEET_TEST_API"]
ADMIN_KEY = os.environ["HOOKFLEET_TEST_ADMIN_KEY"]
PACKAGE = os.environ.get("HOOKFLEET_CLIENT_PACKAGE", "hookfleet_client")
sys.path.insert(0, os.environ["HOOKFLEET_CLIENT_PATH"])
with open(os.environ["HOOKFLEET_DOCUMENT"], encoding="utf-8") as f:
    DOCUMENT: dict[str, Any] = json.load(f)

client_pkg = importlib.import_module(PACKAGE)
AuthenticatedClient = client_pkg.AuthenticatedClient

TENANT_HEADER = "hookfleet-tenant"
DEADLINE = 90.0  # seconds to wait for the router and worker at each step


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- finding operations in the generated package ----------------------------

_METHOD = re.compile(r'"method":\s*"(\w+)"')
_URL = re.compile(r'"url":\s*(?:f?)"([^"]+)"')
_PLACEHOLDER = re.compile(r"\{([^}]+)\}")


def _shape(path: str) -> str:
    return _PLACEHOLDER.sub("{}", path)


def _index() -> dict[tuple[str, str], Any]:
    """(METHOD, path with `{}` for each parameter) -> generated module."""
    api = importlib.import_module(f"{PACKAGE}.api")
    found: dict[tuple[str, str], Any] = {}
    for info in pkgutil.walk_packages(api.__path__, prefix=f"{PACKAGE}.api."):
        if info.ispkg:
            continue
        mod = importlib.import_module(info.name)
        src = inspect.getsource(mod._get_kwargs)
        m, u = _METHOD.search(src), _URL.search(src)
        if m and u:
            found[(m.group(1).upper(), _shape(u.group(1)))] = mod
    return found


OPS = _index()


def _doc_operation(method: str, path: str) -> dict[str, Any]:
    for p, item in DOCUMENT.get("paths", {}).items():
        if _shape(p) == _shape(path) and method.lower() in item:
            op = dict(item[method.lower()])
            op["parameters"] = list(item.get("parameters", [])) + list(
                op.get("parameters", [])
            )
            return op
    raise AssertionError(f"the document has no {method} {path}")


def _deref(obj: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in obj:
        node: Any = DOCUMENT
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def _declares_tenant_header(op: dict[str, Any]) -> bool:
    return any(
        p.get("in") == "header" and p.get("name", "").lower() == TENANT_HEADER
        for p in (_deref(x) for x in op.get("parameters", []))
    )


def _tenant_header_scheme() -> bool:
    schemes = DOCUMENT.get("components", {}).get("securitySchemes", {})
    return any(
        s.get("type") == "apiKey"
        and s.get("in") == "header"
        and s.get("name", "").lower() == TENANT_HEADER
        for s in (_deref(x) for x in schemes.values())
    )


def _model_type(annotation: Any) -> type:
    """The generated model class of a `body` parameter (the first, for a union)."""
    candidates = [annotation, *typing.get_args(annotation)]
    for c in candidates:
        if isinstance(c, type) and hasattr(c, "from_dict"):
            return c
    raise AssertionError(f"the body is not a generated model: {annotation!r}")


def _typed_value(annotation: Any, value: Any) -> Any:
    """A query value as the generated function wants it: an enum member when
    the parameter is one of the generated enums."""
    for c in [annotation, *typing.get_args(annotation)]:
        if isinstance(c, type) and issubclass(c, enum.Enum):
            return c(value)
    return value


def _check_typed(value: Any, what: str) -> None:
    """A documented answer parses into one of the generated models."""
    mod = type(value).__module__
    assert mod.startswith(f"{PACKAGE}.models"), (
        f"{what}: the answer parsed as {type(value).__name__} from {mod}, "
        "not a generated model (its response schema is missing or untyped)"
    )


class Scope:
    """How the platform acts for the tenant."""

    def __init__(self, client: Any, header: str | None, mode: str) -> None:
        self.client = client
        self.header = header  # the tenant id to send as Hookfleet-Tenant
        self.mode = mode


def call(
    scope: Scope | Any,
    method: str,
    path: str,
    *path_args: str,
    expect: int,
    body: dict[str, Any] | None = None,
    **query: Any,
) -> Any:
    """Calls the generated function for METHOD path with its typed body model;
    checks the status and returns the parsed model."""
    mod = OPS.get((method, _shape(path)))
    assert mod is not None, f"no generated function for {method} {path}"
    fn: Callable[..., Any] = mod.sync_detailed
    params = inspect.signature(fn).parameters
    # Path parameters are the positional ones, in the URL's order.
    src = inspect.getsource(mod._get_kwargs)
    url = _URL.search(src)
    assert url is not None
    names = _PLACEHOLDER.findall(url.group(1))
    fmt = dict(re.findall(r"(\w+)=quote\(str\((\w+)\)", src))
    kwargs: dict[str, Any] = {}
    assert len(names) == len(path_args), f"{method} {path}: {names} vs {path_args}"
    for placeholder, value in zip(names, path_args):
        kwargs[fmt.get(placeholder, placeholder)] = value
    client = scope.client if isinstance(scope, Scope) else scope
    if isinstance(scope, Scope) and scope.header is not None:
        header_param = next(
            (n for n in params if n.replace("_", "-").lower() == TENANT_HEADER), None
        )
        if header_param is not None:
            kwargs[header_param] = scope.header
        elif _declares_tenant_header(_doc_operation(method, path)):
            raise AssertionError(f"{method} {path} declares Hookfleet-Tenant, the client lost it")
        else:
            # Declared as a security scheme (or not on this operation): the
            # client's own headers carry it.
            client = client.with_headers({"Hookfleet-Tenant": scope.header})
    if body is not None:
        kwargs["body"] = _model_type(params["body"].annotation).from_dict(body)
    for k, v in query.items():
        assert k in params, f"{method} {path} has no parameter {k} ({list(params)})"
        kwargs[k] = _typed_value(params[k].annotation, v)
    resp = fn(client=client, **kwargs)
    assert resp.status_code == expect, (
        f"{method} {path}: {resp.status_code} (expected {expect}): {resp.content[:500]!r}"
    )
    if resp.content:
        assert resp.parsed is not None, f"{method} {path}: {resp.status_code} is undocumented"
        _check_typed(resp.parsed, f"{method} {path} {resp.status_code}")
    return resp.parsed


def wait(what: str, cond: Callable[[], Any]) -> Any:
    end = time.monotonic() + DEADLINE
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def enum_value(v: Any) -> Any:
    return getattr(v, "value", v)


# --- the flow ------------------------------------------------------------------


def main() -> None:
    admin = AuthenticatedClient(base_url=API, token=ADMIN_KEY, raise_on_unexpected_status=True)
    tenant_id = f"acme-{uuid.uuid4().hex[:12]}"

    tenant = call(admin, "POST", "/api/v1/tenants", expect=201, body={"id": tenant_id})
    assert tenant.id == tenant_id

    webhooks_op = _doc_operation("POST", "/api/v1/webhooks")
    if _declares_tenant_header(webhooks_op) or _tenant_header_scheme():
        scope = Scope(admin, tenant_id, "header")
    else:
        key = call(admin, "POST", "/api/v1/tenants/{id}/api-keys", tenant_id, expect=201)
        assert key.tenant_id == tenant_id and key.key
        tenant_client = AuthenticatedClient(
            base_url=API, token=key.key, raise_on_unexpected_status=True
        )
        scope = Scope(tenant_client, None, "key")
    log(f"acting for the tenant with: {scope.mode}")

    ok = call(
        scope,
        "POST",
        "/api/v1/webhooks",
        expect=201,
        body={"url": os.environ["RECEIVER_OK"], "events": ["user.created"], "description": "ok"},
    )
    flaky = call(
        scope,
        "POST",
        "/api/v1/webhooks",
        expect=201,
        body={"url": os.environ["RECEIVER_FLAKY"], "events": ["user.created"]},
    )
    for w in (ok, flaky):
        assert w.tenant_id == tenant_id, f"the webhook is {w.tenant_id!r}'s"
        assert w.id
    secrets = {
        w.id: call(scope, "GET", "/api/v1/webhooks/{id}/secret", w.id, expect=200).key
        for w in (ok, flaky)
    }

    envelope: dict[str, Any] = {
        "type": "user.created",
        "data": {"user_id": 1001, "username": "ada"},
    }
    if scope.mode == "header":
        envelope["tenant_id"] = tenant_id
    accepted = call(scope, "POST", "/api/v1/events", expect=202, body=envelope)
    event_id = accepted.id
    assert event_id

    # The delivery to the webhook whose receiver answers 200.
    def delivered() -> Any:
        page = call(
            scope, "GET", "/api/v1/webhooks/{id}/deliveries", ok.id, expect=200, status="succeeded"
        )
        return [d for d in page.data if d.event_id == event_id]

    (delivery,) = wait("the delivery to succeed", delivered)
    assert enum_value(delivery.status) == "succeeded"
    assert delivery.event_type == "user.created"
    one = call(
        scope, "GET", "/api/v1/webhooks/{id}/deliveries/{delivery_id}", ok.id, delivery.id, expect=200
    )
    assert one.id == delivery.id and one.attempt_count == 1
    assert [a.response_status_code for a in one.attempts] == [200]

    # The other one's first (and only) attempt got a 500: a dead letter.
    def dead() -> Any:
        page = call(scope, "GET", "/api/v1/dead-letters", expect=200, endpoint_id=flaky.id)
        return [d for d in page.data if d.event_id == event_id]

    (letter,) = wait("the dead letter to be kept", dead)
    assert letter.tenant_id == tenant_id and letter.attempts == 1
    assert letter.last_error == "HTTP 500", letter.last_error
    shown = call(scope, "GET", "/api/v1/dead-letters/{delivery_id}", letter.delivery_id, expect=200)
    assert shown.payload is not None and shown.payload["id"] == event_id

    # A dry run counts it; the replay sends it again.
    counted = call(
        scope,
        "POST",
        "/api/v1/dead-letters/replay",
        expect=200,
        body={"delivery_id": letter.delivery_id, "dry_run": True},
    )
    assert counted.dry_run and counted.matched == 1, counted
    replay = call(
        scope,
        "POST",
        "/api/v1/dead-letters/replay",
        expect=202,
        body={"delivery_id": letter.delivery_id},
    )

    def finished() -> Any:
        r = call(scope, "GET", "/api/v1/dead-letters/replays/{id}", replay.id, expect=200)
        return r if enum_value(r.status) != "running" else None

    done = wait("the replay to finish", finished)
    assert enum_value(done.status) == "done", done
    assert (done.matched, done.replayed, done.skipped) == (1, 1, 0), done

    def redelivered() -> Any:
        page = call(
            scope,
            "GET",
            "/api/v1/webhooks/{id}/deliveries",
            flaky.id,
            expect=200,
            status="succeeded",
        )
        return [d for d in page.data if d.event_id == event_id]

    (again,) = wait("the replayed delivery to succeed", redelivered)
    assert again.id == letter.delivery_id
    assert not dead(), "the replayed dead letter is no longer kept"

    print(
        json.dumps(
            {
                "mode": scope.mode,
                "tenant": tenant_id,
                "event_id": event_id,
                "ok": {"id": ok.id, "secret": secrets[ok.id]},
                "flaky": {"id": flaky.id, "secret": secrets[flaky.id]},
            }
        )
    )


if __name__ == "__main__":
    main()
