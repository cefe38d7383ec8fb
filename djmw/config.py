"""Build a Worker from a TOML config file, with the chain as a list of names and options.

Example ``djmw.toml``::

    [worker]
    database = "mysql2://app:secret@127.0.0.1:3306/app_production"
    handlers = "myapp.jobs:handlers"        # a djmw.Handlers, by dotted path
    queues = ["default", "mailers"]
    max_run_time = 3600
    sleep_delay = 5

    # The chain, first = outermost. Omit it for the default chain.
    middlewares = [
      "DecodeYAML",
      "RunHooks",
      "LogOutcome",
      { use = "MarkFailed", delete_failed = true },
      { use = "ScheduleRetry", max_attempts = 10 },
      "CountAttempts",
      { use = "EnforceTimeout", mode = "cooperative" },
      { use = "myapp.middleware:Audit", table = "audit_log" },
    ]

Each entry is a built-in name or a dotted import path (``module:attribute``) of a
middleware class, factory or function, optionally with keyword options. A bad entry
fails at start with ConfigurationError naming the entry and its position.
"""

from __future__ import annotations

import importlib
import inspect
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from djmw.chain import Middleware
from djmw.errors import ConfigurationError
from djmw.handlers import Handlers
from djmw.middleware import BUILTINS
from djmw.worker import Worker

_WORKER_KEYS = {field.name for field in attrs.fields(Worker) if field.init} - {
    "middlewares",
    "handlers",
    "backend",
    "clock",
    "logger",
}


def import_object(path: str, what: str) -> Any:
    """Import ``module:attribute`` (or ``module.attribute``); ConfigurationError if absent."""
    module_name, _, attribute = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attribute:
        msg = f"{what}: {path!r} is not a dotted import path like 'package.module:name'."
        raise ConfigurationError(msg)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        msg = (
            f"{what}: cannot import module {module_name!r} ({exc}); check the spelling and "
            "that the package is installed or on sys.path (PYTHONPATH)."
        )
        raise ConfigurationError(msg) from exc
    try:
        value = module
        for part in attribute.split("."):
            value = getattr(value, part)
    except AttributeError as exc:
        msg = (
            f"{what}: module {module_name!r} has no attribute {attribute!r}; check the name "
            "after the colon."
        )
        raise ConfigurationError(msg) from exc
    return value


def build_middleware(entry: object, index: int, handlers: Handlers) -> Middleware:
    """Turn one config entry (a name, or a table with ``use`` and options) into a middleware."""
    where = f"middlewares[{index}]"
    if isinstance(entry, str):
        name, options = entry, {}
    elif isinstance(entry, Mapping) and isinstance(entry.get("use"), str):
        options = {k: v for k, v in entry.items() if k != "use"}
        name = entry["use"]
    else:
        msg = f"{where} = {entry!r}: expected a middleware name or a table with a 'use' key."
        raise ConfigurationError(msg)
    where = f"{where} ({name!r})"
    target = BUILTINS.get(name)
    if target is None:
        if ":" not in name and "." not in name:
            msg = (
                f"{where}: unknown middleware name; built-ins are {', '.join(BUILTINS)}, "
                "or give a dotted path like 'package.module:Middleware'."
            )
            raise ConfigurationError(msg)
        target = import_object(name, where)
    options = {key: build_option(value, f"{where}.{key}") for key, value in options.items()}
    if inspect.isclass(target) or options:
        if "handlers" in _parameters(target) and "handlers" not in options:
            options["handlers"] = handlers
        try:
            built = target(**options)
        except ConfigurationError as exc:
            msg = f"{where}: {exc}"
            raise ConfigurationError(msg) from exc
        except (TypeError, ValueError) as exc:
            accepted = sorted(_parameters(target) - {"self"})
            msg = (
                f"{where}: bad options {sorted(options)}: {exc}; "
                f"it accepts {', '.join(accepted) or 'no options'}."
            )
            raise ConfigurationError(msg) from exc
    else:
        built = target
    if not callable(built):
        msg = f"{where}: {built!r} is not callable as (job, call_next)."
        raise ConfigurationError(msg)
    return built  # type: ignore[no-any-return]


def build_option(value: object, where: str) -> object:
    """Build an option value: a table with ``use`` becomes the object it names, called
    with the table's other keys (``backoff = { use = "tenacity:wait_exponential",
    multiplier = 2 }``); anything else is passed as it is."""
    if isinstance(value, Mapping) and isinstance(value.get("use"), str):
        target = import_object(value["use"], where)
        kwargs = {k: build_option(v, f"{where}.{k}") for k, v in value.items() if k != "use"}
        try:
            return target(**kwargs)
        except (TypeError, ValueError) as exc:
            msg = f"{where}: cannot build {value['use']!r} with {sorted(kwargs)}: {exc}"
            raise ConfigurationError(msg) from exc
    return value


def _parameters(target: object) -> set[str]:
    try:
        return set(inspect.signature(target).parameters)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return set()


def build_middlewares(entries: Sequence[object], handlers: Handlers) -> list[Middleware]:
    """Build a whole chain from config entries, first = outermost."""
    if isinstance(entries, str | bytes) or not isinstance(entries, Sequence):
        msg = f"middlewares must be a list, got {entries!r}."
        raise ConfigurationError(msg)
    return [build_middleware(entry, index, handlers) for index, entry in enumerate(entries)]


def worker_from_mapping(data: Mapping[str, Any], **overrides: Any) -> Worker:
    """Build a Worker from a parsed config (the ``[worker]`` table); overrides win."""
    settings = dict(data.get("worker", data))
    settings.update({k: v for k, v in overrides.items() if v is not None})
    handlers = settings.pop("handlers", None)
    if isinstance(handlers, str):
        handlers = import_object(handlers, "worker.handlers")
    if handlers is None:
        handlers = Handlers()
    if not isinstance(handlers, Handlers):
        msg = f"worker.handlers must name a djmw.Handlers, got {type(handlers).__name__}."
        raise ConfigurationError(msg)
    entries = settings.pop("middlewares", None)
    unknown = sorted(set(settings) - _WORKER_KEYS)
    if unknown:
        msg = f"worker: unknown setting(s) {unknown}; known: {sorted(_WORKER_KEYS)}."
        raise ConfigurationError(msg)
    middlewares = build_middlewares(entries, handlers) if entries is not None else None
    try:
        return Worker(handlers=handlers, middlewares=middlewares, **settings)
    except TypeError as exc:
        msg = f"worker: {exc}"
        raise ConfigurationError(msg) from exc


def load_config(path: str | Path, **overrides: Any) -> Worker:
    """Read a TOML config file and return the Worker it describes (not started)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        msg = f"cannot read config file {str(path)!r}: {exc.strerror}."
        raise ConfigurationError(msg) from exc
    except tomllib.TOMLDecodeError as exc:
        msg = f"config file {str(path)!r} is not valid TOML: {exc}."
        raise ConfigurationError(msg) from exc
    return worker_from_mapping(data, **overrides)
