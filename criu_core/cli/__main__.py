"""``python -m criu_core.cli``: the same as the ``criu-py`` console script."""

from __future__ import annotations

import sys

from criu_core.cli.main import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
