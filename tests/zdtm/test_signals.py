"""Signals: all dispositions with flags, masks and restorer; blocked mask; pending shared and per-thread
signals with their siginfo; sigaltstack."""

from __future__ import annotations


def test_handlers(zdtm) -> None:
    t = zdtm.start("sig_handlers")
    zdtm.cycle(t)
    t.check()


def test_pending(zdtm) -> None:
    t = zdtm.start("sig_pending")
    zdtm.cycle(t)
    t.check()
