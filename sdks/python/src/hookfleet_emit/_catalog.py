"""The wire contract's checks and the SoundHash catalog, for recording mode.

`check(event_type, tenant_id, event_id, data, body_len)` raises `InvalidEvent`
for an event the router would quarantine: a bad envelope field, a payload over
256 KiB, or `data` that breaks its catalog schema. The six schemas are copied
from migrations/V2__soundhash_catalog.sql (a test keeps them equal), and the
validator covers the keywords they use: `type`, `required`, `properties`,
`minimum`, `maximum` (`format` is an annotation, as in draft 2020-12).
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

MAX_PAYLOAD_BYTES = 262_144

_TOKEN = re.compile(r"[A-Za-z0-9._-]+\Z")
_ID = re.compile(r"[A-Za-z0-9._:-]+\Z")

_ID_T = {"type": ["integer", "string"]}

SCHEMAS: Dict[str, Dict[str, Any]] = {
    "match.found": {
        "type": "object",
        "required": ["match_id", "query_video_id", "matched_video_id", "confidence"],
        "properties": {
            "match_id": _ID_T,
            "query_video_id": _ID_T,
            "matched_video_id": _ID_T,
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "segment_start": {"type": ["number", "null"]},
            "segment_end": {"type": ["number", "null"]},
        },
    },
    "video.processed": {
        "type": "object",
        "required": ["video_id"],
        "properties": {
            "video_id": _ID_T,
            "video_url": {"type": ["string", "null"]},
            "title": {"type": ["string", "null"]},
            "duration": {"type": ["number", "null"]},
            "fingerprint_count": {"type": ["integer", "null"]},
            "processing_time_seconds": {"type": ["number", "null"]},
        },
    },
    "job.failed": {
        "type": "object",
        "required": ["job_id", "job_type", "error_message"],
        "properties": {
            "job_id": _ID_T,
            "job_type": {"type": "string"},
            "target_id": {"type": ["integer", "string", "null"]},
            "error_message": {"type": "string"},
            "attempt_count": {"type": ["integer", "null"]},
        },
    },
    "user.created": {
        "type": "object",
        "required": ["user_id", "username"],
        "properties": {
            "user_id": _ID_T,
            "username": {"type": "string"},
            "email": {"type": ["string", "null"]},
        },
    },
    "subscription.updated": {
        "type": "object",
        "required": ["subscription_id", "user_id", "plan_tier", "status"],
        "properties": {
            "subscription_id": _ID_T,
            "user_id": _ID_T,
            "plan_tier": {"type": "string"},
            "status": {"type": "string"},
            "previous_plan": {"type": ["string", "null"]},
        },
    },
    "api_limit.reached": {
        "type": "object",
        "required": ["user_id", "limit_type", "current_usage", "limit_value"],
        "properties": {
            "user_id": _ID_T,
            "limit_type": {"type": "string"},
            "current_usage": {"type": "integer"},
            "limit_value": {"type": "integer"},
            "reset_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
}


class InvalidEvent(AssertionError):
    """An event the router would quarantine (raised in recording mode only)."""


def _is_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    return True


def schema_errors(schema: Dict[str, Any], value: Any, path: str = "") -> List[str]:
    """The first errors of `value` against `schema`, each `at /pointer: reason`."""
    where = path or "/"
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is_type(value, t) for t in names):
            return [f"at {where}: {value!r} is not of type {' or '.join(repr(t) for t in names)}"]
    errors: List[str] = []
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"at {where}: {value!r} is less than the minimum of {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"at {where}: {value!r} is greater than the maximum of {schema['maximum']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"at {where}: {name!r} is a required property")
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                errors.extend(schema_errors(sub, value[name], f"{path}/{name}"))
    return errors


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def check(
    event_type: str, tenant_id: Optional[str], event_id: str, data: Any, body_len: int
) -> None:
    """Raises `InvalidEvent` naming the field, as the router's reason would."""
    if not isinstance(event_type, str) or not _TOKEN.match(event_type) or len(event_type) > 128:
        raise InvalidEvent(
            f"field `type` is invalid: {event_type!r} must be 1-128 characters of letters, digits, `.`, `_` or `-`"
        )
    if tenant_id is not None and (
        not isinstance(tenant_id, str) or not _TOKEN.match(tenant_id) or len(tenant_id) > 64
    ):
        raise InvalidEvent(
            f"field `tenant_id` is invalid: {tenant_id!r} must be 1-64 characters of letters, digits, `.`, `_` or `-`"
        )
    if not isinstance(event_id, str) or not _ID.match(event_id) or len(event_id) > 128:
        raise InvalidEvent(
            f"field `id` is invalid: {event_id!r} must be 1-128 characters of letters, digits, `.`, `_`, `-` or `:`"
        )
    if not isinstance(data, dict):
        raise InvalidEvent("field `data` is invalid: must be a JSON object")
    if _has_nul(data):
        raise InvalidEvent("field `data` is invalid: holds \\u0000, which PostgreSQL cannot store")
    if body_len > MAX_PAYLOAD_BYTES:
        raise InvalidEvent(
            f"payload of {body_len} bytes exceeds the limit of {MAX_PAYLOAD_BYTES} bytes"
        )
    schema = SCHEMAS.get(event_type)
    if schema is not None:
        errors = schema_errors(schema, data)
        if errors:
            raise InvalidEvent(
                f"field `data` does not match the schema of `{event_type}`: {errors[0]}"
            )
