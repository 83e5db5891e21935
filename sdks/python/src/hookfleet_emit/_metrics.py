"""Prometheus export, when `prometheus_client` is installed: the Rust SDK's
counter and gauge names, summed over every live emitter of the process."""
from __future__ import annotations

from typing import Any, Iterator

from ._emitter import _live

_HELP = {
    "emitted": "Events handed to emit().",
    "confirmed": "Events confirmed by RabbitMQ.",
    "spilled": "Events written to the spill directory.",
    "replayed": "Spilled events published after all.",
    "dropped": "Events lost: neither buffered nor spilled.",
}


class Collector:
    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snaps = [em.metrics() for em in list(_live)]
        for name, text in _HELP.items():
            yield CounterMetricFamily(
                f"hookfleet_emit_{name}", text, value=sum(getattr(s, name) for s in snaps)
            )
        yield GaugeMetricFamily(
            "hookfleet_emit_spill_bytes",
            "Bytes in the spill directory's files, waiting to be replayed.",
            value=sum(s.spill_bytes for s in snaps),
        )


def register() -> bool:
    """Registers the collector with prometheus_client's default registry once;
    False when prometheus_client is not installed."""
    try:
        from prometheus_client import REGISTRY
    except ImportError:
        return False
    try:
        REGISTRY.register(Collector())
    except ValueError:  # registered already
        pass
    return True
