"""The built-in middlewares by name, and the contracts a chain of them must keep.

One table for everyone: the config loader resolves names with ``BUILTINS``, the README
table lists the same names, and ``default_middlewares`` is built from them.
``check_chain`` runs when a Worker composes its chain and refuses an order in which a
failed job would retry forever; ``bind_backend`` hands the worker's connection factory
to the middlewares that write beside the outcome (Heartbeat).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs

from djmw.backends import BackendFactory
from djmw.chain import Middleware
from djmw.errors import ConfigurationError
from djmw.middleware.attempts import CountAttempts
from djmw.middleware.decode import DecodeYAML
from djmw.middleware.failure import MarkFailed
from djmw.middleware.heartbeat import Heartbeat
from djmw.middleware.hooks import RunHooks
from djmw.middleware.log import LogOutcome
from djmw.middleware.metrics import Metrics
from djmw.middleware.registered import OnlyRegistered
from djmw.middleware.report import ReportErrors
from djmw.middleware.retry import ScheduleRetry
from djmw.middleware.timeout import EnforceTimeout
from djmw.middleware.trace import Trace

#: Every built-in middleware, by the name a config file uses; default chain order first.
BUILTINS: dict[str, type] = {
    "DecodeYAML": DecodeYAML,
    "RunHooks": RunHooks,
    "LogOutcome": LogOutcome,
    "MarkFailed": MarkFailed,
    "ScheduleRetry": ScheduleRetry,
    "CountAttempts": CountAttempts,
    "EnforceTimeout": EnforceTimeout,
    "Heartbeat": Heartbeat,
    "OnlyRegistered": OnlyRegistered,
    "Metrics": Metrics,
    "Trace": Trace,
    "ReportErrors": ReportErrors,
}

#: The built-ins of the default chain, outermost first.
DEFAULT_CHAIN = (
    "DecodeYAML",
    "RunHooks",
    "LogOutcome",
    "MarkFailed",
    "ScheduleRetry",
    "CountAttempts",
    "EnforceTimeout",
)


@attrs.frozen
class Rule:
    """``subject`` needs ``partner`` in the chain, outside it (earlier) or inside (later)."""

    subject: type
    partner: type
    partner_is: str  # "outside" or "inside"
    why: str


#: The order the failure path needs; a chain that breaks one never ends a failing job.
RULES = (
    Rule(
        ScheduleRetry,
        CountAttempts,
        "inside",
        "without it attempts never grow and a failing job is retried forever",
    ),
    Rule(
        ScheduleRetry,
        MarkFailed,
        "outside",
        "without it a job whose retries are used up is unlocked and runs again forever",
    ),
    Rule(
        EnforceTimeout,
        CountAttempts,
        "outside",
        "without it a timed-out attempt is not counted and the job times out forever",
    ),
)


def check_chain(middlewares: Sequence[Middleware]) -> None:
    """Raise ConfigurationError if the chain breaks one of ``RULES``, naming what is missing.

    Only built-in middlewares (and their subclasses) are checked. EnforceTimeout's rule
    applies when the chain counts attempts at all: a minimal chain without CountAttempts
    and ScheduleRetry leaves a failing job to the worker, which unlocks it.
    """
    for rule in RULES:
        for index, middleware in enumerate(middlewares):
            if not isinstance(middleware, rule.subject):
                continue
            partners = [i for i, m in enumerate(middlewares) if isinstance(m, rule.partner)]
            inside = rule.partner_is == "inside"
            if any((i > index) == inside for i in partners):
                continue
            if rule.subject is EnforceTimeout and not partners:
                continue
            side = "later" if inside else "earlier"
            found = f"; it is at middlewares[{partners[0]}], on the wrong side" if partners else ""
            msg = (
                f"middlewares[{index}] ({type(middleware).__name__}) needs "
                f"{rule.partner.__name__} {rule.partner_is} it ({side} in the list){found}: "
                f"{rule.why}."
            )
            raise ConfigurationError(msg)


@runtime_checkable
class UsesBackend(Protocol):
    """A middleware that writes beside the outcome through its own connection."""

    def with_backend(self, connect: BackendFactory) -> Middleware:
        """Return this middleware connected through ``connect``."""
        ...


def bind_backend(middlewares: Sequence[Middleware], connect: BackendFactory) -> list[Middleware]:
    """Give every ``UsesBackend`` middleware the worker's connection factory."""
    return [m.with_backend(connect) if isinstance(m, UsesBackend) else m for m in middlewares]
