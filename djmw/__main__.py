"""``python -m djmw``: the djmw command."""

from __future__ import annotations

import signal
import sys

from djmw.cli import main

if __name__ == "__main__":
    try:
        code: str | int | None = main()
    except SystemExit as exc:  # argparse's --help and --version end here too
        code = exc.code
    # The command's work is done and recorded: a shutdown signal from here on (a second
    # Ctrl-C racing the exit) must not turn its exit status into death by that signal,
    # which it would once Python restores the default handlers while it shuts down.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_IGN)
    sys.exit(code)
