"""djmw: run delayed_job jobs in Python through a chain of composable middlewares.

Register perform functions by job name, then start a worker on the Rails app's table::

    import djmw

    handlers = djmw.Handlers()

    @handlers.register("NewsletterJob")
    def newsletter(job: djmw.Job) -> None:
        send(job.payload.fields["emails"])

    djmw.Worker(database="mysql://root@127.0.0.1:3306/app", handlers=handlers).start()
"""

from __future__ import annotations

from djmw.backends import NewJob, open_backend
from djmw.chain import CallNext, Middleware, Perform, compose
from djmw.config import load_config
from djmw.enqueue import enqueue, enqueue_many
from djmw.errors import (
    AttemptFailed,
    BackendError,
    ConfigurationError,
    DjmwError,
    JobAborted,
    JobError,
    JobTimeout,
    MiddlewareContractError,
    PayloadDecodeError,
    PermanentJobError,
    RetriesExhausted,
    UnknownJobError,
)
from djmw.handlers import Handlers
from djmw.job import Job
from djmw.middleware import default_middlewares
from djmw.outcome import Failed, Outcome, Rescheduled, Succeeded
from djmw.ruby import encode
from djmw.ruby.payload import ActiveJobCall, DecodeLimits, MethodCall, ObjectJob, StructJob
from djmw.ruby.values import (
    GlobalId,
    KeywordArgs,
    RecordRef,
    RubyModule,
    RubyObject,
    RubyRange,
    RubyRegexp,
    Symbol,
)
from djmw.worker import Worker

#: The exception a handler raises to fail its job without retries.
PermanentError = PermanentJobError

__version__ = "0.1.0"

__all__ = [
    "Handlers",
    "Job",
    "Worker",
    "load_config",
    "open_backend",
    "enqueue",
    "enqueue_many",
    "NewJob",
    "encode",
    "CallNext",
    "Middleware",
    "Perform",
    "compose",
    "default_middlewares",
    "Outcome",
    "Succeeded",
    "Rescheduled",
    "Failed",
    "StructJob",
    "ObjectJob",
    "MethodCall",
    "ActiveJobCall",
    "DecodeLimits",
    "Symbol",
    "RubyModule",
    "RubyObject",
    "RecordRef",
    "GlobalId",
    "RubyRange",
    "RubyRegexp",
    "KeywordArgs",
    "DjmwError",
    "ConfigurationError",
    "MiddlewareContractError",
    "BackendError",
    "JobError",
    "JobAborted",
    "JobTimeout",
    "AttemptFailed",
    "PermanentJobError",
    "PermanentError",
    "PayloadDecodeError",
    "UnknownJobError",
    "RetriesExhausted",
]
