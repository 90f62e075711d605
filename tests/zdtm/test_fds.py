"""Descriptors of the simple kinds; an unsupported kind makes the dump fail cleanly and leaves the task alone."""

from __future__ import annotations

import zdtmlib


def test_regular_files_and_devices(zdtm) -> None:
    t = zdtm.start("fds")
    zdtm.cycle(t)
    t.check()


def test_unsupported_fd_refused(zdtm, engines) -> None:
    """An inotify fd (not a kind of issue 3): the dump fails with one line naming the task, the fd and the kind;
    the task keeps running exactly as it was (registers, mask, nothing pending, no stray signal, memory)."""
    t = zdtm.start("counter", "--inotify", "--mem", "4")
    _refused(zdtm, t, fd=5, kind="inotify")


def test_pipe(zdtm, engines) -> None:
    """A pipe with a queued byte: refused like any unsupported kind until pipes are supported, then it must
    survive with its byte (the target reads it back)."""
    t = zdtm.start("counter", "--pipe", "--mem", "4")
    images = zdtm.images()
    before = zdtmlib.snapshot(t.pid)
    d = zdtm.dump(t, images)
    if d.rc != 0:
        zdtmlib.assert_refusal(t, d, before, fds=(3, 4), kind="pipe")
        t.check()
        return
    zdtm.forget(t)
    r = zdtm.restore(images)
    assert r.rc == 0, r.explain()
    t.restored = True
    diffs = zdtmlib.compare(before, zdtmlib.snapshot(t.pid))
    assert not diffs, "\n".join(diffs)
    t.check()


def _refused(zdtm, t: zdtmlib.Target, fd: int, kind: str) -> None:
    before = zdtmlib.snapshot(t.pid)
    d = zdtm.dump(t, zdtm.images())
    assert d.rc != 0, f"the dump of a task holding {kind} succeeded:\n" + d.explain()
    zdtmlib.assert_refusal(t, d, before, fds=(fd,), kind=kind)
    t.check()
