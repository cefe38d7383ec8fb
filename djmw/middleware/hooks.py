"""RunHooks: per-job overrides from the handler's ``config(job)``, and its failure hooks."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import attrs

from djmw.chain import CallNext
from djmw.errors import PayloadDecodeError, PermanentJobError
from djmw.handlers import Handlers
from djmw.job import Job
from djmw.logs import LOGGER_NAME, as_logger, job_prefix
from djmw.outcome import Failed, Outcome, error_text

#: Keys a handler's ``config(job)`` may return, and the Job field each one sets.
OVERRIDES = {
    "max_attempts": "max_attempts",
    "max_run_time": "max_run_time",
    "destroy_failed": "destroy_failed",
    "destroy_failed_jobs": "destroy_failed",
    "reschedule_at": "reschedule_at",
}


@attrs.frozen(kw_only=True)
class RunHooks:
    """Give handlers dj-consumer's and delayed_job's job-level lifecycle.

    Where: right inside DecodeYAML (it needs the job's name) and outside everything that
    reads a per-job override (LogOutcome, MarkFailed, ScheduleRetry, EnforceTimeout).

    - ``config(job) -> Mapping``: per-job overrides, any of ``max_attempts``,
      ``max_run_time`` (can only lower the worker's), ``destroy_failed`` (alias
      ``destroy_failed_jobs``) and ``reschedule_at`` (a callable ``(now, attempts) ->
      datetime``), the equivalents of a Ruby payload's methods.
    - ``failure(job)`` (delayed_job) and ``failed(job)`` (dj-consumer): called once when
      the job fails permanently; an exception there is logged as delayed_job does
      (``Error when running failure callback: ...``) and does not change the outcome.

    ``before``, ``success``, ``error``/``exception`` and ``after``/``finally_`` run around
    perform inside the time limit; the Handlers registry calls them.

    Args:
        handlers: the registry the worker dispatches to.

    Note:
        Hooks are skipped for handlers that cannot be decoded, as in delayed_job. A
        ``config`` that raises or returns an unknown key fails the job permanently.
    """

    handlers: Handlers
    logger: logging.Logger = attrs.field(
        factory=lambda: logging.getLogger(LOGGER_NAME), converter=as_logger
    )

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Apply overrides, run the chain, then run failure hooks on permanent failure."""
        target = None if job.load_error is not None else self.handlers.target(job.name)
        if target is None:
            return call_next(job)
        config = getattr(target, "config", None)
        if callable(config):
            job = attrs.evolve(job, **_overrides(job, config(job)))  # type: ignore[arg-type]
        outcome = call_next(job)
        if isinstance(outcome, Failed) and not isinstance(outcome.error, PayloadDecodeError):
            self._run_failure_hooks(job, target)
        return outcome

    def _run_failure_hooks(self, job: Job, target: object) -> None:
        for name in ("failure", "failed"):
            hook = getattr(target, name, None)
            if not callable(hook):
                continue
            try:
                hook(job)
            except Exception as exc:  # a failing hook must not lose the job's outcome
                self.logger.error(
                    "%s Error when running failure callback: %s\n%s",
                    job_prefix(job),
                    exc,
                    error_text(exc),
                )


def _overrides(job: Job, config: object) -> dict[str, object]:
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        msg = f"config(job) for {job.name!r} returned {config!r}; expected a mapping."
        raise PermanentJobError(msg, job_id=job.id)
    unknown = sorted(set(config) - set(OVERRIDES))
    if unknown:
        msg = (
            f"config(job) for {job.name!r} returned unknown keys {unknown}; "
            f"allowed: {sorted(OVERRIDES)}."
        )
        raise PermanentJobError(msg, job_id=job.id)
    return {OVERRIDES[key]: value for key, value in config.items()}
