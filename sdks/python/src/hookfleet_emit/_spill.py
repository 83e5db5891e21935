"""The spill: append-only files of events that could not be buffered or published.

The format is the Rust SDK's (crates/emit/src/spill.rs), so either SDK replays the
other's files: one line per event, `<type>\\t<id>\\t<envelope JSON>\\n`, in files
named `spill-<nanos, 20 digits>-<pid>-<seq>.jsonl`. Here `<nanos>` is the emit time
of the file's first event, so sorting the names replays events in emit order. An
event that carries the producer's trace context has two more fields before the
newline, `\\t<traceparent>\\t<tracestate>` (tracestate may be empty), so that it
continues the trace when it is replayed; one without keeps the three-field line,
which the SDKs before the trace fields read too.

Each file is locked (`flock`) by the process that writes or replays it, not the
whole directory: forked workers (gunicorn, celery) can share one spill directory,
and a file left by a killed process is free again at once. Appends go straight to
the OS (no user-space buffer), so a killed producer loses nothing it spilled; a
torn last line is skipped on replay. The directory is bounded by `max_bytes`.
"""
from __future__ import annotations

import fcntl
import itertools
import logging
import os
import threading
from typing import BinaryIO, Dict, List, NamedTuple, Optional, Sequence, Set

log = logging.getLogger("hookfleet_emit")


class Pending(NamedTuple):
    """A serialized event on its way to the broker."""

    event_type: str
    id: str
    body: bytes
    t_ns: int
    # The spill file it was read from and its line, for a replayed event.
    source: Optional[str] = None
    line: int = 0
    # The producer's W3C trace context, sent as AMQP headers ("" when absent).
    traceparent: str = ""
    tracestate: str = ""


class Claim:
    """A spill file locked for replay: its events, and which are confirmed."""

    def __init__(self, path: str, fh: BinaryIO, events: List[Pending], own: bool) -> None:
        self.path = path
        self.fh = fh
        self.events = events
        self.own = own
        self.remaining = len(events)


def _clean(field: str) -> bool:
    """Whether a trace field can go on a spill line: no tab or line break."""
    return "\t" not in field and "\n" not in field and "\r" not in field


def _try_lock(fh: BinaryIO) -> bool:
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


class Spill:
    def __init__(self, directory: str, max_bytes: int) -> None:
        os.makedirs(directory, exist_ok=True)
        self.dir = directory
        self.max_bytes = max_bytes
        self.lock = threading.Lock()
        self._active: Optional[BinaryIO] = None
        self._seq = itertools.count()
        # Files this process wrote: their events count as its own in flush().
        self.own_files: Set[str] = set()
        # Lines already confirmed, per file, so a file replayed again after a
        # failure publishes only the rest.
        self.acked: Dict[str, Set[int]] = {}
        self.bytes = self._scan_bytes()

    def _names(self) -> List[str]:
        return sorted(
            n for n in os.listdir(self.dir) if n.startswith("spill-") and n.endswith(".jsonl")
        )

    def _scan_bytes(self) -> int:
        total = 0
        for n in self._names():
            try:
                total += os.path.getsize(os.path.join(self.dir, n))
            except OSError:
                pass
        return total

    def append(self, events: Sequence[Pending]) -> int:
        """Appends events in order (the caller holds `lock`); returns how many fit
        under `max_bytes`. Raises OSError when the disk refuses."""
        if not events:
            return 0
        if self._active is None:
            name = f"spill-{events[0].t_ns:020d}-{os.getpid()}-{next(self._seq)}.jsonl"
            path = os.path.join(self.dir, name)
            fh = open(path, "ab", buffering=0)
            _try_lock(fh)  # a new file: always free
            self._active = fh
            self.own_files.add(path)
        lines = []
        size = 0
        for e in events:
            if e.traceparent and _clean(e.traceparent) and _clean(e.tracestate):
                line = b"%s\t%s\t%s\t%s\t%s\n" % (
                    e.event_type.encode(), e.id.encode(), e.body,
                    e.traceparent.encode(), e.tracestate.encode(),
                )
            else:  # no context, or one that would tear the line (no valid one does)
                line = b"%s\t%s\t%s\n" % (e.event_type.encode(), e.id.encode(), e.body)
            if self.bytes + size + len(line) > self.max_bytes:
                break
            lines.append(line)
            size += len(line)
        if lines:
            self._active.write(b"".join(lines))
            self.bytes += size
        return len(lines)

    def rotate(self) -> None:
        """Closes the active file (the caller holds `lock`): the next append starts
        a new one, so a file being replayed is never appended to."""
        if self._active is not None:
            self._active.close()
            self._active = None

    def files(self) -> List[str]:
        """Every spill file of the directory, oldest first (also other processes')."""
        with self.lock:
            self.rotate()
            self.bytes = self._scan_bytes()
        return [os.path.join(self.dir, n) for n in self._names()]

    def claim(self, path: str) -> Optional[Claim]:
        """Locks `path` and reads it; None when another process holds it, or it
        was replayed and removed meanwhile."""
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            return None
        if not _try_lock(fh) or os.fstat(fh.fileno()).st_nlink == 0:
            fh.close()
            return None
        acked = self.acked.get(path, set())
        events = []
        for i, raw in enumerate(fh.read().split(b"\n")):
            # The body holds no raw tab: the fields after it are the trace's.
            parts = raw.split(b"\t")
            if not 3 <= len(parts) <= 5 or not parts[2].endswith(b"}"):
                if raw:
                    log.warning("Skipping a torn spill line.", extra={"file": path})
                continue
            if i not in acked:
                p = Pending(parts[0].decode(), parts[1].decode(), parts[2], 0, path, i)
                if len(parts) == 5:  # 4: the trace of a torn line, left out
                    p = p._replace(
                        traceparent=parts[3].decode("utf-8", "replace"),
                        tracestate=parts[4].decode("utf-8", "replace"),
                    )
                events.append(p)
        return Claim(path, fh, events, path in self.own_files)

    def confirmed(self, claim: Claim, line: int) -> bool:
        """Marks one line confirmed; removes the file once all are. True if removed."""
        self.acked.setdefault(claim.path, set()).add(line)
        claim.remaining -= 1
        if claim.remaining > 0:
            return False
        try:
            size = os.fstat(claim.fh.fileno()).st_size
            os.unlink(claim.path)
            with self.lock:
                self.bytes = max(0, self.bytes - size)
        except OSError as e:
            log.error("Could not remove a replayed spill file: %s", e)
        claim.fh.close()
        self.acked.pop(claim.path, None)
        self.own_files.discard(claim.path)
        return True

    def reset_in_child(self) -> None:
        """After os.fork(): the parent keeps its files and their locks (closing our
        copy of a descriptor does not release the parent's flock)."""
        self.lock = threading.Lock()
        if self._active is not None:
            self._active.close()
            self._active = None
        self.own_files = set()
        self.acked = {}
