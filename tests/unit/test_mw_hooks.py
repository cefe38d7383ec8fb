"""RunHooks: per-job overrides from config(job), failure hooks on permanent failure only."""

from __future__ import annotations

import logging

import pytest

from djmw import Handlers, PermanentJobError
from djmw.errors import PayloadDecodeError
from djmw.job import Job
from djmw.middleware import RunHooks
from djmw.outcome import Failed, Outcome, Rescheduled, Succeeded
from djmw.testing import ManualClock, make_job, returning


class Target:
    def __init__(self, config: object = None) -> None:
        self.calls: list[str] = []
        self._config = config

    def config(self, job: Job) -> object:
        return self._config

    def perform(self, job: Job) -> None:
        pass

    def failure(self, job: Job) -> None:
        self.calls.append("failure")

    def failed(self, job: Job) -> None:
        self.calls.append("failed")


def test_config_overrides_reach_inner_layers() -> None:
    """config(job) sets max_attempts, max_run_time, destroy_failed (alias) and reschedule_at."""
    schedule = lambda now, attempts: now  # noqa: E731
    target = Target(
        {
            "max_attempts": 3,
            "max_run_time": 60,
            "destroy_failed_jobs": True,
            "reschedule_at": schedule,
        }
    )
    seen: list[Job] = []

    def call_next(job: Job) -> Outcome:
        seen.append(job)
        return Succeeded()

    RunHooks(handlers=Handlers({"J": target}))(make_job(name="J"), call_next)
    (job,) = seen
    assert (job.max_attempts, job.max_run_time, job.destroy_failed, job.reschedule_at) == (
        3,
        60,
        True,
        schedule,
    )


def test_failure_hooks_run_once_on_permanent_failure_only() -> None:
    """failure and failed run after a Failed outcome, not after Rescheduled or Succeeded."""
    target = Target()
    hooks = RunHooks(handlers=Handlers({"J": target}))
    hooks(
        make_job(name="J"),
        returning(Rescheduled(run_at=ManualClock()(), attempts=1, error=ValueError())),
    )
    hooks(make_job(name="J"), returning(Succeeded()))
    assert target.calls == []
    hooks(make_job(name="J"), returning(Failed(attempts=1, error=ValueError())))
    assert target.calls == ["failure", "failed"]


def test_no_hooks_for_undecodable_jobs() -> None:
    """A job that failed to load skips the hooks, as in delayed_job."""
    target = Target()
    error = PayloadDecodeError("Job failed to load: x")
    job = make_job(name="J", load_error=error)
    RunHooks(handlers=Handlers({"J": target}))(job, returning(Failed(attempts=0, error=error)))
    assert target.calls == []


def test_a_raising_failure_hook_is_logged_and_the_outcome_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """delayed_job logs 'Error when running failure callback' and keeps going."""

    class Broken(Target):
        def failure(self, job: Job) -> None:
            raise RuntimeError("hook broke")

    outcome = Failed(attempts=1, error=ValueError())
    with caplog.at_level(logging.ERROR, "djmw"):
        result = RunHooks(handlers=Handlers({"J": Broken()}))(
            make_job(name="J", locked_by="w"), returning(outcome)
        )
    assert result == outcome
    assert "Error when running failure callback: hook broke" in caplog.text


def test_bad_config_fails_the_job_permanently() -> None:
    """An unknown key in config(job) is a permanent error naming the key."""
    with pytest.raises(PermanentJobError, match="max_attemps"):
        RunHooks(handlers=Handlers({"J": Target({"max_attemps": 3})}))(
            make_job(name="J"), returning()
        )
