"""``python -m djmw``: the djmw command."""

from __future__ import annotations

from djmw.cli import command

if __name__ == "__main__":
    command()
