"""Chain contracts checked at compose time, the built-in registry, backend binding."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from djmw import ConfigurationError, Handlers, Worker
from djmw.middleware import (
    BUILTINS,
    CountAttempts,
    DecodeYAML,
    EnforceTimeout,
    Heartbeat,
    LogOutcome,
    MarkFailed,
    ScheduleRetry,
    check_chain,
    default_middlewares,
)
from djmw.middleware.registry import bind_backend
from djmw.testing import InMemoryBackend

README = Path(__file__).resolve().parents[2] / "README.md"


def test_default_chain_keeps_every_contract() -> None:
    """The default chain passes the check."""
    check_chain(default_middlewares(Handlers()))


@pytest.mark.parametrize(
    ("chain", "missing"),
    [
        pytest.param([MarkFailed(), ScheduleRetry()], "CountAttempts inside", id="no_count"),
        pytest.param(
            [MarkFailed(), CountAttempts(), ScheduleRetry()],
            "CountAttempts inside it (later in the list); it is at middlewares[1], on the wrong side",
            id="count_outside_retry",
        ),
        pytest.param([ScheduleRetry(), CountAttempts()], "MarkFailed outside", id="no_mark"),
        pytest.param(
            [EnforceTimeout(), CountAttempts()],
            "CountAttempts outside it",
            id="timeout_outside_count",
        ),
    ],
)
def test_a_chain_that_would_retry_forever_is_refused(chain: list[object], missing: str) -> None:
    """A chain whose retry step never sees attempts grow names the missing middleware."""
    with pytest.raises(ConfigurationError, match=re.escape(missing)):
        check_chain(chain)  # type: ignore[arg-type]


def test_a_worker_refuses_a_bad_chain_at_prepare() -> None:
    """Worker.prepare() runs the check, before any job is reserved."""
    backend = InMemoryBackend()
    backend.enqueue("--- !ruby/struct:Fails {}\n")
    worker = Worker(
        handlers=Handlers({"Fails": lambda job: 1 / 0}),
        middlewares=[DecodeYAML(), MarkFailed(), ScheduleRetry()],
        backend=backend.factory(),
    )
    with pytest.raises(ConfigurationError, match="ScheduleRetry"):
        worker.prepare()
    assert next(iter(backend.rows.values())).locked_by is None


def test_minimal_chains_without_retry_are_allowed() -> None:
    """A chain without ScheduleRetry has no retry contract to keep."""
    check_chain([LogOutcome(), EnforceTimeout()])
    check_chain([])


def test_every_builtin_is_in_the_registry_and_the_readme() -> None:
    """The config loader's names, the README's middleware table and the package agree."""
    readme = README.read_text()
    for name in BUILTINS:
        assert f"`{name}" in readme, name
    assert "Heartbeat" in BUILTINS


def test_bind_backend_gives_heartbeat_the_workers_factory() -> None:
    """Heartbeat without its own connect gets the worker's; one with its own keeps it."""
    backend = InMemoryBackend()
    own = InMemoryBackend()
    bound = bind_backend(
        [Heartbeat(), Heartbeat(connect=own.factory()), LogOutcome()], backend.factory()
    )
    first, second, third = bound
    assert isinstance(first, Heartbeat)
    assert first.connect is not None
    assert first.connect() is backend
    assert isinstance(second, Heartbeat)
    assert second.connect is not None
    assert second.connect() is own
    assert isinstance(third, LogOutcome)
