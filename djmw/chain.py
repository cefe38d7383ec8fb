"""The middleware protocol and compose(): nest middlewares around the perform step.

A middleware is any callable ``(job, call_next) -> Outcome``: a function, or an attrs
instance holding its configuration. The first middleware of the list is the outermost.
Data flows inward as new frozen Jobs (``attrs.evolve``); results flow outward as an
Outcome, or as an exception until some layer converts it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Protocol

from djmw.errors import MiddlewareContractError
from djmw.job import Job
from djmw.outcome import OUTCOME_TYPES, Outcome, Succeeded

CallNext = Callable[[Job], Outcome]
Perform = Callable[[Job], object]


class Middleware(Protocol):
    """Wrap the execution of one job.

    Return ``call_next(job)``'s outcome (possibly for an evolved job), a new Outcome, or
    raise. Middlewares must be immutable and thread-safe: per-job state lives in locals.
    """

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run one job through this layer."""
        ...


def middleware_name(middleware: object) -> str:
    """Return a readable name for a middleware: its class or function name."""
    if isinstance(middleware, functools.partial):
        return middleware_name(middleware.func)
    name = getattr(middleware, "__qualname__", None) or type(middleware).__qualname__
    module = getattr(middleware, "__module__", None) or type(middleware).__module__
    return f"{module}.{name}"


def _succeed_with(perform: Perform) -> CallNext:
    def innermost(job: Job) -> Outcome:
        return Succeeded(perform(job))

    return innermost


def _checked(middleware: Middleware, call_next: CallNext, job: Job) -> Outcome:
    outcome = middleware(job, call_next)
    if not isinstance(outcome, OUTCOME_TYPES):
        msg = (
            f"Middleware {middleware_name(middleware)} returned {outcome!r}, not an Outcome "
            "(Succeeded, Rescheduled or Failed); did you forget `return call_next(job)`?"
        )
        raise MiddlewareContractError(msg)
    return outcome


def compose(middlewares: Sequence[Middleware], perform: Perform) -> CallNext:
    """Nest ``middlewares`` around ``perform``; the first one is the outermost.

    Called once per worker start. Every layer's return value is checked: a non-Outcome
    raises MiddlewareContractError naming the layer.
    """
    call_next: CallNext = _succeed_with(perform)
    for middleware in reversed(middlewares):
        call_next = functools.partial(_checked, middleware, call_next)
    return call_next
