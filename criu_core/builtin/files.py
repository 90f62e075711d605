"""Built-in file handler: regular files, directories and character devices opened by path."""

from __future__ import annotations

__all__: list[str] = []
