"""A progress line for page dumping and restoring of large tasks, shown only on a terminal.

CRIU prints nothing of the kind; criu-py prints one self-overwriting line on stderr when stderr is a terminal
and the task has at least :data:`THRESHOLD` bytes of pages, so scripts and logs never see it.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Self, TextIO

__all__ = ["THRESHOLD", "Progress"]

THRESHOLD = 256 << 20  # bytes of pages below which a line would only flicker


class Progress:
    """``with Progress("dumping pages of 1234", total) as p: p.advance(n)``: prints ``label  37% 1.2/3.4 GiB``."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None, *, force: bool | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        if force is None:
            try:
                force = os.isatty(self.stream.fileno()) and total >= THRESHOLD
            except (AttributeError, OSError, ValueError):
                force = False
        self.enabled = force
        self._last = 0.0
        self._t0 = time.monotonic()

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= 0.1 or self.done >= self.total:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        pct = 100 * self.done // self.total if self.total else 100
        rate = self.done / max(now - self._t0, 1e-6) / 1e9
        gib = 1 << 30
        self.stream.write(f"\r{self.label}  {pct:3d}% {self.done / gib:.1f}/{self.total / gib:.1f} GiB "
                          f"{rate:.2f} GB/s")
        self.stream.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
