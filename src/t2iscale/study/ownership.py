"""Who holds a run: owner ids (`host:pid`), liveness, and the heartbeat that keeps a claim alive.

A claim can be taken over when its owner is provably gone: on the same host its process no longer exists, or,
from anywhere, its heartbeat is older than the study's `stale_after_min` (a crashed node cannot clean up).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def owner_is_dead(owner: str | None) -> bool:
    """True only when we can tell for sure: same host, and no process with that pid."""
    if not owner:
        return True
    host, _, pid = owner.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not process_exists(int(pid))


def claim_is_abandoned(owner: str | None, heartbeat_at: float | None, stale_after_s: float) -> str | None:
    """Why a running claim may be taken over ('dead', 'stale'), or None while its owner may still be working."""
    if owner_is_dead(owner):
        return "dead"
    if heartbeat_at is None or time.time() - heartbeat_at > stale_after_s:
        return "stale"
    return None


class Heartbeat:
    """Calls `beat()` every `interval_s` seconds from a daemon thread while the `with` block runs."""

    def __init__(self, beat: Callable[[], None], interval_s: float):
        self.beat = beat
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="t2iscale-heartbeat", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except Exception as error:  # a missed beat is not fatal; the next one may get through
                print(f"t2iscale study: heartbeat failed: {error}", flush=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
