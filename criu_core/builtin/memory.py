"""Built-in memory handler: ordinary mappings (anonymous, file-backed, heap, stack, vdso/vvar)."""

from __future__ import annotations

__all__: list[str] = []
