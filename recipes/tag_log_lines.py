"""A middleware of your own: tag every log line a job writes with its id and name.

Use this when handlers log through ``logging`` and you want to grep one job's lines, or
ship them to a structured log store keyed by job id.

Drop in::

    from recipes.tag_log_lines import TagLogLines, install_job_filter

    install_job_filter(logging.getLogger())      # once, at start-up
    chain = djmw.default_middlewares(handlers)
    chain.insert(1, TagLogLines())               # right inside DecodeYAML: name known
    worker = djmw.Worker(database=url, handlers=handlers, middlewares=chain)

Every record logged while the job runs, in its thread, gets ``job_id`` and ``job_name``
attributes; use them in a format string: ``%(job_id)s %(job_name)s %(message)s``.

delayed_job equivalent: none (Rails' tagged logging in a lifecycle ``around`` hook).

Caveats: it tags records logged from the job's own thread only (contextvars).
"""

from __future__ import annotations

import contextvars
import logging

import attrs

from djmw import CallNext, Job, Outcome

_current: contextvars.ContextVar[Job | None] = contextvars.ContextVar("djmw_job", default=None)


class JobFilter(logging.Filter):
    """Add ``job_id`` and ``job_name`` (or ``-``) to every record passing through."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Tag the record; never drops it."""
        job = _current.get()
        record.job_id = job.id if job is not None else "-"
        record.job_name = (job.name or "-") if job is not None else "-"
        return True


def install_job_filter(logger: logging.Logger) -> JobFilter:
    """Attach a JobFilter to each handler of ``logger`` and return it."""
    job_filter = JobFilter()
    for handler in logger.handlers:
        handler.addFilter(job_filter)
    return job_filter


@attrs.frozen
class TagLogLines:
    """Make the running job known to JobFilter for the duration of the inner chain.

    Where: right inside DecodeYAML, so the job's name is known and every later line,
    delayed_job's RUNNING and COMPLETED lines included, is tagged.
    """

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run the inner chain with ``job`` as the current job."""
        token = _current.set(job)
        try:
            return call_next(job)
        finally:
            _current.reset(token)
