"""OnlyRegistered: give back jobs this worker has no perform function for (class-aware)."""

from __future__ import annotations

import attrs

from djmw.chain import CallNext, Middleware
from djmw.errors import JobNotRegistered
from djmw.handlers import Handlers
from djmw.job import Job
from djmw.middleware.decode import DecodeYAML
from djmw.outcome import Outcome


@attrs.frozen(kw_only=True)
class OnlyRegistered:
    """Confirm, after decoding, that this worker has a perform function for the job.

    Where: right inside DecodeYAML, before anything logs or counts. ``with_registration_check``
    puts it there for a Worker with ``unknown_jobs="skip"`` (the default); its reserve query
    already keeps to handlers that mention a registered name, so this check only catches the
    rare false match.

    A job it does not own (or cannot decode) raises JobNotRegistered, which no middleware
    converts; the worker then unlocks the row with attempts unchanged and skips that id
    for a while, so a Ruby worker can take it.
    """

    handlers: Handlers

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Pass registered jobs inward; raise JobNotRegistered for the rest."""
        if job.load_error is not None or job.name not in self.handlers:
            raise JobNotRegistered(job.id, job.display_name, undecodable=job.load_error is not None)
        return call_next(job)


def with_registration_check(middlewares: list[Middleware], handlers: Handlers) -> list[Middleware]:
    """Return ``middlewares`` with OnlyRegistered right inside DecodeYAML (added if absent)."""
    if any(isinstance(m, OnlyRegistered) for m in middlewares):
        return middlewares
    check = OnlyRegistered(handlers=handlers)
    for index, middleware in enumerate(middlewares):
        if isinstance(middleware, DecodeYAML):
            return [*middlewares[: index + 1], check, *middlewares[index + 1 :]]
    return [DecodeYAML(), check, *middlewares]
