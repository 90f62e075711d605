"""criu-plugin-uprobes: dump and restore tasks that hit uprobes (CRIU 4.2's --allow-uprobes).

:mod:`criu_uprobes.tracefs` is a small tracefs client to create real uprobes (tests, users).
"""

from __future__ import annotations

__all__ = ["plugin", "resync", "textscan", "tracefs", "vmas"]
