"""``python -m djmw``: the djmw command."""

from __future__ import annotations

import sys

from djmw.cli import main

if __name__ == "__main__":
    sys.exit(main())
