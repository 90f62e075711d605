"""process_vm_readv(2) / process_vm_writev(2) with iovec arrays.

Neither call uses FOLL_FORCE (reference P5): reading a PROT_NONE range or writing a read-only one fails with
EFAULT; use ``/proc/PID/mem`` (criu_core.ptrace.RemoteTask.read_mem/write_mem) for those. At most IOV_MAX (1024)
iovecs and 1 GiB travel per call (the kernel caps one call just under 2 GiB); longer lists are split and short
transfers resumed. A transfer that stops at a fault is reported as the number of bytes moved, never as an
error (unless nothing moved).
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


# The kernel moves at most MAX_RW_COUNT (INT_MAX & PAGE_MASK, just under 2 GiB) per call; stay well below.
_MAX_PER_CALL = 1 << 30


def _transfer(name: str, pid: int, local: Sequence[tuple[int, int]], remote: Sequence[tuple[int, int]]) -> int:
    if len(local) > IOV_MAX:
        raise ValueError("at most IOV_MAX local iovecs per transfer")
    if len(local) != 1:
        ret, err = syscall_nocheck(
            name, pid, _iovecs(local), len(local), _iovecs(remote[:IOV_MAX]), min(len(remote), IOV_MAX), 0
        )
        if ret == -1:
            raise SyscallError(err, name, pid)
        return ret
    # One contiguous local buffer: walk the remote list in calls of at most IOV_MAX iovecs and _MAX_PER_CALL
    # bytes, resuming after short transfers; stop at the first call that moves nothing (a fault).
    base = local[0][0]
    limit = local[0][1]
    total = 0
    idx, off = 0, 0
    lvec = (Iovec * 1)()
    while idx < len(remote) and total < limit:
        chunk: list[tuple[int, int]] = []
        want = 0
        i, o = idx, off
        while i < len(remote) and len(chunk) < IOV_MAX and want < _MAX_PER_CALL:
            addr, length = remote[i]
            n = min(length - o, _MAX_PER_CALL - want, limit - total - want)
            if n <= 0:
                break
            chunk.append((addr + o, n))
            want += n
            if o + n < length:
                break
            i, o = i + 1, 0
        if not chunk:
            break
        lvec[0].iov_base = base + total
        lvec[0].iov_len = want
        ret, err = syscall_nocheck(name, pid, lvec, 1, _iovecs(chunk), len(chunk), 0)
        if ret == -1:
            if total:
                return total
            raise SyscallError(err, name, pid)
        if ret == 0:
            break
        total += ret
        # advance (idx, off) by ret bytes
        left = ret
        while left and idx < len(remote):
            step = min(remote[idx][1] - off, left)
            off += step
            left -= step
            if off == remote[idx][1]:
                idx, off = idx + 1, 0
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
