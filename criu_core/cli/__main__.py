"""``python -m criu_core.cli``: the same as the ``criu-py`` console script."""

from __future__ import annotations

from criu_core.cli.main import entry

__all__: list[str] = []

if __name__ == "__main__":
    entry()
