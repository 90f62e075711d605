"""A python3 interpreter (about 100 VMAs from 20 files): it keeps counting, one line at a time, after restore."""

from __future__ import annotations

import re

import zdtmlib

PROG = r"""
import hashlib, os, signal, time
data = bytes(range(256)) * 4096 + os.urandom(1 << 20)
digest = hashlib.sha256(data).hexdigest()
pid = os.getpid()
asked = False
def usr2(sig, frame):
    global asked
    asked = True
signal.signal(signal.SIGUSR2, usr2)
print("READY", flush=True)
i = 0
while not asked:
    print(f"n={i}", flush=True)
    i += 1
    time.sleep(0.01)
ok = hashlib.sha256(data).hexdigest() == digest and os.getpid() == pid
print("PASS" if ok else "FAIL: interpreter state changed", flush=True)
"""


def _counts(t: zdtmlib.Target) -> list[int]:
    return [int(m.group(1)) for line in t.lines() if (m := re.fullmatch(r"n=(\d+)", line))]


def test_python_counter(zdtm) -> None:
    t = zdtm.start_python(PROG)
    zdtmlib.wait_for(lambda: len(_counts(t)) >= 5, 10, "the counter to count")
    zdtm.cycle(t, allow={"fds.1": "the counter writes to stdout all the time"})
    n = len(_counts(t))
    zdtmlib.wait_for(lambda: len(_counts(t)) >= n + 5, 10, "the restored counter to count on")
    t.check()
    counts = _counts(t)
    assert counts == list(range(len(counts))), "the count did not continue one by one: " + str(counts[-20:])
