"""arch/x86_64."""

from __future__ import annotations

__all__: list[str] = []
