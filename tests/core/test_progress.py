"""The progress line: only on a terminal and for large tasks; it ends with the total and a newline."""

from __future__ import annotations

import io
import os
import pty

from criu_core.progress import THRESHOLD, Progress


def test_silent_when_not_a_terminal_or_small():
    out = io.StringIO()
    with Progress("dumping pages of 1", 10 * THRESHOLD, out) as p:
        p.advance(10 * THRESHOLD)
    assert out.getvalue() == ""
    master, slave = pty.openpty()
    try:
        with os.fdopen(os.dup(slave), "w") as tty:
            small = Progress("x", THRESHOLD - 4096, tty)
            big = Progress("x", THRESHOLD, tty)
            assert not small.enabled and big.enabled
    finally:
        os.close(master)
        os.close(slave)


def test_forced_line_counts_up_to_the_total():
    out = io.StringIO()
    with Progress("restoring pages of 7", 4 << 30, out, force=True) as p:
        for _ in range(4):
            p.advance(1 << 30)
    text = out.getvalue()
    assert text.startswith("\rrestoring pages of 7") and text.endswith("\n")
    assert "100% 4.0/4.0 GiB" in text.splitlines()[-1].split("\r")[-1]
