"""Raw memory-copy limits of this machine, the yardstick for criu-py's dump and restore throughput.

* dump path: ``process_vm_readv`` from a prefaulted target into a 4 MiB bounce buffer, then ``write()`` to a
  fresh file in the images filesystem (the temp dir the benchmarks dump into);
* restore path: ``process_vm_writev`` from a 4 MiB buffer into fresh (never touched) pages of a target.

Run alone (``python bench/raw_limits.py [MiB]``) or through ``bench/run.py``. Writes only under a temp dir.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["measure", "readv_write", "writev_fresh"]

CHUNK = 4 << 20
SYS_PYTHON = "/usr/bin/python3"

# A target that maps SIZE bytes, touches them if asked, and prints the address.
_TARGET = r"""
import ctypes, mmap, sys, time
size, touch = int(sys.argv[1]), sys.argv[2] == "1"
m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
if touch:
    page = b"\xa5" * 4096
    for off in range(0, size, 4096):
        m[off:off + 4096] = page
print(hex(ctypes.addressof(ctypes.c_char.from_buffer(m))), flush=True)
time.sleep(3600)
"""


def _vm_funcs() -> tuple[Callable[..., int], Callable[..., int]]:
    """process_vm_readv/writev(pid, [(addr, len)], [(addr, len)]) -> bytes: criu_core.sys when it has them."""
    try:
        from criu_core.sys.memory import process_vm_readv, process_vm_writev

        return process_vm_readv, process_vm_writev
    except ImportError:
        pass

    libc = ctypes.CDLL(None, use_errno=True)

    class Iovec(ctypes.Structure):
        """struct iovec (sys/uio.h)."""

        _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]

    def make(name: str) -> Callable[..., int]:
        fn = getattr(libc, name)
        fn.restype = ctypes.c_ssize_t
        fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]

        def call(pid: int, local: list[tuple[int, int]], remote: list[tuple[int, int]]) -> int:
            lv = (Iovec * len(local))(*[Iovec(a, n) for a, n in local])
            rv = (Iovec * len(remote))(*[Iovec(a, n) for a, n in remote])
            ret = fn(pid, lv, len(local), rv, len(remote), 0)
            if ret < 0:
                raise OSError(ctypes.get_errno(), f"{name} on pid {pid}")
            return ret

        return call

    return make("process_vm_readv"), make("process_vm_writev")


def _start_target(size: int, touch: bool) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [SYS_PYTHON, "-S", "-c", _TARGET, str(size), "1" if touch else "0"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    addr = int(proc.stdout.readline(), 16)
    return proc, addr


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()


def _buffer() -> tuple[mmap.mmap, int]:
    buf = mmap.mmap(-1, CHUNK)
    buf.write(b"\x5a" * CHUNK)  # prefault the bounce buffer
    return buf, ctypes.addressof(ctypes.c_char.from_buffer(buf))


def readv_write(size: int, images_fs: Path | None) -> float:
    """Seconds to copy ``size`` bytes out of a prefaulted target into a fresh file under ``images_fs``
    (``None``: into the bounce buffer only, to show what the write costs)."""
    readv, _ = _vm_funcs()
    proc, addr = _start_target(size, touch=True)
    buf, baddr = _buffer()
    view = memoryview(buf)
    try:
        fd = tempfile.mkstemp(dir=images_fs, prefix="raw-pages-")[0] if images_fs else -1
        os.sync()  # every run starts with no dirty pages (writeback throttling would blur runs together)
        t0 = time.perf_counter()
        for off in range(0, size, CHUNK):
            n = readv(proc.pid, [(baddr, CHUNK)], [(addr + off, CHUNK)])
            if fd >= 0:
                os.write(fd, view[:n])
        elapsed = time.perf_counter() - t0
        if fd >= 0:
            os.close(fd)  # kept until the temp dir goes: an unlink here (ext4 discard) would slow the next run
    finally:
        view.release()
        _stop(proc)
    return elapsed


def writev_fresh(size: int) -> float:
    """Seconds to copy ``size`` bytes into never-touched pages of a target (page allocation included)."""
    _, writev = _vm_funcs()
    proc, addr = _start_target(size, touch=False)
    _buf, baddr = _buffer()
    try:
        t0 = time.perf_counter()
        for off in range(0, size, CHUNK):
            writev(proc.pid, [(baddr, CHUNK)], [(addr + off, CHUNK)])
        elapsed = time.perf_counter() - t0
    finally:
        _stop(proc)
    return elapsed


def measure(size_mib: int = 512, runs: int = 3, images_fs: Path | None = None) -> dict[str, float]:
    """Median GB/s of both paths over ``runs`` interleaved runs, each with fresh files and fresh targets."""
    size = size_mib << 20
    with tempfile.TemporaryDirectory(prefix="criu-bench-raw-", dir=images_fs) as tmp:
        reads, readonly, writes = [], [], []
        for _ in range(runs):
            reads.append(readv_write(size, Path(tmp)))
            readonly.append(readv_write(size, None))
            writes.append(writev_fresh(size))
    return {
        "size_mib": size_mib,
        "readv_write_gbps": size / statistics.median(reads) / 1e9,
        "readv_only_gbps": size / statistics.median(readonly) / 1e9,
        "writev_fresh_gbps": size / statistics.median(writes) / 1e9,
    }


def main(argv: list[str]) -> int:
    size = int(argv[0]) if argv else 512
    res = measure(size)
    print(f"raw limits ({size} MiB, median of 3, fresh files/pages each run)")
    print(f"  process_vm_readv (4 MiB bounce) + write() to the images fs : {res['readv_write_gbps']:.2f} GB/s")
    print(f"  process_vm_readv alone (4 MiB bounce, no write)           : {res['readv_only_gbps']:.2f} GB/s")
    print(f"  process_vm_writev into fresh target pages                 : {res['writev_fresh_gbps']:.2f} GB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
