"""EnforceTimeout: stop waiting for a job at its max_run_time and fail the attempt."""

from __future__ import annotations

import ctypes
import threading
from typing import Literal

import attrs

from djmw.chain import CallNext
from djmw.errors import ConfigurationError, JobTimeout
from djmw.job import Job
from djmw.outcome import Outcome

TimeoutMode = Literal["interrupt", "cooperative"]


def effective_limit(job: Job, worker_limit: float) -> int:
    """Return delayed_job's effective limit: min(job, worker) truncated to whole seconds.

    0 means no limit, as with Ruby's Timeout (so a per-job value below 1 s disables it).
    """
    limit = worker_limit if job.max_run_time is None else min(job.max_run_time, worker_limit)
    return max(int(limit), 0)


def timeout_message(worker_limit: float) -> str:
    """Return delayed_job's timeout message, naming the worker-wide limit."""
    seconds = int(worker_limit)
    unit = "second" if seconds == 1 else "seconds"
    return f"execution expired (Delayed::Worker.max_run_time is only {seconds} {unit})"


def _raise_in_thread(thread_id: int, exc_type: type[BaseException] | None) -> None:
    # The interpreter delivers it at the thread's next bytecode boundary; passing None
    # cancels a pending one.
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )


class _Interrupted(JobTimeout):
    """Raised into the job's thread; replaced by a JobTimeout with the full message."""


def _check_mode(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ("interrupt", "cooperative"):
        msg = f"EnforceTimeout: mode must be 'interrupt' or 'cooperative', got {value!r}."
        raise ConfigurationError(msg)


@attrs.frozen(kw_only=True)
class EnforceTimeout:
    """Fail the attempt with a retryable JobTimeout once the job's time limit passes.

    Where: inside CountAttempts, so a timeout is an ordinary counted, rescheduled attempt
    (delayed_job's ``Timeout.timeout(max_run_time)``).

    The limit is the job's ``max_run_time`` override (which can only lower it) or
    ``max_run_time`` here, else the worker's max_run_time (default 4 hours), truncated to
    whole seconds. At the limit ``job.timed_out`` becomes True; the message is delayed_job's
    ``execution expired (Delayed::Worker.max_run_time is only N seconds)``.

    Args:
        max_run_time: seconds; None uses the worker's value. A value above the worker's is
            capped, because other workers steal the lock after the worker's max_run_time.
        mode: ``interrupt`` (default) raises the timeout inside the job's thread;
            ``cooperative`` only sets ``job.timed_out`` for the handler to poll, and fails
            the attempt when the handler returns after the limit.

    Note:
        ``interrupt`` is delivered between Python bytecodes: it cannot break a blocking C
        call (``time.sleep`` in C, a socket read, a deadlocked library) until that call
        returns, and code that catches ``Exception`` broadly can swallow it (the attempt
        still fails, since ``timed_out`` is set). Use the child-process mode of the
        ``RunInChildProcess`` middleware to stop such jobs.
    """

    max_run_time: float | None = None
    mode: TimeoutMode = attrs.field(default="interrupt", validator=_check_mode)

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run the inner chain under the job's time limit."""
        worker_limit = job.worker_max_run_time
        if self.max_run_time is not None:
            worker_limit = min(worker_limit, self.max_run_time)
        limit = effective_limit(job, worker_limit)
        if limit == 0:
            return call_next(job)
        lock = threading.Lock()
        running = [True]
        thread_id = threading.get_ident()

        def expire() -> None:
            with lock:
                job.timeout_event.set()
                if running[0] and self.mode == "interrupt":
                    _raise_in_thread(thread_id, _Interrupted)

        timer = threading.Timer(limit, expire)
        timer.daemon = True
        timer.start()
        try:
            outcome = call_next(job)
        except _Interrupted as exc:
            raise JobTimeout(timeout_message(job.worker_max_run_time), job_id=job.id) from exc
        finally:
            with lock:
                running[0] = False
                timer.cancel()
                if job.timed_out and self.mode == "interrupt":
                    _raise_in_thread(thread_id, None)
        if job.timed_out and self.mode == "cooperative":
            # The handler saw the flag and stopped early: its work is not done.
            raise JobTimeout(timeout_message(job.worker_max_run_time), job_id=job.id)
        return outcome
