"""rseq: a thread frozen inside an rseq critical section comes back at the section's abort address (issue 4).

``targets/rseq.c`` keeps a worker thread inside an armed critical section (flags 0) all the time except for the
two instructions of its abort handler, ``[abort_ip, start_ip)``. What a dump must do is deterministic per dump,
given where the freeze caught the worker:

* in the section (then ``rseq->rseq_cs`` is armed): the image's ip is moved to ``abort_ip`` and the armed
  ``rseq_cs`` pointer is kept in ``rseq_entry.rseq_cs_pointer`` (CRIU's fixup_thread_rseq);
* in the abort handler (``rseq_cs`` is 0, the kernel cleared it when it aborted the section): the ip is kept
  exactly.

So the image never holds an ip inside the section. A dump that happens to catch the handler is repeated (with
``--leave-running``, up to 8 times) until one catches the section; that image is restored and the target checks
itself: the worker is alive (a wrong ip or an rseq_cs whose abort_ip/signature check fails would kill it with
SIGSEGV), still aborts its section on a signal (the abort counter grows), and both rseq registrations are back.

The worker is a second thread, or (``leader``) the group leader itself; the leader case works the same
(the dump reads every thread's rseq_cs before it injects anything, its scratch mapping included, and arms it again after).

A thread not in a critical section keeping its exact ip is covered elsewhere too: ``test_cpu.py::
test_registers[gpr]`` (``targets/regs.c``: a busy asm loop, rseq registered by glibc with rseq_cs 0, whose
registers and ip must come back exactly or the loop fails) and every other target here (all of them have
glibc's rseq registered).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import zdtmlib

pytestmark = pytest.mark.usefixtures("engines")

TRIES = 8


def _info(t: zdtmlib.Target) -> dict[str, int]:
    for line in t.lines():
        m = re.match(r"INFO: rseq (.*)", line)
        if m:
            return {k: int(v, 0) for k, v in (kv.split("=") for kv in m.group(1).split())}
    raise AssertionError("the target did not report its rseq addresses\n" + t.describe())


@pytest.mark.parametrize("who", ["thread", "leader"])
def test_rseq_cs_abort_ip(zdtm, who: str) -> None:
    """``who``: the thread caught in the section is a second thread, or the group leader (the one the dump
    also injects its scratch mapping into)."""
    t = zdtm.start("rseq", who, flags=["-pthread"])
    info = _info(t)
    assert info["abort"] < info["start"] < info["post"], info
    before = zdtmlib.snapshot(t.pid)
    seen: list[str] = []
    chosen = None
    for _ in range(TRIES):
        images = _dump_and_check(zdtm, t, info, seen)
        if images is not None:
            chosen = images
            break
    assert chosen is not None, f"no dump out of {TRIES} caught the worker inside its section: {seen}"
    # The dumps left the worker running inside its section, still armed (the dump put back the rseq_cs its
    # injected syscalls made the kernel clear): one more dump must obey the same rule, not find an ip in the
    # section with rseq_cs 0.
    _dump_and_check(zdtm, t, info, seen)
    t.assert_no_verdict()
    t.kill()
    zdtmlib.wait_gone(t.pid)
    r = zdtm.restore(chosen)
    assert r.rc == 0, r.explain() + "\n" + t.describe()
    t.restored = True
    assert zdtmlib.pid_alive(t.pid), f"PID {t.pid} is not running after restore\n" + r.explain()
    diffs = zdtmlib.compare(before, zdtmlib.snapshot(t.pid))
    assert not diffs, "/proc state differs after restore:\n" + "\n".join(diffs)
    t.check()


def _dump_and_check(zdtm, t: zdtmlib.Target, info: dict[str, int], seen: list[str]) -> Path | None:
    """One --leave-running dump; the images if it caught the worker inside its section, else None."""
    from criu_core.images import ImageDir

    tid, start, post, abort, cs = info["tid"], info["start"], info["post"], info["abort"], info["cs"]
    images = zdtm.images()
    d = zdtm.dump(t, images, "--leave-running")
    assert d.rc == 0, d.explain() + "\n" + t.describe()
    core = ImageDir(images).read_one("core", tid)
    ip = core.thread_info.gpregs.ip
    rseq = core.thread_core.rseq_entry
    assert rseq.rseq_abi_pointer == info["area"], f"rseq area {rseq.rseq_abi_pointer:#x}, target says {info}"
    assert rseq.signature == 0x53053053, hex(rseq.signature)
    cs_ptr = rseq.rseq_cs_pointer if rseq.HasField("rseq_cs_pointer") else 0
    seen.append(f"ip={ip:#x} rseq_cs={cs_ptr:#x}")
    assert not start <= ip < post, f"the image keeps an ip inside the critical section: {seen[-1]}, {info}"
    if cs_ptr:
        # Caught inside the armed section: moved to abort_ip, rseq_cs kept for the restore.
        assert cs_ptr == cs, f"rseq_cs_pointer {cs_ptr:#x}, the descriptor is at {cs:#x}"
        assert ip == abort, f"caught in the section but ip {ip:#x} != abort_ip {abort:#x}"
        return images
    # Caught in the abort handler (rseq_cs already cleared by the kernel): the ip is kept as it was.
    assert abort <= ip < start, f"ip {ip:#x} is neither the section nor its abort handler: {info}"
    t.assert_no_verdict()
    return None
