"""The publisher marshals its frames itself: the bytes must be pika's."""
from __future__ import annotations

import pytest
from pika import frame, spec

from hookfleet_emit._frames import publish_frames
from hookfleet_emit._spill import Pending


@pytest.mark.parametrize("size", [0, 10, 100, 250])
def test_the_frames_are_pikas(size: int) -> None:
    body = b"{" + b"x" * size + b"}"
    p = Pending("match.found", "evt_01ABC", body, 0)
    want = (
        frame.Method(3, spec.Basic.Publish(exchange="hookfleet.events", routing_key="match.found",
                                           mandatory=True)).marshal()
        + frame.Header(3, len(body), spec.BasicProperties(
            content_type="application/json", delivery_mode=2, message_id="evt_01ABC")).marshal()
    )
    for start in range(0, len(body), 100):  # a frame size of 108: 100 body bytes a frame
        want += frame.Body(3, body[start:start + 100]).marshal()
    assert publish_frames(3, p, 100) == want


def test_overlong_names_are_refused() -> None:
    with pytest.raises(ValueError):
        publish_frames(1, Pending("t" * 256, "id", b"{}", 0), 1000)
