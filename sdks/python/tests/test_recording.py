"""Recording mode: the events stay in memory, and each is checked against the
wire contract and its catalog schema, so a producer's test catches an invalid
event before production."""
from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest

import hookfleet_emit
from hookfleet_emit import Emitter, InvalidEvent
from hookfleet_emit._catalog import SCHEMAS

REPO = os.path.join(os.path.dirname(__file__), "..", "..", "..")


def test_assert_emitted(hookfleet_recorder: Emitter) -> None:
    hookfleet_emit.emit_match_found(42, "q", "m", 0.95, tenant_id="acme")
    ev = hookfleet_recorder.assert_emitted("match.found", match_id=42, matched_video_id="m")
    assert (ev.tenant_id, ev.data["confidence"]) == ("acme", 0.95)
    assert ev.id.startswith("evt_") and ev.timestamp.endswith("Z")
    hookfleet_recorder.assert_not_emitted("job.failed")
    with pytest.raises(AssertionError, match="match_id"):
        hookfleet_recorder.assert_emitted("match.found", match_id=43)
    assert hookfleet_recorder.metrics().confirmed == 1
    assert hookfleet_recorder.flush(0)


@pytest.mark.parametrize(
    "call, reason",
    [
        (lambda: hookfleet_emit.emit_match_found(1, "q", "m", "high"),
         "at /confidence: 'high' is not of type 'number'"),
        (lambda: hookfleet_emit.emit_match_found(1, "q", "m", 1.5), "at /confidence: 1.5 is greater"),
        (lambda: hookfleet_emit.emit("match.found", {"match_id": 1, "query_video_id": "q",
                                                     "matched_video_id": "m"}),
         "at /: 'confidence' is a required property"),
        (lambda: hookfleet_emit.emit_api_limit_reached(1, "calls", 1.5, 2),
         "at /current_usage: 1.5 is not of type 'integer'"),
        (lambda: hookfleet_emit.emit_user_created(1, "ada", tenant_id="a b"), "field `tenant_id`"),
        (lambda: hookfleet_emit.emit("invoice paid", {}), "field `type`"),
        (lambda: hookfleet_emit.emit("user.created", [1]), "field `data` is invalid"),  # type: ignore[arg-type]
        (lambda: hookfleet_emit.emit("user.created", {"user_id": object()}), "the event is invalid"),
        (lambda: hookfleet_emit.emit_user_created(1, "ada", tenant_id=7), "must be strings"),  # type: ignore[arg-type]
        (lambda: hookfleet_emit.emit_user_created(1, "a\x00b"), "\\\\u0000"),
        (lambda: hookfleet_emit.emit_user_created(1, "x" * 300_000), "exceeds the limit"),
    ],
)
def test_an_invalid_event_is_caught(hookfleet_recorder: Emitter, call: Any, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=re.escape(reason) if "\\" not in reason else reason):
        call()
    assert hookfleet_recorder.recorded() == []


def test_unknown_types_are_checked_for_the_envelope_only() -> None:
    rec = Emitter.recording()
    rec.emit("invoice.paid", {"anything": 1})
    assert rec.recorded_of_type("invoice.paid")[0].data == {"anything": 1}


def test_the_schemas_are_the_catalog_migrations() -> None:
    sql = open(os.path.join(REPO, "migrations", "V2__soundhash_catalog.sql")).read()
    rows = re.findall(r"\('([a-z_.]+)', '[^']*',\s*'(\{.*?\})',\s*'\{", sql, re.S)
    assert {name: json.loads(schema) for name, schema in rows} == SCHEMAS
