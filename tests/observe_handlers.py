"""Handlers for the observability tests' worker processes (no side effects).

``OkJob`` succeeds, ``FailJob`` raises ``ValueError("planned failure")`` every time and
``ExhaustJob`` raises too, with ``max_attempts`` 1 so its first failure is its last.
"""

from __future__ import annotations

import logging

from djmw import Handlers, Job

handlers = Handlers()


@handlers.register("OkJob")
def ok(job: Job) -> None:
    """Succeed, logging one line of its own."""
    logging.getLogger("djmw.jobs").info("ok job %s ran", job.id)


@handlers.register("FailJob")
def fail(job: Job) -> None:
    """Fail every attempt."""
    msg = "planned failure"
    raise ValueError(msg)


@handlers.register("ExhaustJob")
class ExhaustJob:
    """Fail, with one attempt allowed: the first failure is permanent."""

    def config(self, job: Job) -> dict[str, int]:
        """One attempt only."""
        return {"max_attempts": 1}

    def perform(self, job: Job) -> None:
        """Fail."""
        msg = "planned failure"
        raise ValueError(msg)
