"""process_vm_readv(2) / process_vm_writev(2) with iovec arrays.

Neither call uses FOLL_FORCE (reference P5): reading a PROT_NONE range or writing a read-only one fails with
EFAULT; use ``/proc/PID/mem`` (criu_core.ptrace.RemoteTask.read_mem/write_mem) for those. At most IOV_MAX (1024)
iovecs travel per call; longer lists are split. A short transfer (the kernel stops at the first fault) is
reported as the number of bytes moved, never as an error.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

from criu_core.errors import SyscallError
from criu_core.sys.libc import syscall_nocheck
from criu_core.sys.structs import Iovec

__all__ = ["IOV_MAX", "buffer_address", "process_vm_readv", "process_vm_writev", "read_remote"]

IOV_MAX = 1024


def buffer_address(buf: object, offset: int = 0) -> int:
    """Address of a writable buffer (bytearray, ctypes array, mmap) plus ``offset``."""
    if isinstance(buf, int):
        return buf + offset
    if isinstance(buf, ctypes.Array):
        return ctypes.addressof(buf) + offset
    return ctypes.addressof(ctypes.c_char.from_buffer(buf)) + offset  # type: ignore[arg-type]


def _iovecs(ranges: Sequence[tuple[int, int]]) -> ctypes.Array:
    arr = (Iovec * len(ranges))()
    for i, (addr, length) in enumerate(ranges):
        arr[i].iov_base = addr
        arr[i].iov_len = length
    return arr


# The kernel moves at most MAX_RW_COUNT (INT_MAX rounded down to a page: 2 GiB - 4 KiB) per call and returns a
# short count past it; calls are cut well below that, so a short count always means a fault.
CALL_BYTES_MAX = 1 << 30


def _calls(remote: Sequence[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Group the remote ranges into calls of at most IOV_MAX iovecs and CALL_BYTES_MAX bytes."""
    calls: list[list[tuple[int, int]]] = []
    cur: list[tuple[int, int]] = []
    size = 0
    for addr, length in remote:
        while length:
            if len(cur) == IOV_MAX or size == CALL_BYTES_MAX:
                calls.append(cur)
                cur, size = [], 0
            n = min(length, CALL_BYTES_MAX - size)
            cur.append((addr, n))
            size += n
            addr += n
            length -= n
    if cur or not calls:
        calls.append(cur)
    return calls


def _transfer(name: str, pid: int, local: Sequence[tuple[int, int]], remote: Sequence[tuple[int, int]]) -> int:
    total = 0
    # The local side is normally one contiguous iovec whose pointer advances with the remote calls; several local
    # iovecs are passed as they are, in a single call (at most IOV_MAX of them, one call's worth of bytes).
    if len(local) > IOV_MAX:
        raise ValueError("at most IOV_MAX local iovecs per transfer")
    lvec = _iovecs(local)
    loff = 0
    calls = _calls(remote) if len(local) == 1 else [list(remote)]
    for chunk in calls:
        want = sum(n for _, n in chunk)
        if len(local) == 1:
            lvec[0].iov_base = local[0][0] + loff
            lvec[0].iov_len = want
        rvec = _iovecs(chunk)
        ret, err = syscall_nocheck(name, pid, lvec, len(local), rvec, len(chunk), 0)
        if ret == -1:
            if total:
                return total
            raise SyscallError(err, name, pid)
        total += ret
        loff += ret
        if ret < want:
            break
    return total


def process_vm_readv(pid: int, local: Sequence[tuple[int, int]], remote: Sequence[tuple[int, int]]) -> int:
    """Copy the remote ranges (address, length) of ``pid`` into the local ranges; return bytes copied.

    ``local`` is a list of (address, length); pass one contiguous local range to use more than 1024 remote iovecs.
    """
    return _transfer("process_vm_readv", pid, local, remote)


def process_vm_writev(pid: int, local: Sequence[tuple[int, int]], remote: Sequence[tuple[int, int]]) -> int:
    """Copy the local ranges into the remote ranges of ``pid``; return bytes copied."""
    return _transfer("process_vm_writev", pid, local, remote)


def read_remote(pid: int, addr: int, length: int) -> bytes:
    """Convenience: read ``length`` bytes at ``addr`` of ``pid`` (short if a fault stops the copy)."""
    buf = ctypes.create_string_buffer(length)
    n = process_vm_readv(pid, [(ctypes.addressof(buf), length)], [(addr, length)])
    return buf.raw[:n]
