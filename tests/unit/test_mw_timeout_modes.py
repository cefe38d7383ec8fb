"""EnforceTimeout's three modes against handlers that ignore the limit in different ways.

Observed matrix, 1-second limit (``stops`` = the attempt ends at about 1 s; otherwise the
handler runs to its own end, 2.5 s here, and only then does the attempt fail):

    handler                          interrupt   cooperative   process
    pure-Python busy loop            stops       -             stops
    time.sleep (a C call)            -           -             stops
    C call holding the GIL           -           -             stops
    threading.Lock deadlock          -           -             stops

Every mode fails the attempt with the same retryable JobTimeout and sets ``timed_out`` at
the limit, except that the C loop holding the GIL keeps the in-process timer (interrupt,
cooperative) from running: there the flag is only set once the loop returned.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from djmw import Handlers, Worker
from djmw.backends.base import SqlBackend
from djmw.chain import compose
from djmw.errors import (
    ChildJobError,
    ChildProcessFailed,
    ConfigurationError,
    JobTimeout,
    PermanentJobError,
)
from djmw.job import Job
from djmw.middleware import CountAttempts, EnforceTimeout, ScheduleRetry, default_middlewares
from djmw.middleware.timeout import TimeoutMode
from djmw.outcome import Outcome, Rescheduled, Succeeded, error_class_name, error_text
from djmw.testing import make_job

LIMIT = 1
SHORT = 2.5  # a handler that a mode cannot stop ends by itself after this long
LONG = 30.0  # a handler that a mode stops would run this long
STOPPED_BEFORE = 1.4  # an attempt stopped at the 1-second limit ends before this
RAN_PAST = 1.6  # an attempt that waited for the handler's own end took at least this
MESSAGE = r"^execution expired \(Delayed::Worker\.max_run_time is only 1 second\)$"

Handler = Callable[[Job], Outcome]


#: libc through ctypes.PyDLL, which keeps the GIL held during a call, as a C extension's
#: long loop does; unlike a calibrated CPU loop its length does not depend on the load.
_LIBC_HOLDING_THE_GIL = ctypes.PyDLL(None)


def python_loop(seconds: float) -> Handler:
    """A busy loop in Python bytecode."""

    def handler(job: Job) -> Outcome:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pass
        return Succeeded("finished")

    return handler


def c_sleep(seconds: float) -> Handler:
    """One blocking C call (the GIL is released, but no bytecode runs)."""

    def handler(job: Job) -> Outcome:
        time.sleep(seconds)
        return Succeeded("finished")

    return handler


def c_loop(seconds: float) -> Handler:
    """One C call that holds the GIL for ``seconds`` (never back in bytecode): libc's
    usleep through ctypes.PyDLL."""
    micros = int(seconds * 1_000_000)

    def handler(job: Job) -> Outcome:
        _LIBC_HOLDING_THE_GIL.usleep(micros)
        return Succeeded("finished")

    return handler


def deadlock(seconds: float) -> Handler:
    """A lock the handler already holds: what a deadlocked library does."""

    def handler(job: Job) -> Outcome:
        lock = threading.Lock()
        lock.acquire()
        lock.acquire(timeout=seconds)
        return Succeeded("finished")

    return handler


HANDLERS: dict[str, Callable[[float], Handler]] = {
    "python_loop": python_loop,
    "c_sleep": c_sleep,
    "c_loop": c_loop,
    "deadlock": deadlock,
}
MODES: tuple[TimeoutMode, ...] = ("interrupt", "cooperative", "process")
STOPS: dict[str, set[str]] = {
    "interrupt": {"python_loop"},
    "cooperative": set(),
    "process": set(HANDLERS),
}


class StampedEvent(threading.Event):
    """The job's timeout flag, remembering when it was set."""

    set_at: float | None = None

    def set(self) -> None:
        self.set_at = time.monotonic()
        super().set()


