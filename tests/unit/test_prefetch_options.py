"""The prefetch option in Python, config files and ``djmw work``: accepted and checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from djmw import ConfigurationError, Handlers, Worker, load_config
from djmw.cli import _build_worker, parser


def test_worker_rejects_a_prefetch_below_one() -> None:
    """prefetch=0 fails at construction with a message naming the option."""
    with pytest.raises(ConfigurationError, match="prefetch"):
        Worker(handlers=Handlers(), prefetch=0)


def test_a_config_file_sets_prefetch(tmp_path: Path) -> None:
    """``prefetch = 7`` in the [worker] table reaches the Worker."""
    path = tmp_path / "djmw.toml"
    path.write_text(
        f'[worker]\ndatabase = "sqlite:///{tmp_path / "jobs.db"}"\n'
        'handlers = "config_handlers:handlers"\nprefetch = 7\n',
        encoding="utf-8",
    )
    assert load_config(path).prefetch == 7


def test_the_command_passes_prefetch_and_refuses_zero(tmp_path: Path) -> None:
    """``djmw work --prefetch 3`` builds a worker with prefetch 3; ``--prefetch 0`` is an
    argument error."""
    database = f"sqlite:///{tmp_path / 'jobs.db'}"
    argv = ["work", "--database", database, "--handlers", "config_handlers:handlers"]
    args = parser().parse_args([*argv, "--prefetch", "3"])
    assert _build_worker(args, "w").prefetch == 3
    assert _build_worker(parser().parse_args(argv), "w").prefetch == 1
    with pytest.raises(SystemExit):
        parser().parse_args([*argv, "--prefetch", "0"])
