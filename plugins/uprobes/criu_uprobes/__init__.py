"""criu-plugin-uprobes: dump and restore tasks that hit uprobes (CRIU 4.2's --allow-uprobes)."""

from __future__ import annotations

__all__: list[str] = []
