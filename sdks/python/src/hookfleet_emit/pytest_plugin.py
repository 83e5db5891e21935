"""The `hookfleet_recorder` fixture: the default emitter records for the test.

Enabled by installing the package (a pytest11 entry point), or with
`pytest_plugins = ["hookfleet_emit.pytest_plugin"]` in a conftest.py.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from . import Emitter, recording


@pytest.fixture
def hookfleet_recorder() -> Iterator[Emitter]:
    with recording() as rec:
        yield rec
