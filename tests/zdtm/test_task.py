"""Task attributes: credentials, rlimits, umask/cwd/comm/personality/rseq/tid address/robust list/no_new_privs/
dumpable/pdeathsig/subreaper/timer slack, root, seccomp filters."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("mode", ["creds", "rlimits", "misc", "chroot", "seccomp"])
def test_task_attrs(zdtm, mode: str) -> None:
    t = zdtm.start("task", mode)
    zdtm.cycle(t)
    t.check()
