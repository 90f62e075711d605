"""Emulated KFD for tests and benchmarks: an in-process fake behind the KfdDevice seam, and a FUSE-served file."""

from __future__ import annotations

__all__: list[str] = []
