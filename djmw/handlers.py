"""Handlers: the user's perform functions, registered by job name, and the perform step.

The registry maps delayed_job display names (``NewsletterJob``, ``User#activate!``,
``User.cleanup``, an ActiveJob ``job_class``) to a Python callable taking the Job, or to an
object (or class) with a ``perform(job)`` method and optional lifecycle hooks:

- delayed_job's payload hooks ``before(job)``, ``success(job)``, ``error(job, exc)``,
  ``after(job)`` run around ``perform`` inside the time limit, in delayed_job's order;
- dj-consumer's ``run(job)`` is accepted in place of ``perform(job)``, ``exception(job, exc)``
  beside ``error`` and ``finally_(job)`` beside ``after``;
- ``config(job)`` (per-job overrides) and ``failure(job)`` / ``failed(job)`` are called by
  the RunHooks middleware.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar, cast

from djmw.errors import (
    ConfigurationError,
    JobAborted,
    PayloadDecodeError,
    UnknownJobError,
    WorkerShutdown,
)
from djmw.job import Job

T = TypeVar("T")

_PERFORM_NAMES = ("perform", "run")
_BEFORE_HOOKS = ("before",)
_SUCCESS_HOOKS = ("success",)
_ERROR_HOOKS = ("error", "exception")
_AFTER_HOOKS = ("after", "finally_")


def _call_hook(target: object, names: tuple[str, ...], *args: object) -> None:
    for hook_name in names:
        hook = getattr(target, hook_name, None)
        if hook is None:
            continue
        # delayed_job calls a hook that takes no parameters without arguments.
        if _takes_no_arguments(hook):
            hook()
        else:
            hook(*args)


def _takes_no_arguments(function: Callable[..., object]) -> bool:
    try:
        return not inspect.signature(function).parameters
    except (TypeError, ValueError):  # builtins without a signature: pass the arguments
        return False


class Handlers:
    """A registry of perform functions by job name; also the innermost step of the chain.

    Example::

        handlers = djmw.Handlers()

        @handlers.register("NewsletterJob")
        def newsletter(job: djmw.Job) -> None: ...

    Limits: one target per name; registering a name twice raises ConfigurationError.
    """

    def __init__(self, targets: Mapping[str, object] | None = None) -> None:
        self._targets: dict[str, object] = {}
        for name, target in (targets or {}).items():
            self.add(name, target)

    def add(self, name: str, target: object) -> None:
        """Register ``target`` (a callable taking the Job, or an object/class with ``perform``)."""
        if not isinstance(name, str) or not name:
            msg = f"Handlers: job name must be a non-empty string, got {name!r}."
            raise ConfigurationError(msg)
        if name in self._targets:
            msg = f"Handlers: a perform function is already registered for {name!r}."
            raise ConfigurationError(msg)
        if inspect.isclass(target):
            target = target()
        if not callable(target) and not any(hasattr(target, n) for n in _PERFORM_NAMES):
            msg = (
                f"Handlers: the target registered for {name!r} is neither callable nor has a "
                "perform(job) method."
            )
            raise ConfigurationError(msg)
        self._targets[name] = target

    def register(self, name: str) -> Callable[[T], T]:
        """Return a decorator that registers a function or class under ``name``."""

        def decorator(target: T) -> T:
            self.add(name, target)
            return target

        return decorator

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def target(self, name: str | None) -> object | None:
        """Return what is registered under ``name``, or None."""
        return self._targets.get(name) if name is not None else None

    def __call__(self, job: Job) -> object:
        """Run ``job``: raise its load error, look up its target, run hooks and perform.

        Raises:
            PayloadDecodeError: the handler could not be decoded (``job.load_error``), or the
                chain has no DecodeYAML.
            UnknownJobError: no target is registered under ``job.name``.
            JobAborted: perform or a hook raised a BaseException that is not an Exception
                (``sys.exit()``, ``KeyboardInterrupt``, ``GeneratorExit``); a failed
                attempt like any other. Only ``WorkerShutdown`` passes through as it is.
        """
        try:
            return self._run(job)
        except (Exception, WorkerShutdown):
            raise
        except BaseException as exc:
            raise JobAborted.wrapping(exc, job_id=job.id) from exc

    def _run(self, job: Job) -> object:
        if job.load_error is not None:
            raise job.load_error
        if job.name is None:
            msg = "Job failed to load: the handler was never decoded (the chain has no DecodeYAML)"
            raise PayloadDecodeError(msg, job_id=job.id)
        target = self._targets.get(job.name)
        if target is None:
            msg = (
                f"Job failed to load: no perform function is registered for {job.name!r} "
                f"(registered: {', '.join(sorted(self._targets)) or 'none'})"
            )
            raise UnknownJobError(msg, job_id=job.id)
        perform = _perform_of(target)
        if perform is target:
            return perform(job)
        try:
            _call_hook(target, _BEFORE_HOOKS, job)
            result = _aborting(perform, job)
            _call_hook(target, _SUCCESS_HOOKS, job)
        except Exception as exc:
            _call_hook(target, _ERROR_HOOKS, job, exc)
            raise
        finally:
            _call_hook(target, _AFTER_HOOKS, job)
        return result


def _aborting(perform: Callable[[Job], object], job: Job) -> object:
    # Inside the hooks, so that error(job, exc) sees a sys.exit() as the failure it is.
    try:
        return perform(job)
    except (Exception, WorkerShutdown):
        raise
    except BaseException as exc:
        raise JobAborted.wrapping(exc, job_id=job.id) from exc


def _perform_of(target: object) -> Callable[[Job], object]:
    for name in _PERFORM_NAMES:
        method = getattr(target, name, None)
        if callable(method):
            return cast("Callable[[Job], object]", method)
    if callable(target):
        return cast("Callable[[Job], object]", target)
    msg = f"{target!r} has no perform(job) method"  # pragma: no cover - checked by add()
    raise ConfigurationError(msg)
