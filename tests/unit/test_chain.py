"""compose(): order, data flowing inward, outcomes flowing outward, the contract check."""

from __future__ import annotations

import attrs
import pytest

from djmw import MiddlewareContractError, Succeeded, compose
from djmw.chain import CallNext
from djmw.job import Job
from djmw.outcome import Outcome
from djmw.testing import make_job


def test_first_middleware_is_outermost() -> None:
    """The first middleware in the list sees the job first and the outcome last."""
    trace: list[str] = []

    def layer(name: str):  # type: ignore[no-untyped-def]
        def middleware(job: Job, call_next: CallNext) -> Outcome:
            trace.append(f"{name} in")
            outcome = call_next(job)
            trace.append(f"{name} out")
            return outcome

        return middleware

    chain = compose([layer("a"), layer("b")], lambda job: trace.append("perform"))
    assert chain(make_job()) == Succeeded(None)
    assert trace == ["a in", "b in", "perform", "b out", "a out"]


def test_evolved_job_flows_inward_only() -> None:
    """An inner layer sees the job an outer layer evolved; perform's value is in Succeeded."""

    def rename(job: Job, call_next: CallNext) -> Outcome:
        return call_next(attrs.evolve(job, name="Renamed"))

    chain = compose([rename], lambda job: job.name)
    assert chain(make_job()) == Succeeded("Renamed")


def test_non_outcome_names_the_middleware() -> None:
    """A middleware that forgets to return call_next's outcome fails with its name."""

    def forgetful(job: Job, call_next: CallNext) -> Outcome:
        call_next(job)
        return None  # type: ignore[return-value]

    chain = compose([forgetful], lambda job: None)
    with pytest.raises(MiddlewareContractError, match=r"forgetful.*return call_next"):
        chain(make_job())
