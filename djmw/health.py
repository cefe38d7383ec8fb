"""Health: what the probes of one worker answer, updated by its loop.

The loop calls ``loop_started()``, ``reserved(ok, busy)`` after each reserve and
``loop_ended()``; the probe server reads ``started`` and ``connected(within)``. Plain
attribute writes, no lock: each value is written by the loop's thread only and read as
a whole by the server's. This module imports nothing from djmw, so any layer may use it.
"""

from __future__ import annotations

import time

import attrs


@attrs.define(eq=False)
class Health:
    """The probe state of one worker (one loop).

    Attributes:
        running: True from the loop's start to its end.
        last_ok: ``time.monotonic()`` of the last reserve that worked, or None.
        failing: True when the last reserve failed (database unreachable, ...).
        busy: True when the last reserve returned a job, which is running now.
    """

    running: bool = False
    last_ok: float | None = None
    failing: bool = False
    busy: bool = False

    def loop_started(self) -> None:
        """The loop runs: ``/status/started`` answers 200 from now on."""
        self.running = True

    def loop_ended(self) -> None:
        """The loop ended (stopped, done or crashed)."""
        self.running = False
        self.busy = False

    def reserved(self, *, ok: bool, busy: bool = False) -> None:
        """Record one reserve: whether it worked and whether it returned a job."""
        if ok:
            self.last_ok = time.monotonic()
            self.failing = False
            self.busy = busy
        else:
            self.failing = True
            self.busy = False

    @property
    def started(self) -> bool:
        """True while the loop runs."""
        return self.running

    def connected(self, within: float, now: float | None = None) -> bool:
        """True when the last reserve worked and was at most ``within`` seconds ago.

        A job still running counts as connected: the reserve that took it worked, and no
        reserve happens until it ends, however long that takes.
        """
        if not self.running or self.failing or self.last_ok is None:
            return False
        if self.busy:
            return True
        moment = time.monotonic() if now is None else now
        return moment - self.last_ok <= within
