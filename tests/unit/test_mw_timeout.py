"""EnforceTimeout: delayed_job's limit, message and the cooperative flag."""

from __future__ import annotations

import time

import pytest

from djmw.errors import ConfigurationError, JobTimeout
from djmw.job import Job
from djmw.middleware import EnforceTimeout
from djmw.middleware.timeout import effective_limit, timeout_message
from djmw.outcome import Outcome, Succeeded
from djmw.testing import make_job


def test_limit_is_min_of_job_and_worker_in_whole_seconds() -> None:
    """The per-job value can only lower the worker's; fractions are cut; 0 means none."""
    assert effective_limit(make_job(), 14400) == 14400
    assert effective_limit(make_job(max_run_time=90.9), 14400) == 90
    assert effective_limit(make_job(max_run_time=99999), 60) == 60
    assert effective_limit(make_job(max_run_time=0.5), 60) == 0


def test_message_names_the_worker_limit() -> None:
    """The message has delayed_job's shape, singular for one second."""
    assert timeout_message(14400) == (
        "execution expired (Delayed::Worker.max_run_time is only 14400 seconds)"
    )
    assert timeout_message(1).endswith("only 1 second)")


def test_interrupt_stops_a_python_loop() -> None:
    """A busy Python loop is interrupted at the limit; timed_out is set; the error is JobTimeout."""
    job = make_job(worker_max_run_time=1)
    seen: list[bool] = []

    def spin(job: Job) -> Outcome:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pass
        seen.append(True)
        return Succeeded()

    started = time.monotonic()
    with pytest.raises(JobTimeout, match=r"max_run_time is only 1 second\)"):
        EnforceTimeout()(job, spin)
    assert time.monotonic() - started < 5
    assert job.timed_out
    assert not seen


def test_cooperative_sets_the_flag_and_fails_late_returns() -> None:
    """In cooperative mode the handler polls timed_out; returning after it counts as a timeout."""
    job = make_job(worker_max_run_time=1)

    def polite(job: Job) -> Outcome:
        while not job.timed_out:
            time.sleep(0.01)
        return Succeeded()

    with pytest.raises(JobTimeout):
        EnforceTimeout(mode="cooperative")(job, polite)


def test_fast_job_is_untouched() -> None:
    """A job inside its limit succeeds and is not flagged."""
    job = make_job(worker_max_run_time=5)
    assert EnforceTimeout()(job, lambda j: Succeeded(1)) == Succeeded(1)
    assert not job.timed_out


def test_bad_mode_fails_at_construction() -> None:
    """An unknown mode names the choices."""
    with pytest.raises(ConfigurationError, match="interrupt"):
        EnforceTimeout(mode="nope")  # type: ignore[arg-type]


TRACED_TIMEOUT = """
import sys, time
from djmw.errors import JobTimeout
from djmw.middleware.timeout import EnforceTimeout
from djmw.testing import make_job

def tracer(frame, event, arg):
    return tracer

def spin(job):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pass

def after():
    return "after"

sys.settrace(tracer)
try:
    EnforceTimeout()(make_job(worker_max_run_time=1), spin)
except JobTimeout:
    pass
print(after())
"""


def test_interrupt_leaves_no_stale_signal_under_a_tracer() -> None:
    """After an interrupt timeout, code under sys.settrace (coverage, debuggers) goes on.

    Cancelling with ``PyThreadState_SetAsyncExc(id, NULL)`` used to leave the interpreter's
    pending-exception signal set; on CPython 3.11 the next traced function entry then
    looped forever. The subprocess must print and exit (it is killed at 60 s otherwise).
    """
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", TRACED_TIMEOUT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "after"
