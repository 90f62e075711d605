"""An emulated ``/dev/kfd`` served through FUSE (mfusepy over libfuse3): real processes issue real ioctls on it.

The mount holds one regular file, ``kfd``. FUSE calls ioctls on a regular file in *restricted* mode (reference
§7.2): the kernel copies ``_IOC_SIZE(cmd)`` bytes in and out and refuses to follow embedded pointers, so the
server follows them itself with ``process_vm_readv/writev`` on the calling thread (the request carries its tid;
it is blocked in the ioctl, so its memory is stable). Each open creates (or joins) the KFD process of the opener's
thread group; the emulated kernel's rules apply, the ptrace-parent-thread rule included (read from /proc).

Limits: a server cannot install descriptors in its caller, so CHECKPOINT and RESTORE report no dmabuf fds
(``KFD_INVALID_FD``) and BO contents cannot be copied through this device; mmap is not emulated (KFD offsets do
not fit a file offset). It serves ioctl-level tests.

Run: ``python -m criu_amdgpu.emu.fuse_kfd MOUNTPOINT --gpu 0x70b3:128 [--gpu ...]`` (foreground; unmount with
``fusermount3 -u MOUNTPOINT``).
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import stat
import threading
from typing import Any

import mfusepy

from criu_amdgpu import abi
from criu_amdgpu.emu.model import FakeGpu, FakeKfd, FakeKfdFile
from criu_amdgpu.kfd import ProcessMemory

__all__ = ["KfdFuse", "main", "start_time", "tgid_of"]

DEVICE = "/kfd"


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: tells a process from an earlier one with the same pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def tgid_of(tid: int) -> int:
    """The thread group of thread ``tid`` (FUSE reports the calling thread)."""
    try:
        with open(f"/proc/{tid}/status") as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return tid


class KfdFuse(mfusepy.Operations):
    """FUSE operations serving :class:`FakeKfd` at ``/kfd``."""

    use_ns = True

    def __init__(self, kfd: FakeKfd, log_path: str | None = None) -> None:
        self.kfd = kfd
        self.log_path = log_path
        self.files: dict[int, FakeKfdFile] = {}
        self._next = 1
        self._lock = threading.Lock()
        self.log: list[tuple[int, int, int]] = []  # (caller tid, cmd, errno or 0)

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        now = 0
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_atime": now, "st_mtime": now, "st_ctime": now}
        if path == DEVICE:
            return {"st_mode": stat.S_IFREG | 0o666, "st_nlink": 1, "st_size": 0, "st_atime": now, "st_mtime": now,
                    "st_ctime": now}
        raise mfusepy.FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", DEVICE[1:]]

    def open(self, path: str, flags: int) -> int:
        if path != DEVICE:
            raise mfusepy.FuseOSError(errno.ENOENT)
        _, _, tid = mfusepy.fuse_get_context()
        with self._lock:
            fh = self._next
            self._next += 1
            tgid = tgid_of(tid)
            self.files[fh] = self.kfd.open(tgid, start_time(tgid))
        return fh

    def release(self, path: str, fh: int) -> int:
        with self._lock:
            self.files.pop(fh, None)
        return 0

    def ioctl(self, path: str, cmd: int, arg: Any, fh: int, flags: int, data: Any) -> int:
        cmd &= 0xFFFFFFFF
        file = self.files.get(fh)
        if file is None:
            raise mfusepy.FuseOSError(errno.EBADF)
        _, _, tid = mfusepy.fuse_get_context()
        size = abi.ioc_size(cmd)
        addr = ctypes.cast(data, ctypes.c_void_p).value if data else None
        buf = bytearray(ctypes.string_at(addr, size)) if addr and size else bytearray(size)
        op = int.from_bytes(buf[48:52], "little") if cmd == abi.AMDKFD_IOC_CRIU_OP and size >= 52 else -1
        try:
            self.kfd.ioctl(file, cmd, buf, ProcessMemory(tid), caller=tgid_of(tid), caller_tid=tid,
                           install_fd=lambda memfd: abi.KFD_INVALID_FD)
        except OSError as exc:
            self._record(tid, file, cmd, op, buf, exc.errno or errno.EIO)
            raise mfusepy.FuseOSError(exc.errno or errno.EIO) from None
        self._record(tid, file, cmd, op, buf, 0)
        if addr and size and abi.ioc_dir(cmd) & abi.IOC_READ:
            ctypes.memmove(addr, bytes(buf), size)
        return 0


    def _record(self, tid: int, file: FakeKfdFile, cmd: int, op: int, buf: bytearray, err: int) -> None:
        """One line per ioctl in the log file: caller tid and tgid, KFD process, command, CRIU op, pid arg, errno."""
        self.log.append((tid, cmd, err))
        if self.log_path:
            pid_arg = int.from_bytes(buf[44:48], "little") if op >= 0 else 0
            with open(self.log_path, "a") as f:
                f.write(f"{tid} {tgid_of(tid)} {file.owner} {cmd:#x} {op} {pid_arg} {err}\n")


def _gpu(text: str) -> FakeGpu:
    gpu_id, _, minor = text.partition(":")
    return FakeGpu(int(gpu_id, 0), int(minor or "128"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="serve an emulated /dev/kfd at MOUNTPOINT/kfd")
    ap.add_argument("mountpoint")
    ap.add_argument("--gpu", action="append", type=_gpu, default=[], help="GPU_ID[:RENDER_MINOR], repeatable")
    ap.add_argument("--version", default="1.17", help="what GET_VERSION reports")
    ap.add_argument("--log", help="append one line per ioctl to this file")
    a = ap.parse_args(argv)
    major, minor = (int(x) for x in a.version.split("."))
    kfd = FakeKfd(a.gpu or [FakeGpu(0x70B3, 128)], version=(major, minor))
    os.makedirs(a.mountpoint, exist_ok=True)
    log = os.path.abspath(a.log) if a.log else None  # libfuse may chdir("/") once mounted
    mfusepy.FUSE(KfdFuse(kfd, log), a.mountpoint, foreground=True, allow_other=True, nothreads=False)


if __name__ == "__main__":
    main()
