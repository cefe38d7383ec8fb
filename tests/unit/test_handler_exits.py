"""A handler's own SystemExit, KeyboardInterrupt or GeneratorExit is a failed attempt.

Anything a perform function raises, other than the worker's own shutdown, is counted,
rescheduled and logged, and the worker goes on to the next job (issue: a handler calling
``sys.exit(3)`` used to end the worker and leave the row to kill the next one).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import pytest

from djmw import Handlers, Job, JobAborted, Worker
from djmw.errors import WorkerShutdown
from djmw.middleware import EnforceTimeout, default_middlewares
from djmw.testing import InMemoryBackend, ManualClock

STRUCT = "--- !ruby/struct:{}\nn: 1\n"


class CustomBase(BaseException):
    """A BaseException subclass a library might raise."""


def _exit_3(job: Job) -> None:
    sys.exit(3)


def _keyboard(job: Job) -> None:
    raise KeyboardInterrupt


def _generator_exit(job: Job) -> None:
    raise GeneratorExit("closed")


def _custom(job: Job) -> None:
    raise CustomBase("odd")


CASES = [
    pytest.param(_exit_3, "SystemExit: 3", id="sys.exit(3)"),
    pytest.param(_keyboard, "KeyboardInterrupt", id="KeyboardInterrupt"),
    pytest.param(_generator_exit, "GeneratorExit: closed", id="GeneratorExit"),
    pytest.param(_custom, "CustomBase: odd", id="BaseException subclass"),
]


@pytest.mark.parametrize("mode", ["interrupt", "cooperative", "process"])
@pytest.mark.parametrize(("perform", "first_line"), CASES)
def test_a_base_exception_is_a_failed_attempt_and_the_worker_goes_on(
    perform: Callable[[Job], None],
    first_line: str,
    mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """attempts 1, last_error starts with the class and message, run_at moved by the
    backoff, lock cleared, the FAILED line names the class; the next job still runs."""
    clock = ManualClock()
    backend = InMemoryBackend(clock=clock)
    bad = backend.enqueue(STRUCT.format("ExitJob"))
    good = backend.enqueue(STRUCT.format("OkJob"))
    handlers = Handlers({"ExitJob": perform, "OkJob": lambda job: None})
    chain = default_middlewares(handlers)
    chain[-1] = EnforceTimeout(mode=mode)  # type: ignore[arg-type]
    worker = Worker(
        handlers=handlers, middlewares=chain, backend=backend.factory(), clock=clock, name="w"
    )
    with caplog.at_level(logging.INFO, "djmw"):
        assert worker.work_off(10) == (1, 1)
    assert good not in backend.rows  # ran and deleted (in process mode, in its child)
    row = backend.rows[bad]
    assert row.attempts == 1
    assert (row.last_error or "").splitlines()[0] == first_line
    assert (row.locked_by, row.failed_at) == (None, None)
    assert row.run_at is not None
    assert (row.run_at - clock()).total_seconds() == 6  # 1**4 + 5
    assert f"FAILED (0 prior attempts) with {first_line}" in caplog.text
    assert worker.status != "crashed"


def test_the_error_hook_sees_the_exit() -> None:
    """A class handler's error(job, exc) hook gets the JobAborted; after(job) still runs."""
    seen: list[object] = []

    class ExitJob:
        def perform(self, job: Job) -> None:
            sys.exit(3)

        def error(self, job: Job, exc: BaseException) -> None:
            seen.append(exc)

        def after(self, job: Job) -> None:
            seen.append("after")

    handlers = Handlers({"ExitJob": ExitJob})
    with pytest.raises(JobAborted, match=r"^SystemExit: 3$") as info:
        handlers(Job(id=1, handler="", name="ExitJob"))
    assert isinstance(info.value.__cause__, SystemExit)
    assert seen == [info.value, "after"]


def test_a_hook_that_exits_is_a_failed_attempt_too() -> None:
    """sys.exit() in a before hook becomes a JobAborted as well."""

    class ExitsEarly:
        def before(self, job: Job) -> None:
            raise SystemExit("bye")

        def perform(self, job: Job) -> None:
            raise AssertionError

    with pytest.raises(JobAborted, match=r"^SystemExit: bye$"):
        Handlers({"J": ExitsEarly})(Job(id=1, handler="", name="J"))


def test_the_workers_own_shutdown_passes_through() -> None:
    """WorkerShutdown is not a failure: it leaves the Handlers step as it is."""

    def shut(job: Job) -> None:
        raise WorkerShutdown

    with pytest.raises(WorkerShutdown):
        Handlers({"J": shut})(Job(id=1, handler="", name="J"))
