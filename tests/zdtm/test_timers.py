"""Timers: itimers (real, virtual, prof), POSIX timers (ids, clocks, intervals), overruns."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("mode", ["itimers", "posix", "overrun"])
def test_timers(zdtm, mode: str) -> None:
    t = zdtm.start("timers", mode)
    zdtm.cycle(t)
    t.check()
