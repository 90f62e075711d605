"""clone3 for ``--restore-sibling``: a seed whose parent is the restorer's parent (CLONE_PARENT).

runc and other runtimes ask for it so that the restored task is their own child, as it was before the dump.
Such a child cannot ``PTRACE_TRACEME`` (that would make its real parent the tracer), so it just sleeps in raw
``pause()`` calls and the restorer seizes it (:func:`criu_core.ptrace.restore_seed.make_sibling_seed`). As for
every seed, the child runs only raw syscalls on arguments built before the fork, with the GIL held through
PyDLL (P13).
"""

from __future__ import annotations

import ctypes

from criu_core.arch.x86_64.syscalls import NR
from criu_core.errors import PidInUse, SyscallError
from criu_core.sys.clone import CLONE_PARENT
from criu_core.sys.libc import pylibc
from criu_core.sys.structs import CloneArgs

__all__ = ["clone3_sibling_seed"]

_EEXIST = 17


def clone3_sibling_seed(pid: int) -> int:
    """Create a child of our parent with PID ``pid`` that loops in ``pause()``; returns its PID.

    Raises :class:`PidInUse` when ``pid`` is taken. The child's exit signal is ours (the kernel's rule for
    CLONE_PARENT), so our parent is told when it ends, as it would be of any child of its own.
    """
    tid_arr = (ctypes.c_int32 * 1)(pid)
    args = CloneArgs()
    args.flags = CLONE_PARENT
    args.set_tid = ctypes.addressof(tid_arr)
    args.set_tid_size = 1
    sc = pylibc.syscall
    a_clone = (ctypes.c_long(NR["clone3"]), ctypes.byref(args), ctypes.c_long(ctypes.sizeof(args)))
    a_pause = ctypes.c_long(NR["pause"])
    ctypes.set_errno(0)
    ret = sc(*a_clone)
    if ret == 0:  # the child: wait to be seized and rebuilt; never returns to Python
        while True:
            sc(a_pause)
    if ret == -1:
        err = ctypes.get_errno()
        if err == _EEXIST:
            raise PidInUse(pid)
        raise SyscallError(err, "clone3", pid, detail=f"CLONE_PARENT, set_tid={pid}")
    return ret
