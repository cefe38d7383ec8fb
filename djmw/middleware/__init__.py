"""The built-in middlewares and the default chain.

Default chain, outermost first::

    DecodeYAML      handler YAML -> job.name, job.payload          (payload_object)
    RunHooks        config(job) overrides; failure(job) hooks       (payload hooks)
    LogOutcome      RUNNING / COMPLETED after / FAILED lines        (job_say)
    MarkFailed      permanent error or retries used up -> Failed    (failed, fail!)
    ScheduleRetry   failed attempt -> Rescheduled at now + backoff  (reschedule)
    CountAttempts   attempts + 1 on failure only                    (attempts += 1)
    EnforceTimeout  max_run_time -> retryable JobTimeout            (Timeout.timeout)
    perform         the function registered for job.name
"""

from __future__ import annotations

from djmw.chain import Middleware
from djmw.handlers import Handlers
from djmw.middleware.attempts import CountAttempts
from djmw.middleware.decode import DecodeYAML
from djmw.middleware.failure import MarkFailed
from djmw.middleware.heartbeat import Heartbeat
from djmw.middleware.hooks import RunHooks
from djmw.middleware.log import LogOutcome
from djmw.middleware.metrics import Metrics
from djmw.middleware.registered import OnlyRegistered
from djmw.middleware.registry import BUILTINS, DEFAULT_CHAIN, bind_backend, check_chain
from djmw.middleware.report import Reporter, ReportErrors
from djmw.middleware.retry import (
    Backoff,
    ScheduleRetry,
    delayed_job_backoff,
    tenacity_backoff,
)
from djmw.middleware.timeout import EnforceTimeout
from djmw.middleware.trace import Trace


def default_middlewares(handlers: Handlers) -> list[Middleware]:
    """Return a new list holding the default chain for ``handlers``, outermost first.

    Extend it with a list literal: ``[my_middleware, *default_middlewares(handlers)]``.
    """
    return [
        BUILTINS[name](handlers=handlers) if name == "RunHooks" else BUILTINS[name]()
        for name in DEFAULT_CHAIN
    ]


__all__ = [
    "BUILTINS",
    "DEFAULT_CHAIN",
    "Backoff",
    "CountAttempts",
    "DecodeYAML",
    "EnforceTimeout",
    "Heartbeat",
    "LogOutcome",
    "MarkFailed",
    "Metrics",
    "OnlyRegistered",
    "ReportErrors",
    "Reporter",
    "RunHooks",
    "ScheduleRetry",
    "Trace",
    "bind_backend",
    "check_chain",
    "default_middlewares",
    "delayed_job_backoff",
    "tenacity_backoff",
]
