"""Run the inner chain in a forked child process; bring its Outcome or exception back.

Private: ``EnforceTimeout(mode="process")`` is the public way in. The child is forked
(copy-on-write, so the Job and the composed chain need no pickling) and ends with
``os._exit``: no atexit handler, finalizer or ``__del__`` the child inherited runs, so
nothing it inherited from the worker (a PyMySQL connection's socket, an SQLite handle)
sends a byte or releases a lock on the worker's behalf. The worker's bookkeeping keeps
using its own connection, which the handler never had the chance to leave mid-query.

Results travel over a pipe as one length-prefixed pickle. Values and exceptions that do
not survive a pickle round trip are replaced (``Succeeded(None)``, ``ChildJobError``), and
the child's traceback is rebuilt in the parent so that ``last_error`` still lists the
handler's frames.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import NoReturn, cast

from djmw.errors import ChildProcessFailed, ChildTimedOut, child_job_error
from djmw.job import Job
from djmw.outcome import Failed, Outcome, Rescheduled, Succeeded

#: (filename, line number, function name) of one traceback entry, outermost first.
Frame = tuple[str, int, str]

_HEADER = struct.Struct("!Q")
_POLL_SECONDS = 0.05
# The longest the parent sleeps in one wait: an exception raised into its thread
# (Worker.interrupt) lands between waits, and then kills the child.
_WAKE_SECONDS = 0.25
_CHUNK = 1 << 16
_EXIT_SENT = 0
_EXIT_UNSENT = 70  # EX_SOFTWARE: the child could not even report its result


# -- the child -------------------------------------------------------------------------


def _safe_str(error: BaseException) -> str:
    try:
        return str(error)
    except Exception as exc:  # a broken __str__ must not lose the whole error
        return f"<str() of {type(error).__name__} failed: {type(exc).__name__}>"


def _round_trips(error: BaseException) -> bool:
    try:
        back = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, same process
    except Exception:
        return False
    return type(back) is type(error) and _safe_str(back) == _safe_str(error)


def _pack_error(error: BaseException, skip_frames: int = 0) -> tuple[object, ...]:
    frames: list[Frame] = [
        (frame.filename, frame.lineno or 1, frame.name)
        for frame in traceback.extract_tb(error.__traceback__)[skip_frames:]
    ]
    try:
        text = "".join(traceback.format_exception(error))
    except Exception:
        text = ""
    sendable = error if isinstance(error, Exception) and _round_trips(error) else None
    qualname = type(error).__qualname__
    return (sendable, qualname, _safe_str(error), text, frames)


def _pack_outcome(outcome: Outcome) -> tuple[object, ...]:
    match outcome:
        case Succeeded(value=value):
            # Pickled apart: a value that fails to pickle here, or to unpickle in the
            # worker, must not turn a job that ran into a failed (and rerun) attempt.
            try:
                data = pickle.dumps(value)
            except Exception:
                data = pickle.dumps(None)
            return ("succeeded", data)
        case Rescheduled(run_at=run_at, attempts=attempts, error=error):
            return ("rescheduled", run_at, attempts, _pack_error(error))
        case Failed(attempts=attempts, error=error, delete=delete, exhausted=exhausted):
            return ("failed", attempts, delete, exhausted, _pack_error(error))
    msg = f"not an Outcome: {outcome!r}"  # pragma: no cover - the chain checks this
    raise TypeError(msg)


def _send(fd: int, message: tuple[object, ...]) -> None:
    data = pickle.dumps(message)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _child_main(
    call_next: Callable[[Job], Outcome], job: Job, read_fd: int, write_fd: int
) -> NoReturn:
    code = _EXIT_UNSENT
    try:
        os.close(read_fd)
        # Its own process group: the worker's terminal Ctrl-C stays with the worker, and
        # the kill at the limit reaches the processes the handler started.
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        # The worker's SIGTERM handler (graceful stop) means nothing here, and a Python
        # handler cannot run during a C call: the default action ends the child at once.
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            message: tuple[object, ...] = ("outcome", _pack_outcome(call_next(job)))
        except BaseException as error:
            message = ("error", _pack_error(error, skip_frames=1))
        _send(write_fd, message)
        code = _EXIT_SENT
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        # Never return into the worker's code, never run inherited finalizers.
        os._exit(code)


# -- the parent ------------------------------------------------------------------------


def _fake_traceback(frames: list[Frame]) -> TracebackType | None:
    # Each entry is a real frame of a one-line code object compiled at the original file
    # and line, named like the original function: error_text() and logging print them as
    # if the handler had raised in this process.
    head: TracebackType | None = None
    previous: TracebackType | None = None
    try:
        for filename, lineno, name in frames:
            source = "\n" * (max(lineno, 1) - 1) + "raise __error__"
            code = compile(source, filename, "exec").replace(co_name=name)
            try:
                exec(code, {"__error__": RuntimeError})  # noqa: S102 - a fixed one-line raise
            except RuntimeError:
                entry = sys.exc_info()[2]
            if entry is None or entry.tb_next is None:  # pragma: no cover - always set
                return head
            entry = entry.tb_next
            if previous is None:
                head = entry
            else:
                previous.tb_next = entry
            previous = entry
    except Exception:  # a lost backtrace is better than a lost error
        return head
    return head


def _unpack_error(packed: tuple[object, ...], job_id: int) -> BaseException:
    sendable, qualname, message, text, frames = packed
    if isinstance(sendable, BaseException):
        error = sendable
    else:
        error = child_job_error(str(qualname), str(message), str(text), job_id)
    return error.with_traceback(_fake_traceback(cast(list[Frame], frames)))


def _unpack_outcome(packed: tuple[object, ...], job_id: int) -> Outcome:
    match packed:
        case ("succeeded", bytes() as data):
            try:
                return Succeeded(pickle.loads(data))  # noqa: S301 - our child's bytes
            except Exception:
                return Succeeded(None)
        case ("rescheduled", datetime() as run_at, int() as attempts, tuple() as error):
            return Rescheduled(run_at=run_at, attempts=attempts, error=_unpack_error(error, job_id))
        case ("failed", int() as attempts, bool() as delete, bool() as exhausted, tuple() as error):
            return Failed(
                attempts=attempts,
                delete=delete,
                exhausted=exhausted,
                error=_unpack_error(error, job_id),
            )
    msg = f"the job's child process sent an unreadable outcome {packed!r:.200}"
    raise ChildProcessFailed(msg, job_id=job_id)


def _exited(pid: int) -> bool:
    # WNOWAIT leaves the zombie in place: its pid (and process group id) cannot be reused
    # before we reap it, so signalling the group stays safe until then.
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _pidfd(pid: int) -> int | None:
    # Readable once the child exits (Linux >= 5.3): no polling. Elsewhere we poll.
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


class _Child:
    """The parent's view of one child: its pid, exit watcher and result pipe."""

    def __init__(self, pid: int, read_fd: int) -> None:
        self.pid = pid
        self.fd = read_fd
        self.pidfd = _pidfd(pid)
        self.data = bytearray()
        self.eof = False
        self.reaped = False
        os.set_blocking(read_fd, False)

    def close(self) -> None:
        os.close(self.fd)
        if self.pidfd is not None:
            os.close(self.pidfd)

    @property
    def complete(self) -> bool:
        """True once the whole length-prefixed message is in."""
        if len(self.data) < _HEADER.size:
            return False
        size = int(_HEADER.unpack_from(self.data)[0])
        return len(self.data) >= _HEADER.size + size

    def wait(self, seconds: float) -> None:
        """Sleep until output arrives, the child exits, or ``seconds`` pass."""
        fds = [] if self.eof else [self.fd]
        if self.pidfd is not None:
            fds.append(self.pidfd)
        else:
            seconds = min(seconds, _POLL_SECONDS)
        if not fds:
            time.sleep(seconds)
            return
        ready, _, _ = select.select(fds, [], [], seconds)
        if self.fd in ready:
            self.drain()

    def drain(self) -> None:
        """Read what the pipe holds now."""
        while not self.eof:
            try:
                chunk = os.read(self.fd, _CHUNK)
            except BlockingIOError:
                return
            if not chunk:
                self.eof = True
            self.data += chunk

    def wait_exit(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the child to exit (without reaping it)."""
        deadline = time.monotonic() + seconds
        while not _exited(self.pid):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.wait(remaining)
        return True

    def reap(self) -> int:
        """Collect the exited child's status."""
        _, status = os.waitpid(self.pid, 0)
        self.reaped = True
        return status

    def stop(self, grace: float) -> None:
        """SIGTERM the child's group, SIGKILL it after ``grace`` seconds, reap the child."""
        _signal_group(self.pid, signal.SIGTERM)
        self.wait_exit(grace)
        # Also ends what the handler started and what ignored SIGTERM; the leader is at
        # most a zombie here, so the group id still names our group.
        _signal_group(self.pid, signal.SIGKILL)
        self.reap()

    def message(self) -> tuple[object, ...]:
        """The child's unpickled message."""
        (size,) = _HEADER.unpack_from(self.data)
        body = bytes(self.data[_HEADER.size : _HEADER.size + size])
        return cast(tuple[object, ...], pickle.loads(body))  # noqa: S301 - our child's bytes


def _died(status: int, job_id: int) -> ChildProcessFailed:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            name = f" ({signal.Signals(-code).name})"
        except ValueError:
            name = ""
        msg = f"the job's child process died with signal {-code}{name}"
    else:
        msg = f"the job's child process exited with status {code} without sending a result"
    return ChildProcessFailed(msg, job_id=job_id)


def run_in_child(
    call_next: Callable[[Job], Outcome],
    job: Job,
    *,
    limit: float | None,
    grace: float,
    on_limit: Callable[[], None],
) -> Outcome:
    """Run ``call_next(job)`` in a forked child; return its Outcome or raise its exception.

    At ``limit`` seconds (None = never) ``on_limit`` runs, the child's process group gets
    SIGTERM, then SIGKILL after ``grace`` seconds, and ChildTimedOut is raised. A child
    that ends without a result raises ChildProcessFailed.
    """
    read_fd, write_fd = os.pipe()
    deadline = None if limit is None else time.monotonic() + limit
    # Lines buffered in the parent (djmw's LineHandler flushes in the background) would
    # be inherited by the child and written twice.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which never reports coverage
        _child_main(call_next, job, read_fd, write_fd)
    os.close(write_fd)
    # Also set here: the parent may signal the group before the child ran setpgid.
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)
    child = _Child(pid, read_fd)
    try:
        result_at: float | None = None
        while True:
            if _exited(pid):
                child.drain()
                status = child.reap()
                if child.complete:
                    break
                raise _died(status, job.id)
            now = time.monotonic()
            if child.complete:
                # The result is in; the child only flushes its output and exits now.
                result_at = now if result_at is None else result_at
                if now - result_at >= grace:
                    child.stop(0.0)
                    break
                wait = result_at + grace - now
            elif deadline is not None and now >= deadline:
                on_limit()
                child.stop(grace)
                msg = f"the job's child process ran past its {limit:g} s limit and was killed"
                raise ChildTimedOut(msg, job_id=job.id)
            else:
                wait = _WAKE_SECONDS if deadline is None else deadline - now
            child.wait(min(wait, _WAKE_SECONDS))
    finally:
        if not child.reaped:  # the parent itself was interrupted: leave no orphan behind
            with contextlib.suppress(OSError):
                child.stop(0.0)
        child.close()
    try:
        kind, packed = child.message()
    except Exception as exc:
        msg = f"the job's child process sent a result that cannot be read: {exc}"
        raise ChildProcessFailed(msg, job_id=job.id) from exc
    if kind == "error":
        raise _unpack_error(cast(tuple[object, ...], packed), job.id)
    return _unpack_outcome(cast(tuple[object, ...], packed), job.id)
