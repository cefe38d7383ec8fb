"""Perform functions and a middleware that the config tests name by dotted path.

A TOML config names them as ``config_handlers:handlers`` and ``config_handlers:Stamp``
(``tests/`` is on ``sys.path`` under pytest).
"""

from __future__ import annotations

import attrs

from djmw import CallNext, Handlers, Job, Outcome

#: Ids of the ConfigJob rows that ran.
RAN: list[int] = []
#: ``(label, job name)`` for each job a Stamp middleware saw.
STAMPED: list[tuple[str, str | None]] = []

handlers = Handlers()


@handlers.register("ConfigJob")
def config_job(job: Job) -> None:
    """Record that the job ran."""
    RAN.append(job.id)


@handlers.register("ConfigFailJob")
def config_fail_job(job: Job) -> None:
    """Fail every attempt."""
    msg = "config boom"
    raise ValueError(msg)


#: Not a djmw.Handlers: a config naming it must fail at start.
not_handlers = {"ConfigJob": config_job}


@attrs.frozen(kw_only=True)
class Stamp:
    """A custom middleware with one option: records ``(label, job.name)`` for each job."""

    label: str = attrs.field(validator=attrs.validators.instance_of(str))

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Record the job, then run the rest of the chain."""
        STAMPED.append((self.label, job.name))
        return call_next(job)
