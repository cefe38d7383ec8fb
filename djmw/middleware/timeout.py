"""EnforceTimeout: stop waiting for a job at its max_run_time and fail the attempt."""

from __future__ import annotations

import threading
from typing import Literal

import attrs

from djmw._interrupt import drain_pending, raise_in_thread
from djmw.chain import CallNext
from djmw.errors import ChildTimedOut, JobTimeout, TimeoutInterrupt
from djmw.job import Job
from djmw.middleware._child import run_in_child
from djmw.middleware._watchdog import Watchdog
from djmw.outcome import Outcome
from djmw.validation import one_of, optional, seconds

TimeoutMode = Literal["interrupt", "cooperative", "process"]
_MODES = ("interrupt", "cooperative", "process")


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


@attrs.frozen(kw_only=True)
class EnforceTimeout:
    """Fail the attempt with a retryable JobTimeout once the job's time limit passes.

    Where: inside CountAttempts, so a timeout is an ordinary counted, rescheduled attempt
    (delayed_job's ``Timeout.timeout(max_run_time)``). It is the innermost middleware of
    the default chain: in ``process`` mode only what is inside it runs in the child.

    The limit is the job's ``max_run_time`` override (which can only lower it) or
    ``max_run_time`` here, else the worker's max_run_time (default 4 hours), truncated to
    whole seconds. At the limit ``job.timed_out`` becomes True; the message is delayed_job's
    ``execution expired (Delayed::Worker.max_run_time is only N seconds)``.

    Args:
        max_run_time: seconds; None uses the worker's value. A value set here is the
            limit even above the worker's max_run_time, which is also the lock expiry:
            pair such a value with the Heartbeat middleware, or other workers take the
            job once its lock expires.
        mode: ``interrupt`` (default) raises the timeout inside the job's thread;
            ``cooperative`` only sets ``job.timed_out`` for the handler to poll, and fails
            the attempt when the handler returns after the limit; ``process`` runs the
            inner chain in a forked child process and kills it at the limit.
        grace: ``process`` mode only: seconds between SIGTERM and SIGKILL (default 2).

    Note:
        What each mode can stop:

        - ``interrupt`` is delivered between Python bytecodes. It stops pure-Python code
          at the limit, but not a C call (``time.sleep``, a socket read, a deadlocked
          ``threading.Lock``, a C loop such as ``sum(range(10**12))``) until that call
          returns; a C loop that holds the GIL even keeps the limit's timer from running,
          so ``job.timed_out`` only turns True after it. Code that catches ``Exception``
          broadly can swallow it (the attempt still fails, since ``timed_out`` is set).
        - ``cooperative`` stops nothing: the handler must poll ``job.timed_out``. A handler
          that returns after the limit (done or not) fails with the JobTimeout.
        - ``process`` stops everything, C calls, GIL-holding C loops and deadlocks
          included. The inner chain runs in a child forked from the worker (``fork``
          start method, POSIX), in its own process group. At the limit the parent sets
          ``job.timed_out`` and sends SIGTERM to the group (the child's SIGTERM action is
          reset to the default, so it ends at once unless the handler installs its own
          handler), then SIGKILL after ``grace``; processes the handler started die too.

        In ``process`` mode the child ends with ``os._exit``, so no finalizer it inherited
        runs: a PyMySQL connection of the worker, whose socket the child inherited, never
        sends anything from the child, and the outcome is always written on a connection
        the handler could not have left mid-query. Results come back pickled: a return
        value that cannot be pickled becomes ``Succeeded(None)``; an exception that
        cannot be pickled (or does not unpickle equal) arrives as a ChildJobError named
        like the original class, with its message and the child's traceback text. The
        child's traceback is rebuilt either way, so ``last_error`` lists the handler's
        frames. A child that dies (a signal, ``os._exit``) fails the attempt with a
        retryable ChildProcessFailed: ``the job's child process died with signal 9
        (SIGKILL)``. With no limit (0) the inner chain still runs in a child.

        Its price: a fork per job (copy-on-write, a few milliseconds); what the handler
        changes in memory (caches, module globals) stays in the child; the child never
        sees ``job.timed_out`` turn True; only the forking thread exists in the child,
        so a lock that another thread held at the fork stays held there (a handler that
        needs it hangs until the limit), and log handlers that pass records to a thread
        (QueueListener) lose the child's records.
    """

    max_run_time: float | None = attrs.field(default=None, validator=optional(seconds))
    mode: TimeoutMode = attrs.field(default="interrupt", validator=one_of(_MODES))
    grace: float = attrs.field(default=2.0, validator=seconds)
    _watchdog: Watchdog = attrs.field(factory=Watchdog, init=False, eq=False, repr=False)

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run the inner chain under the job's time limit."""
        worker_limit = job.worker_max_run_time if self.max_run_time is None else self.max_run_time
        limit = effective_limit(job, worker_limit)
        if self.mode == "process":
            return self._in_child(job, call_next, limit)
        if limit == 0:
            return call_next(job)
        lock = threading.Lock()
        running = [True]
        thread_id = threading.get_ident()

        def expire() -> None:
            with lock:
                job.timeout_event.set()
                if running[0] and self.mode == "interrupt":
                    raise_in_thread(thread_id, TimeoutInterrupt)

        timer = self._watchdog.schedule(limit, expire)
        try:
            try:
                try:
                    outcome = call_next(job)
                finally:
                    # First close the window in which expire() may still raise; until then
                    # no Python-level lock may be taken here (an exception landing inside
                    # Condition.__enter__ would leave the watchdog's lock held forever).
                    with lock:
                        running[0] = False
                        if job.timed_out and self.mode == "interrupt":
                            drain_pending()
            except TimeoutInterrupt as exc:
                raise JobTimeout(timeout_message(job.worker_max_run_time), job_id=job.id) from exc
        finally:
            timer.cancel()  # nothing can be raised into this thread any more
        if job.timed_out and self.mode == "cooperative":
            # The handler saw the flag and stopped early: its work is not done.
            raise JobTimeout(timeout_message(job.worker_max_run_time), job_id=job.id)
        return outcome

    def _in_child(self, job: Job, call_next: CallNext, limit: int) -> Outcome:
        try:
            return run_in_child(
                call_next,
                job,
                limit=limit or None,
                grace=self.grace,
                on_limit=job.timeout_event.set,
            )
        except ChildTimedOut as exc:
            raise JobTimeout(timeout_message(job.worker_max_run_time), job_id=job.id) from exc


__all__ = [
    "EnforceTimeout",
    "TimeoutMode",
    "effective_limit",
    "timeout_message",
]
