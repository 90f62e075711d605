"""Descriptors of the simple kinds; an unsupported kind (a pipe) makes the dump fail cleanly."""

from __future__ import annotations

import re

import zdtmlib


def test_regular_files_and_devices(zdtm) -> None:
    t = zdtm.start("fds")
    zdtm.cycle(t)
    t.check()


def test_pipe_refused(zdtm, engines) -> None:
    """Until pipes are supported: the dump fails with one line naming the task, the fd and the kind; the task
    keeps running exactly as it was (registers, mask, nothing pending, no stray signal, pipe content)."""
    t = zdtm.start("counter", "--pipe", "--mem", "4")
    before = zdtmlib.snapshot(t.pid)
    images = zdtm.images()
    d = zdtm.dump(t, images)
    assert d.rc != 0, "the dump of a task holding a pipe succeeded:\n" + d.explain()
    lines = d.stderr.strip().splitlines()
    assert len(lines) == 1, "expected one line on stderr:\n" + d.explain()
    msg = lines[0]
    assert str(t.pid) in msg and "pipe" in msg.lower() and re.search(r"\b[34]\b", msg), msg
    assert "Traceback" not in d.stderr
    _assert_untouched(t, before)
    t.check()


def _assert_untouched(t, before) -> None:
    assert t.popen.poll() is None, "the task died in a failed dump\n" + t.describe()
    zdtmlib.wait_for(lambda: zdtmlib.snapshot(t.pid)["status"]["State"].startswith("R"), 5, "the task to run")
    after = zdtmlib.snapshot(t.pid)
    diffs = zdtmlib.compare(before, after)
    assert not diffs, "a failed dump changed the task:\n" + "\n".join(diffs)