@pytest.mark.parametrize("kind", list(HANDLERS))
@pytest.mark.parametrize("mode", MODES)
def test_which_mode_stops_which_handler(mode: TimeoutMode, kind: str) -> None:
    """process stops every kind at the limit; interrupt only the Python loop; cooperative none.

    A handler the mode cannot stop ends by itself after 2.5 s: the attempt still fails
    with the JobTimeout, but only after the handler returned. timed_out is set at the
    limit, except that a C loop holding the GIL keeps the in-process timer from running:
    there the flag is only set once the loop returned.
    """
    stops = kind in STOPS[mode]
    handler = HANDLERS[kind](LONG if stops else SHORT)
    flag = StampedEvent()
    job = make_job(worker_max_run_time=LIMIT, timeout_event=flag)
    started = time.monotonic()
    with pytest.raises(JobTimeout, match=MESSAGE):
        EnforceTimeout(mode=mode)(job, handler)
    elapsed = time.monotonic() - started
    if stops:
        assert elapsed < STOPPED_BEFORE
    else:
        assert elapsed >= RAN_PAST
    assert job.timed_out
    assert flag.set_at is not None
    flagged = flag.set_at - started
    if kind == "c_loop" and mode != "process":
        assert flagged >= RAN_PAST
    else:
        assert LIMIT <= flagged < LIMIT + 0.3


def test_c_loop_really_holds_the_gil() -> None:
    """While the C call holding the GIL runs, no other Python thread runs; during
    time.sleep they do."""
    ticks = [0]
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    def ticks_during(handler: Handler) -> int:
        before = ticks[0]
        handler(make_job())
        return ticks[0] - before

    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    try:
        sleeping = ticks_during(c_sleep(0.5))
        looping = ticks_during(c_loop(0.5))
    finally:
        stop.set()
        thread.join()
    assert sleeping > 100
    assert looping < 10


class Unreadable:
    """A value that pickles but cannot be unpickled."""

    def __reduce__(self) -> tuple[object, ...]:
        return (Unreadable, ("an argument too many",))


def test_process_mode_returns_the_handlers_value() -> None:
    """The child's Succeeded value comes back; one that cannot be pickled, or unpickled,
    becomes None: the job ran, so it still succeeds."""
    job = make_job(worker_max_run_time=5)
    value = {"n": 1, "items": [1.5, "two", None]}
    timeout = EnforceTimeout(mode="process")
    assert timeout(job, lambda j: Succeeded(value)) == Succeeded(value)
    assert timeout(job, lambda j: Succeeded(threading.Lock())) == Succeeded()
    assert timeout(job, lambda j: Succeeded(Unreadable())) == Succeeded()
    assert not job.timed_out


def boom(job: Job) -> Outcome:
    """Raise ValueError("boom"): an ordinary failing handler."""
    msg = "boom"
    raise ValueError(msg)


def test_process_mode_exception_reaches_the_parent() -> None:
    """ValueError("boom") in the child is raised in the parent: same class, same message,
    and last_error's backtrace starts at the handler's frame in the child."""
    job = make_job(worker_max_run_time=5)
    with pytest.raises(ValueError, match=r"^boom$") as caught:
        EnforceTimeout(mode="process")(job, boom)
    text = error_text(caught.value).splitlines()
    assert text[0] == "boom"
    assert text[1] == f"{__file__}:{boom.__code__.co_firstlineno + 3}:in `boom'"


def test_process_mode_failure_becomes_a_rescheduled_attempt() -> None:
    """Through the retry middlewares, the child's failure is a counted, rescheduled attempt."""
    chain = compose([ScheduleRetry(), CountAttempts(), EnforceTimeout(mode="process")], boom)
    outcome = chain(make_job(attempts=2, worker_max_run_time=5))
    assert isinstance(outcome, Rescheduled)
    assert outcome.attempts == 3
    assert isinstance(outcome.error, ValueError)
    assert str(outcome.error) == "boom"

    inside = compose([EnforceTimeout(mode="process"), ScheduleRetry(), CountAttempts()], boom)
    outcome = inside(make_job(attempts=2, worker_max_run_time=5))
    assert isinstance(outcome, Rescheduled)
    assert str(outcome.error) == "boom"
    assert "in `boom'" in error_text(outcome.error)


