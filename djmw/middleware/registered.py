"""OnlyRegistered: give back jobs this worker has no perform function for (class-aware)."""

from __future__ import annotations

import attrs

from djmw.chain import CallNext
from djmw.errors import DjmwError
from djmw.handlers import Handlers
from djmw.job import Job
from djmw.outcome import Outcome


class JobNotRegistered(DjmwError):
    """The job belongs to another runtime; the worker unlocks it without charging an attempt."""

    def __init__(self, job: Job) -> None:
        reason = "cannot be decoded here" if job.load_error else "has no perform function here"
        super().__init__(f"job {job.id} ({job.display_name}) {reason}; giving it back")
        self.job_id = job.id


@attrs.frozen(kw_only=True)
class OnlyRegistered:
    """Confirm, after decoding, that this worker has a perform function for the job.

    Where: right inside DecodeYAML, before anything logs or counts. The Worker puts it
    there itself when ``class_aware=True``; its reserve query already keeps to handlers
    that mention a registered name, so this check only catches the rare false match.

    A job it does not own (or cannot decode) raises JobNotRegistered, which no middleware
    converts; the worker then unlocks the row with attempts unchanged and skips that id
    for a while, so a Ruby worker can take it.
    """

    handlers: Handlers

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Pass registered jobs inward; raise JobNotRegistered for the rest."""
        if job.load_error is not None or job.name not in self.handlers:
            raise JobNotRegistered(job)
        return call_next(job)
