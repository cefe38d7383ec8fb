"""Handlers: registration, dispatch by name, payload hooks in delayed_job's order."""

from __future__ import annotations

import pytest

from djmw import ConfigurationError, Handlers, PayloadDecodeError, UnknownJobError
from djmw.job import Job
from djmw.testing import make_job


def test_dispatch_by_name() -> None:
    """The function registered under the job's name runs and its value is returned."""
    handlers = Handlers()
    handlers.register("A")(lambda job: f"ran {job.id}")
    assert handlers(make_job(id=3, name="A")) == "ran 3"


def test_unknown_name_fails_to_load() -> None:
    """A name with no handler is a load failure naming it."""
    with pytest.raises(UnknownJobError, match=r"^Job failed to load: .*'Nope'"):
        Handlers()(make_job(name="Nope"))


def test_load_error_is_raised_at_perform() -> None:
    """A job carrying a load error raises it instead of running anything."""
    error = PayloadDecodeError("Job failed to load: x")
    with pytest.raises(PayloadDecodeError):
        Handlers({"A": lambda job: None})(make_job(name="A", load_error=error))


def test_duplicate_registration_is_refused() -> None:
    """One target per name."""
    handlers = Handlers({"A": lambda job: None})
    with pytest.raises(ConfigurationError, match="already registered"):
        handlers.add("A", lambda job: None)


def test_hooks_run_in_delayed_job_order() -> None:
    """before → perform → success → after on success; before → perform → error → after on error."""
    calls: list[str] = []

    class Job1:
        fail = False

        def before(self, job: Job) -> None:
            calls.append("before")

        def perform(self, job: Job) -> None:
            calls.append("perform")
            if self.fail:
                raise ValueError("x")

        def success(self, job: Job) -> None:
            calls.append("success")

        def error(self, job: Job, exc: Exception) -> None:
            calls.append(f"error {exc}")

        def after(self) -> None:  # zero parameters: called without arguments
            calls.append("after")

    target = Job1()
    handlers = Handlers({"J": target})
    handlers(make_job(name="J"))
    assert calls == ["before", "perform", "success", "after"]
    calls.clear()
    target.fail = True
    with pytest.raises(ValueError, match="x"):
        handlers(make_job(name="J"))
    assert calls == ["before", "perform", "error x", "after"]


def test_dj_consumer_run_hook() -> None:
    """A class with run(job) (dj-consumer's name) is accepted and instantiated."""
    handlers = Handlers()

    @handlers.register("C")
    class Consumer:
        def run(self, job: Job) -> str:
            return "ran"

    assert handlers(make_job(name="C")) == "ran"