class SocketError(Exception):
    """An exception that cannot be pickled: it holds a lock and takes two arguments."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"cannot reach {host}:{port}")
        self.lock = threading.Lock()


def test_unpicklable_exception_keeps_name_message_and_traceback() -> None:
    """An exception that cannot be pickled arrives as a ChildJobError named like the
    original class, with its message, the child's traceback text and frames."""

    def handler(job: Job) -> Outcome:
        raise SocketError("db", 5432)

    with pytest.raises(ChildJobError) as caught:
        EnforceTimeout(mode="process")(make_job(worker_max_run_time=5), handler)
    error = caught.value
    assert error_class_name(error) == "SocketError"
    assert str(error) == "cannot reach db:5432"
    assert error.class_name.endswith("SocketError")
    assert "Traceback (most recent call last)" in error.traceback_text
    assert "SocketError: cannot reach db:5432" in error.traceback_text
    assert error_text(error).splitlines()[1].endswith(":in `handler'")


def test_permanent_error_stays_permanent() -> None:
    """A PermanentJobError raised in the child is still one in the parent (no retries)."""

    def handler(job: Job) -> Outcome:
        msg = "cannot succeed"
        raise PermanentJobError(msg, job_id=job.id)

    with pytest.raises(PermanentJobError, match="cannot succeed") as caught:
        EnforceTimeout(mode="process")(make_job(id=7, worker_max_run_time=5), handler)
    assert caught.value.job_id == 7


def test_system_exit_in_the_child_is_a_job_failure() -> None:
    """sys.exit() in the handler ends the attempt, not the worker: a ChildJobError."""

    def handler(job: Job) -> Outcome:
        raise SystemExit(4)

    with pytest.raises(ChildJobError) as caught:
        EnforceTimeout(mode="process")(make_job(worker_max_run_time=5), handler)
    assert error_class_name(caught.value) == "SystemExit"


def test_child_killed_by_a_signal_or_exiting_fails_the_attempt() -> None:
    """A child that dies by a signal or exits without a result fails with a clear message."""

    def killed(job: Job) -> Outcome:
        os.kill(os.getpid(), signal.SIGKILL)
        return Succeeded()

    def exits(job: Job) -> Outcome:
        os._exit(3)

    timeout = EnforceTimeout(mode="process")
    with pytest.raises(
        ChildProcessFailed, match=r"^the job's child process died with signal 9 \(SIGKILL\)$"
    ):
        timeout(make_job(worker_max_run_time=5), killed)
    with pytest.raises(ChildProcessFailed, match="exited with status 3 without sending a result"):
        timeout(make_job(worker_max_run_time=5), exits)


def test_sigterm_ignored_means_sigkill_after_grace() -> None:
    """A child that ignores SIGTERM is SIGKILLed grace seconds after the limit."""

    def stubborn(job: Job) -> Outcome:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(LONG)
        return Succeeded()

    started = time.monotonic()
    with pytest.raises(JobTimeout, match=MESSAGE):
        EnforceTimeout(mode="process", grace=0.5)(make_job(worker_max_run_time=LIMIT), stubborn)
    # SIGTERM at the 1 s limit is ignored; SIGKILL follows 0.5 s later (bounded above
    # loosely: the point is that the child did not run its 30 s).
    assert 1.4 < time.monotonic() - started < 10


def test_processes_the_handler_started_are_killed_too(tmp_path: Path) -> None:
    """The child runs in its own process group: a subprocess it started dies at the limit."""
    pid_file = tmp_path / "pid"

    def spawns(job: Job) -> Outcome:
        process = subprocess.Popen(["sleep", "30"])
        pid_file.write_text(str(process.pid))
        process.wait()
        return Succeeded()

    with pytest.raises(JobTimeout):
        EnforceTimeout(mode="process", grace=0.2)(make_job(worker_max_run_time=LIMIT), spawns)
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 3
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def test_the_child_changes_nothing_in_the_worker_process() -> None:
    """State the handler changes stays in the child (a documented price of the mode)."""
    calls: list[int] = []

    def handler(job: Job) -> Outcome:
        calls.append(job.id)
        return Succeeded(len(calls))

    assert EnforceTimeout(mode="process")(make_job(worker_max_run_time=5), handler) == Succeeded(1)
    assert calls == []


def test_no_descriptor_or_child_is_left_behind() -> None:
    """Every child is reaped and every pipe closed, after results, failures and kills."""
    before = len(os.listdir("/proc/self/fd"))
    timeout = EnforceTimeout(mode="process", grace=0.1)
    for _ in range(5):
        timeout(make_job(worker_max_run_time=5), lambda j: Succeeded(1))
        with pytest.raises(ValueError, match="boom"):
            timeout(make_job(worker_max_run_time=5), boom)
    with pytest.raises(JobTimeout):
        timeout(make_job(worker_max_run_time=LIMIT), c_sleep(LONG))
    assert len(os.listdir("/proc/self/fd")) == before
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


class Shutdown(BaseException):
    """Stands for the worker's hard-stop exception, raised into the job's thread."""


def test_an_exception_raised_into_the_waiting_thread_kills_the_child() -> None:
    """Worker.interrupt's async exception lands in the waiting parent within a quarter
    second; the child is killed and reaped on the way out."""
    ended: list[tuple[str, float]] = []

    def run() -> None:
        try:
            EnforceTimeout(mode="process")(make_job(worker_max_run_time=60), c_sleep(LONG))
        except BaseException as exc:
            ended.append((type(exc).__name__, time.monotonic()))

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.3)
    raised_at = time.monotonic()
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident or 0), ctypes.py_object(Shutdown)
    )
    thread.join(5)
    assert [name for name, _ in ended] == ["Shutdown"]
    assert ended[0][1] - raised_at < 0.5
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_process_mode_without_a_limit_still_runs_in_a_child() -> None:
    """A limit of 0 (none) keeps the isolation and waits for the child however long."""
    job = make_job(max_run_time=0.5, worker_max_run_time=5)
    outcome = EnforceTimeout(mode="process")(job, lambda j: Succeeded(os.getpid()))
    assert isinstance(outcome, Succeeded)
    assert outcome.value != os.getpid()


def test_bad_configuration_names_the_field() -> None:
    """Bad mode, grace or max_run_time values fail at construction, naming the field."""
    with pytest.raises(ConfigurationError, match="'process'"):
        EnforceTimeout(mode="fork")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="grace"):
        EnforceTimeout(mode="process", grace=-1)
    with pytest.raises(ConfigurationError, match="grace"):
        EnforceTimeout(grace=True)
    with pytest.raises(ConfigurationError, match="max_run_time"):
        EnforceTimeout(max_run_time=float("nan"))


SLEEPY = "--- !ruby/struct:SleepyJob {}\n"
OK = "--- !ruby/struct:OkJob {}\n"


def test_worker_with_process_mode_times_out_and_keeps_its_connection(
    db_url: str, db: SqlBackend
) -> None:
    """A handler sleeping in C past max_run_time=1 is killed: attempts 1, delayed_job's
    message in last_error, and the worker's next job runs on the same, healthy connection."""
    setup = db
    sleepy = setup.enqueue(SLEEPY, priority=0)
    ok = setup.enqueue(OK, priority=1)
    handlers = Handlers({"SleepyJob": lambda job: time.sleep(LONG), "OkJob": lambda job: None})
    middlewares = [*default_middlewares(handlers)[:-1], EnforceTimeout(mode="process")]
    worker = Worker(database=db_url, handlers=handlers, middlewares=middlewares, max_run_time=1)
    worker.prepare()
    assert worker._loop is not None
    connection = worker._loop.backend
    session = _session_id(worker)
    started = time.monotonic()
    assert worker.work_off(2) == (1, 1)
    assert time.monotonic() - started < 5
    assert worker._loop is not None
    assert worker._loop.backend is connection
    assert _session_id(worker) == session
    row = setup.job(sleepy)
    assert row is not None
    assert row.attempts == 1
    assert row.last_error is not None
    assert row.last_error.startswith(
        "execution expired (Delayed::Worker.max_run_time is only 1 second)"
    )
    assert row.locked_by is None
    assert setup.job(ok) is None
    worker.close()


def _session_id(worker: Worker) -> object:
    assert worker._loop is not None
    backend = worker._loop.backend
    if type(backend).__name__ != "MysqlBackend":
        return None
    stats = getattr(backend, "stats", {})
    assert stats.get("reconnects", 0) == 0
    return backend._query("SELECT CONNECTION_ID()")[0][0]  # type: ignore[union-attr]
